"""A 500-page PDF through the distributed path: `docmill produce` splits it into page-range
tasks, two workers share them, one is SIGKILLed mid-document with the default hour-long
visibility timeout, and still every page gets its result and the document one result. The
surviving worker's peak RSS over the whole document stays within 10% of what a 10-page
document cost it.

Real processes throughout: `docmill produce`, `docmill worker`s, a Redis of the test's own and
the moto S3 server.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from docmill.documents import page_result_uri, validate_document
from docmill.jobs import JobStore, WorkerRegistry, connect
from tests.chaos.conftest import Figures, Worker, base_env, produce, start_worker, wait_finished
from tests.pages import numbered_pdf

pytestmark = [pytest.mark.chaos, pytest.mark.models]

QUEUE = "pages"
LONG = 500
SHORT = 10
PER_TASK = 8


def peak_rss_kib(worker: Worker) -> int:
    """The worker process's own high-water mark (VmHWM), whatever its children used."""
    status = Path(f"/proc/{worker.proc.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def run_document(env: dict[str, str], buckets: dict[str, str], published: Any, key: str) -> str:
    return produce(env, f"s3://{buckets['in']}/{key}", "--out", f"s3://{buckets['out']}/out", "--models",
                   published.uri, "--queue", QUEUE, "--pages-per-task", str(PER_TASK))


def busy_victim(workers: list[Worker], registry: WorkerRegistry, store: JobStore, job: str) -> tuple[Worker, str]:
    """Once some pages are done: a worker that holds unacked tasks, and its registered name."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if store.get(job).pages_done >= 60:
            for worker in workers:
                name = next((n for n in registry.lapsed(0) if f"/{worker.proc.pid}/" in n), None)
                held = [t for t in registry.r.smembers(registry.tags_key(name)) if registry.r.hexists("unacked", t)] \
                    if name else []
                if held:
                    return worker, name
        time.sleep(0.2)
    pytest.fail("no worker held a task mid-document")


def test_a_500_page_pdf_survives_a_killed_worker_in_flat_memory(s3_client, buckets, published, redis_server,
                                                               s3_endpoint, tmp_path, workers):
    s3_client.put_object(Bucket=buckets["in"], Key="short/ten.pdf", Body=numbered_pdf(SHORT))
    s3_client.put_object(Bucket=buckets["in"], Key="long/five-hundred.pdf", Body=numbered_pdf(LONG))
    env = base_env(redis_server.url, s3_endpoint, tmp_path / "cache")
    store, registry = JobStore(connect(redis_server.url)), WorkerRegistry(connect(redis_server.url))
    survivor = start_worker(env, QUEUE, tmp_path / "survivor.log")
    workers.append(survivor)
    wait_finished(store, run_document(env, buckets, published, "short/"), 180, workers)
    after_ten = peak_rss_kib(survivor)

    workers.append(start_worker(env, QUEUE, tmp_path / "victim.log"))
    started = time.monotonic()
    job = run_document(env, buckets, published, "long/")
    victim, name = busy_victim([workers[1]], registry, store, job)
    assert victim.stop(signal.SIGKILL, timeout=10) == -signal.SIGKILL
    killed_at = time.monotonic()
    while name in registry.lapsed(0):
        assert time.monotonic() - killed_at < 90, survivor.tail()
        time.sleep(0.2)
    requeued_s = time.monotonic() - killed_at
    wait_finished(store, job, 900, [survivor])

    state = store.get(job)
    assert (state.pages, state.pages_done, state.pages_failed, state.documents_done) == (LONG, LONG, 0, 1), (
        state, store.failed_items(job), survivor.tail())
    whole = json.loads(s3_client.get_object(Bucket=buckets["out"], Key="out/five-hundred.pdf.json")["Body"].read())
    validate_document(whole)
    assert [p["index"] for p in whole["pages"] if p["status"] == "ok"] == list(range(1, LONG + 1))
    listed = {o["Key"] for page in s3_client.get_paginator("list_objects_v2").paginate(
        Bucket=buckets["out"], Prefix="out/five-hundred.pdf/") for o in page.get("Contents", ())}
    assert listed == {page_result_uri("out/five-hundred.pdf.json", n, LONG) for n in range(1, LONG + 1)}
    after_long = peak_rss_kib(survivor)
    Figures("documents_500_pages", {
        "pages": LONG, "pages_per_task": PER_TASK, "tasks": state.tasks_enqueued,
        "requeued_after_kill_s": round(requeued_s, 1), "job_seconds": round(time.monotonic() - started, 1),
        "survivor_peak_rss_mb_after_10_pages": round(after_ten / 1024, 1),
        "survivor_peak_rss_mb_after_500_pages": round(after_long / 1024, 1),
        "rss_ratio": round(after_long / after_ten, 3)}).show()
    assert requeued_s < 60
    assert after_long <= 1.10 * after_ten
