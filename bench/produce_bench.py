"""The producer's own benchmark: how fast `docmill produce` turns a large listing into queued
tasks, and whether its memory stays flat while it does. A benchmark, not a test.

    .venv/bin/python -m bench.produce_bench [--objects 100000] [--chunk 16] [--moto indexed|stock|both]
                                            [--broker redis://127.0.0.1:6379/15]

It starts moto's S3 server (a real HTTP endpoint, as in the tests) in a child process and
fills a bucket with --objects tiny objects through moto's own backend (HTTP PUTs from here
would take minutes), publishes a manifest-only model set there, and runs
`docmill produce --force --max-pending <large>` as a child process on a queue of its own.

Stock moto answers each ListObjectsV2 page by collecting and sorting the whole bucket (about
0.4 s per page of 1,000 at 100k keys) and then serializing it generically (another 0.2 s):
the server, not the producer, would set the figure. `--moto indexed` (the default) serves
prefix listings from a sorted key index and writes their XML directly, so the figure is the
producer's; `--moto stock` measures stock moto (`both` runs the two).

While the producer runs, the job's `total` in Redis and the child's RSS are sampled; reported:
- refs_per_s: references recorded per second, from the first to the last one (steady rate);
- wall_refs_per_s: references / wall time of the whole process (start-up included);
- cpu_us_per_ref: the producer's CPU (user + sys) per reference;
- RSS at 10%, 50% and 100% of the references, and peak RSS (ru_maxrss via os.wait4).
The queue, its kombu binding and the job's keys are deleted afterwards. Target from the
distributed issue: >= 5,000 references/s with flat memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.distributed import free_port
from bench.fake_modelset import SET_NAME, SET_VERSION, manifest_bytes

SAMPLE_S = 0.1
BUCKET = "bench"
CLI = [sys.executable, "-c", "import sys; from docmill.cli import main; sys.exit(main())"]


def start_moto(objects: int, indexed: bool) -> tuple[subprocess.Popen, str]:
    """moto's server in a child process holding bucket `bench` with `objects` objects."""
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.produce_bench", "--serve-moto", str(port),
                             "--objects", str(objects), *(["--indexed"] if indexed else [])],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if proc.stdout is None or proc.stdout.readline().strip() != b"ready":
        proc.kill()
        raise SystemExit("moto server did not start")
    return proc, f"http://127.0.0.1:{port}"


def serve_moto(port: int, objects: int, indexed: bool) -> None:
    """The child: fill the bucket through moto's backend, serve HTTP until killed."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    if indexed:
        _install_sorted_index()
        _install_plain_listing_xml()
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(BUCKET, "us-east-1")
    for i in range(objects):
        backend.put_object(BUCKET, f"in/{i % 100:02d}/{i:08d}.jpg", b"x")
    ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False).start()
    print("ready", flush=True)
    threading.Event().wait()


def _install_sorted_index() -> None:
    """Answer prefix listings (no delimiter) from a sorted list of the bucket's key names,
    rebuilt when the number of keys changes, instead of sorting the bucket per page."""
    import bisect

    from moto.s3.models import S3Backend

    stock = S3Backend.list_objects_v2
    index: dict[str, tuple[int, list[str]]] = {}

    def list_objects_v2(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys):  # type: ignore[no-untyped-def]
        if delimiter:
            return stock(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
        size, names = index.get(bucket.name, (-1, []))
        if size != len(bucket.keys):
            names = sorted(bucket.keys.keys())
            index[bucket.name] = (len(bucket.keys), names)
        prefix = prefix or ""
        after = self._pagination_tokens.get(continuation_token) if continuation_token else start_after
        lo = bisect.bisect_right(names, after) if after and after >= prefix else bisect.bisect_left(names, prefix)
        page = [n for n in names[lo: lo + max_keys + 1] if n.startswith(prefix)]
        return self._truncate_result([bucket.keys[n] for n in page], max_keys)

    S3Backend.list_objects_v2 = list_objects_v2


def _install_plain_listing_xml() -> None:
    """Render prefix listings' XML directly: moto's generic serializer takes ~0.2 s per page of
    1,000 keys, which alone would cap any client near 5,000 keys/s."""
    from xml.sax.saxutils import escape

    from moto.s3.responses import S3Response

    stock = S3Response.serialized

    def serialized(self, action_result):  # type: ignore[no-untyped-def]
        result = getattr(action_result, "_result", None)
        if self.data.get("Action") != "ListObjectsV2" or not isinstance(result, dict) or "Delimiter" in result:
            return stock(self, action_result)
        fields = "".join(f"<{k}>{escape(str(result[k]).lower() if isinstance(result[k], bool) else str(result[k]))}</{k}>"
                         for k in ("Name", "Prefix", "MaxKeys", "KeyCount", "IsTruncated", "EncodingType",
                                   "NextContinuationToken", "StartAfter") if k in result)
        contents = "".join(
            f"<Contents><Key>{escape(c['Key'])}</Key><LastModified>{c['LastModified']}</LastModified>"
            f"<ETag>{escape(c['ETag'])}</ETag><Size>{c['Size']}</Size>"
            f"<StorageClass>{c['StorageClass']}</StorageClass></Contents>" for c in result["Contents"])
        body = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
                f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{fields}{contents}</ListBucketResult>')
        return 200, {"Content-Type": "application/xml", **self.response_headers}, body

    S3Response.serialized = serialized


def s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, config=Config(max_pool_connections=64))


def publish_models(client: Any, bucket: str) -> str:
    """A manifest-only set (the producer reads the name and version, never the ONNX files)."""
    client.put_object(Bucket=bucket, Key=f"models/{SET_NAME}/{SET_VERSION}/manifest.json", Body=manifest_bytes())
    client.put_object(Bucket=bucket, Key=f"models/{SET_NAME}/LATEST", Body=SET_VERSION.encode())
    return f"s3://{bucket}/models/{SET_NAME}"


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def run_producer(argv: list[str], env: dict[str, str], redis: Any, job: str) -> dict[str, Any]:
    """Run the CLI child, sampling (seconds, job total, RSS KiB) until it exits; reaped with
    wait4 for its peak RSS and CPU time."""
    started = time.monotonic()
    proc = subprocess.Popen([*CLI, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[tuple[float, int, int | None]] = []
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        total = int(redis.hget(f"docmill:job:{job}", "total") or 0)
        samples.append((time.monotonic() - started, total, _rss_kib(proc.pid)))
        time.sleep(SAMPLE_S)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": time.monotonic() - started, "returncode": proc.returncode, "samples": samples,
            "peak_rss_kib": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime}


def summarize(result: dict[str, Any], total: int) -> dict[str, Any]:
    samples = [s for s in result["samples"] if s[2] is not None]
    first = next((t for t, n, _ in samples if n > 0), 0.0)
    last = next((t for t, n, _ in samples if n >= total), result["wall_s"])

    def rss_at(frac: float) -> float | None:
        return _mib(next((rss for _, n, rss in samples if n >= frac * total), None))

    return {"objects": total, "refs_per_s": round(total / (last - first)) if last > first else None,
            "wall_refs_per_s": round(total / result["wall_s"]), "wall_s": round(result["wall_s"], 2),
            "cpu_us_per_ref": round(result["cpu_s"] / total * 1e6, 1),
            "rss_mib_at_10pct": rss_at(0.1), "rss_mib_at_50pct": rss_at(0.5),
            "rss_mib_at_100pct": rss_at(1.0), "peak_rss_mib": _mib(result["peak_rss_kib"])}


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--moto", choices=["indexed", "stock", "both"], default="indexed")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--serve-moto", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--indexed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_moto:
        serve_moto(args.serve_moto, args.objects, args.indexed)
        return 0

    from docmill.jobs import connect

    redis = connect(args.broker)
    reports = [_bench(args, redis, mode == "indexed")
               for mode in (["indexed", "stock"] if args.moto == "both" else [args.moto])]
    print(json.dumps(reports, indent=1))
    return 0 if all(r["returncode"] == 0 and r["job_total"] == args.objects for r in reports) else 1


def _bench(args: argparse.Namespace, redis: Any, indexed: bool) -> dict[str, Any]:
    moto, endpoint = start_moto(args.objects, indexed)
    job, queue = f"bench-{uuid.uuid4().hex[:8]}", f"bench-queue-{uuid.uuid4().hex[:8]}"
    try:
        models = publish_models(s3_client(endpoint), BUCKET)
        env = {**os.environ, "DOCMILL_BROKER_URL": args.broker, "DOCMILL_S3_ENDPOINT_URL": endpoint}
        argv = ["produce", f"s3://{BUCKET}/in/", "--out", f"s3://{BUCKET}/out/", "--models", models,
                "--job", job, "--queue", queue, "--chunk", str(args.chunk), "--force",
                "--max-pending", "100000000"]
        result = run_producer(argv, env, redis, job)
        state = redis.hgetall(f"docmill:job:{job}")
        report = {"moto": "indexed" if indexed else "stock", **summarize(result, args.objects),
                  "returncode": result["returncode"], "job_total": int(state.get("total", 0)),
                  "tasks": int(state.get("tasks_enqueued", 0)), "queue_depth": redis.llen(queue),
                  "chunk": args.chunk, "cpus": os.cpu_count()}
    finally:
        redis.delete(queue, f"_kombu.binding.{queue}", *redis.scan_iter(f"docmill:job:{job}*"))
        moto.kill()
        moto.wait()
    print(json.dumps(report), file=sys.stderr)
    return report


if __name__ == "__main__":
    sys.exit(main())
