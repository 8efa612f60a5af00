"""Soak: a realistic mix of pages (varied sizes and line counts, JPEG and PNG) through one
long-lived worker, watching for leaks (a benchmark, not a test; `make soak`).

    python -m bench.soak [--images 2000] [--models pp-ocrv4-ch] [--chunk 8]

A Redis of its own (free port, no persistence), a moto S3 server, one `docmill worker`, one
`docmill produce`. The worker's RSS and open file descriptors are sampled from /proc every
second with the job's progress. Reported: RSS after warm-up (the first 10% of images) and at
the end (growth must stay under 10%), descriptors at both points, and throughput in each
quarter after warm-up (drift = last quarter / first quarter - 1).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from bench.distributed import BIN, free_port, produce, wait_http
from bench.results import save_result

WARMUP_SHARE = 0.1


WORDS = ("invoice", "total", "amount", "receipt", "date", "cash", "change", "tax", "qty", "item",
         "price", "store", "thank", "you", "order", "paid", "card", "balance", "discount", "sub")


def page(n: int) -> bytes:
    """Page `n` of a realistic mix: its own size (0.1 to 8 MP, receipt strips to full
    scans), 1 to 16 lines of text at a size that suits the page, JPEG or PNG. Seeded by `n`,
    so every soak sees the same pages."""
    rng = random.Random(n)
    width, height = rng.randint(320, 2480), rng.randint(240, 3500)
    image = np.full((height, width, 3), rng.randint(225, 255), np.uint8)
    scale = max(0.6, min(width, height) / 700)
    step = int(40 * scale)
    for row in range(min(rng.randint(1, 16), max(1, height // step - 1))):
        text = f"{n:04d} " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
        cv2.putText(image, text, (int(12 * scale), (row + 1) * step), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), max(1, int(2 * scale)), cv2.LINE_AA)
    encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85]) if n % 3 else cv2.imencode(".png", image)
    return encoded[1].tobytes()


def proc_stats(pid: int) -> tuple[float, int]:
    """(RSS MiB, open descriptors) of a live process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def settled(redis_client, job: str) -> int:  # type: ignore[no-untyped-def]
    done, failed = redis_client.hmget(f"docmill:job:{job}", "done", "failed")
    return int(done or 0) + int(failed or 0)


def start_services(work: Path, env: dict[str, str]) -> list[subprocess.Popen]:
    redis_port = int(env["DOCMILL_BROKER_URL"].rsplit(":", 1)[1].split("/")[0])
    s3_port = env["DOCMILL_S3_ENDPOINT_URL"].rsplit(":", 1)[1]
    procs = [subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL),
             subprocess.Popen([str(BIN / "python"), "-m", "moto.server", "-H", "127.0.0.1", "-p", s3_port],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    wait_http(env["DOCMILL_S3_ENDPOINT_URL"])
    return procs


def upload(env: dict[str, str], models: str, count: int) -> str:
    """Buckets, the published model set and `count` pages; returns the model set URI."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=env["DOCMILL_S3_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="soak", aws_secret_access_key="soak")
    for bucket in ("bench-models", "bench-in", "bench-out"):  # the names bench.distributed.produce uses
        s3.create_bucket(Bucket=bucket)
    subprocess.run([str(BIN / "docmill"), "models", "import", "--preset", models, "--publish", "s3://bench-models/sets"],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: s3.put_object(Bucket="bench-in", Key=f"main/p{n:05d}.{'jpg' if n % 3 else 'png'}",
                                              Body=page(n)), range(count)))
    return f"s3://bench-models/sets/{models}"


def watch(worker: subprocess.Popen, redis_client, job: str, total: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """One sample per second until every image is settled."""
    samples: list[dict] = []
    start = time.monotonic()
    while True:
        assert worker.poll() is None, "the worker died"
        rss, fds = proc_stats(worker.pid)
        samples.append({"t": time.monotonic() - start, "settled": settled(redis_client, job), "rss_mib": rss, "fds": fds})
        if samples[-1]["settled"] >= total:
            return samples
        time.sleep(1.0)


def summarise(samples: list[dict], total: int) -> dict:
    warm = next(s for s in samples if s["settled"] >= total * WARMUP_SHARE)
    end = samples[-1]
    quarters = []
    span = total - warm["settled"]
    for q in range(4):
        lo, hi = warm["settled"] + span * q / 4, warm["settled"] + span * (q + 1) / 4
        a = next(s for s in samples if s["settled"] >= lo)
        b = next(s for s in samples if s["settled"] >= hi)
        quarters.append(round((b["settled"] - a["settled"]) / max(b["t"] - a["t"], 1e-6), 2))
    return {"images": total, "seconds": round(end["t"], 1), "images_per_s": round(total / end["t"], 2),
            "rss_mib_after_warmup": round(warm["rss_mib"], 1), "rss_mib_end": round(end["rss_mib"], 1),
            "rss_growth_pct": round(100 * (end["rss_mib"] / warm["rss_mib"] - 1), 2),
            "rss_mib_peak": round(max(s["rss_mib"] for s in samples), 1),
            "fds_after_warmup": warm["fds"], "fds_end": end["fds"], "fds_max": max(s["fds"] for s in samples),
            "quarter_images_per_s": quarters, "throughput_drift_pct": round(100 * (quarters[-1] / quarters[0] - 1), 1)}


def soak(args: argparse.Namespace, work: Path) -> dict:
    import redis

    broker = f"redis://127.0.0.1:{free_port()}/0"
    env = dict(os.environ, DOCMILL_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", DOCMILL_BROKER_URL=broker,
               AWS_ACCESS_KEY_ID="soak", AWS_SECRET_ACCESS_KEY="soak", AWS_DEFAULT_REGION="us-east-1",
               DOCMILL_CACHE_DIR=str(work / "cache"))
    procs = start_services(work, env)
    try:
        models = upload(env, args.models, args.images)
        worker = subprocess.Popen([str(BIN / "docmill"), "worker", "--device", "cpu", "--concurrency", "4"],
                                  env=env, stdout=open(work / "worker.log", "wb"), stderr=subprocess.STDOUT)
        procs.append(worker)
        job = produce(env, "main", models, args.chunk, "docmill")
        return summarise(watch(worker, redis.Redis.from_url(broker), job, args.images), args.images)
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--models", default="pp-ocrv4-ch")
    p.add_argument("--chunk", type=int, default=8, help="images per task")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="docmill-soak-") as tmp:
        row = soak(args, Path(tmp))
    print(json.dumps(row, indent=1))
    ok = row["rss_growth_pct"] < 10
    print(f"soak: {row['images']} images at {row['images_per_s']}/s; RSS {row['rss_mib_after_warmup']} -> "
          f"{row['rss_mib_end']} MiB ({row['rss_growth_pct']:+}%, {'under' if ok else 'OVER'} 10%); fds "
          f"{row['fds_after_warmup']} -> {row['fds_end']}; throughput drift {row['throughput_drift_pct']:+}%")
    save_result("soak", row)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
