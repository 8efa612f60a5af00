"""The distributed row of `make bench`: the SROIE sample through producer -> Redis -> one
worker -> S3, beside in-process `docmill run` on the same images, in the same run.

    python -m bench.distributed [--models pp-ocrv4-ch] [--chunk 4] [--concurrency 4]

Both sides are timed warm (a long-lived worker is the point of the distributed path): the
in-process figure is (N - 1) / (wall of N images - wall of 1 image); the distributed figure
is N / (time from `docmill produce` until `docmill status` reports the job finished), with
the worker already started and its model set loaded by a one-image warm-up job. The worker's
batch-size histogram comes from its /metrics endpoint.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.paths import REPO, SROIE_IMAGES
from bench.results import save_result

BIN = REPO / ".venv" / "bin"
SROIE = SROIE_IMAGES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError as exc:
            if hasattr(exc, "code"):
                return
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def s3_with_models(env: dict[str, str], preset: str, procs: list[subprocess.Popen]) -> tuple[Any, str]:
    """moto's S3 server at env's DOCMILL_S3_ENDPOINT_URL (its process appended to `procs`, for
    the caller to stop), the bench buckets, and `preset` published there (from the model cache
    when it holds the set: nothing is fetched then): the client and the published set's URI."""
    import boto3

    s3_url = env["DOCMILL_S3_ENDPOINT_URL"]
    procs.append(subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                   s3_url.rsplit(":", 1)[1]], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
    wait_http(s3_url)
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1",
                      aws_access_key_id="bench", aws_secret_access_key="bench")
    for bucket in ("bench-models", "bench-in", "bench-out"):
        s3.create_bucket(Bucket=bucket)
    subprocess.run([sys.executable, "-m", "docmill.cli", "models", "import", "--preset", preset, "--publish",
                    "s3://bench-models/sets"], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return s3, f"s3://bench-models/sets/{preset}"


def in_process(images: list[Path], models: str, work: Path) -> float:
    """Steady in-process images/s: full run minus a one-image run, both cold processes."""
    walls = []
    for subset in (images[:1], images):
        src = work / f"inproc-{len(subset)}"
        src.mkdir()
        for p in subset:
            shutil.copy(p, src / p.name)
        start = time.perf_counter()
        subprocess.run([str(BIN / "docmill"), "run", str(src), "--out", str(work / f"out-{len(subset)}"),
                        "--models", models, "--device", "cpu", "--quiet"], check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
    return (len(images) - 1) / (walls[1] - walls[0])


def produce(env: dict[str, str], prefix: str, models: str, chunk: int, queue: str) -> str:
    out = subprocess.run([str(BIN / "docmill"), "produce", f"s3://bench-in/{prefix}/", "--out",
                          f"s3://bench-out/{prefix}/", "--models", models, "--chunk", str(chunk),
                          "--force", "--queue", queue], env=env, check=True, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return out.stdout.strip().splitlines()[-1]


def wait_job(env: dict[str, str], job: str, timeout: float = 1800) -> dict:
    """Poll the job state in Redis directly: a `docmill status` process every poll would
    steal the CPU the worker is being measured on."""
    from docmill.jobs import JobStore, connect

    store = JobStore(connect(env["DOCMILL_BROKER_URL"]))
    if not job_progress(store, job, time.perf_counter(), timeout, every_s=0.1)[1]:
        raise RuntimeError(f"job {job} did not finish")
    return store.get(job).model_dump()


def job_progress(store: Any, job: str, started: float, timeout: float,
                 every_s: float = 0.05) -> tuple[list[tuple[float, int]], bool]:
    """(seconds since `started`, items finished) every `every_s` until the job finishes or
    `timeout` passes, and whether it finished."""
    samples: list[tuple[float, int]] = []
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        state = store.get(job)
        samples.append((time.perf_counter() - started, state.done + state.failed))
        if state.finished:
            return samples, True
        time.sleep(every_s)
    return samples, False


def histogram(metrics_url: str) -> dict[str, int]:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    body = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    family = next(f for f in text_string_to_metric_families(body) if f.name == "docmill_batch_size")
    out: dict[str, int] = {}
    for sample in family.samples:
        if sample.name.endswith("_bucket"):
            le = sample.labels["le"]
            out[le if le == "+Inf" else str(int(float(le)))] = int(sample.value)
        else:
            out[sample.name.rsplit("_", 1)[1]] = int(sample.value)
    return out


def distributed(images: list[Path], args: argparse.Namespace, work: Path) -> dict:
    s3_url, metrics_port, queue = f"http://127.0.0.1:{free_port()}", free_port(), f"bench-{os.getpid()}"
    env = dict(os.environ, DOCMILL_S3_ENDPOINT_URL=s3_url, AWS_ACCESS_KEY_ID="bench",
               AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
               DOCMILL_BROKER_URL="redis://127.0.0.1:6379/14")
    procs: list[subprocess.Popen] = []
    try:
        s3, models = s3_with_models(env, args.models, procs)
        s3.upload_file(str(images[0]), "bench-in", f"warmup/{images[0].name}")
        for p in images:
            s3.upload_file(str(p), "bench-in", f"main/{p.name}")
        procs.append(subprocess.Popen(
            [str(BIN / "docmill"), "worker", "--queue", queue, "--device", "cpu", "--concurrency",
             str(args.concurrency), "--metrics-port", str(metrics_port)],
            env=env, stdout=open(work / "worker.log", "wb"), stderr=subprocess.STDOUT))
        wait_job(env, produce(env, "warmup", models, args.chunk, queue))
        before = histogram(f"http://127.0.0.1:{metrics_port}/metrics")
        start = time.perf_counter()
        state = wait_job(env, produce(env, "main", models, args.chunk, queue))
        seconds = time.perf_counter() - start
        after = histogram(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    batches = {k: after[k] - before.get(k, 0) for k in after}
    return {"images": len(images), "seconds": round(seconds, 2), "images_per_s": round(len(images) / seconds, 3),
            "done": state["done"], "failed": state["failed"], "chunk": args.chunk,
            "concurrency": args.concurrency, "batch_size_buckets": batches,
            "mean_batch_size": round(batches["sum"] / batches["count"], 2) if batches["count"] else 0.0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="pp-ocrv4-ch")
    p.add_argument("--chunk", type=int, default=4, help="images per task")
    p.add_argument("--concurrency", type=int, default=4, help="worker tasks in flight")
    args = p.parse_args(argv)
    if not SROIE.is_dir():
        print("bench.distributed: ../shared/data/sroie_sample is absent; nothing to measure")
        return 0
    subprocess.run([str(REPO / "scripts" / "ensure-redis.sh")], check=True)
    images = sorted(SROIE.glob("*.jpg"))
    with tempfile.TemporaryDirectory(prefix="docmill-dist-") as tmp:
        inproc = in_process(images, args.models, Path(tmp))
        dist = distributed(images, args, Path(tmp))
    row = {"in_process_images_per_s": round(inproc, 3), "distributed": dist,
           "ratio": round(dist["images_per_s"] / inproc, 3)}
    print(f"distributed: {dist['images_per_s']} images/s vs in-process {row['in_process_images_per_s']} "
          f"(ratio {row['ratio']}; target >= 0.90), mean batch {dist['mean_batch_size']} "
          f"(histogram {dist['batch_size_buckets']})")
    save_result("distributed", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
