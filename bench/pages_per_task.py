"""How many pages a document task should hold: one scanned PDF through producer -> Redis ->
two workers -> S3, once per `--pages-per-task` value, timed from `docmill produce` until the
job is finished. The default (producer/commands.py) is the value this chose.

    python -m bench.pages_per_task [--models pp-ocrv6] [--values 1,2,4,8,16,32] [--pages 96]

Small ranges spread a document over more task slots, but each task pays for its own render
child and job-state round trips; large ranges leave slots idle at a document's end and make a
killed worker's redelivery longer. The PDF is bench.documents' scan: the shared receipts and
the demo pages, each at 150 dpi, cycled to `--pages`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.distributed import BIN, free_port, s3_with_models, wait_job
from bench.documents import RENDER_DPI, SROIE, page_sources, pdf_set
from bench.results import save_result
from docmill.settings import DEFAULT_MODEL_SET

WORKERS = 2


def run_once(env: dict[str, str], models: str, key: str, pages_per_task: int, queue: str) -> float:
    start = time.perf_counter()
    out = subprocess.run([str(BIN / "docmill"), "produce", f"s3://bench-in/{key}", "--out",
                          f"s3://bench-out/{pages_per_task}/", "--models", models, "--force", "--queue", queue,
                          "--pages-per-task", str(pages_per_task)], env=env, check=True, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    state = wait_job(env, out.stdout.strip().splitlines()[-1])
    assert state["pages_done"] == state["pages"] and not state["pages_failed"], state
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=DEFAULT_MODEL_SET)
    p.add_argument("--values", default="1,2,4,8,16,32")
    p.add_argument("--pages", type=int, default=96)
    p.add_argument("--concurrency", type=int, default=4, help="task slots per worker")
    args = p.parse_args(argv)
    if not SROIE.is_dir():
        print("bench.pages_per_task: ../shared/data/sroie_sample is absent; nothing to measure")
        return 0
    subprocess.run([str(Path(__file__).resolve().parents[1] / "scripts" / "ensure-redis.sh")], check=True)
    values = [int(v) for v in args.values.split(",")]
    s3_url, queue = f"http://127.0.0.1:{free_port()}", f"bench-ppt-{os.getpid()}"
    env = dict(os.environ, DOCMILL_S3_ENDPOINT_URL=s3_url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION="us-east-1", DOCMILL_BROKER_URL="redis://127.0.0.1:6379/13",
               DOCMILL_INTRA_OP_THREADS="1")
    procs: list[subprocess.Popen] = []
    seconds: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="docmill-ppt-") as tmp:
        work = Path(tmp)
        try:
            s3, models = s3_with_models(env, args.models, procs)
            pdf_set(page_sources(work), work / "pdf", RENDER_DPI, args.pages)
            s3.upload_file(str(work / "pdf" / "scan.pdf"), "bench-in", "doc/scan.pdf")
            pdf_set(page_sources(work)[:1], work / "warm", RENDER_DPI, 2 * WORKERS * args.concurrency)
            s3.upload_file(str(work / "warm" / "scan.pdf"), "bench-in", "warm/small.pdf")
            procs += [subprocess.Popen([str(BIN / "docmill"), "worker", "--queue", queue, "--device", "cpu",
                                        "--concurrency", str(args.concurrency)],
                                       env=env, stdout=open(work / f"worker{i}.log", "wb"), stderr=subprocess.STDOUT)
                      for i in range(WORKERS)]
            run_once(env, models, "warm/", 1, queue)  # one-page tasks load the models in both workers
            for value in values:
                seconds[value] = run_once(env, models, "doc/", value, queue)
                print(f"  {value} pages per task: {seconds[value]:.1f} s", file=sys.stderr)
        finally:
            for proc in reversed(procs):
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    best = min(seconds, key=lambda v: (round(seconds[v] / min(seconds.values()), 2) > 1.05, -v))
    report = {"schema": "docmill.bench.pages_per_task/v1", "models": args.models, "pages": args.pages,
              "workers": WORKERS, "concurrency": args.concurrency,
              "pages_per_s": {str(v): round(args.pages / s, 3) for v, s in seconds.items()},
              "chosen": best}
    print(f"pages/s by pages per task: {report['pages_per_s']}; chosen {best} "
          "(the largest within 5% of the fastest: fewer tasks, same speed)")
    save_result("pages_per_task", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
