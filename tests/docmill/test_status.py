"""`docmill status` on job state in the real Redis: the JSON contract, rates, --watch, errors."""

from __future__ import annotations

import json
import threading
import time

import pytest

from docmill.cli import main
from docmill.jobs import JobStore, WorkerRegistry, connect
from docmill.status import view

pytestmark = pytest.mark.services


@pytest.fixture
def store(redis_url, job_id, monkeypatch):
    monkeypatch.setenv("DOCMILL_BROKER_URL", redis_url)
    client = connect(redis_url)
    yield JobStore(client)
    for key in client.scan_iter(f"docmill:job:{job_id}*"):
        client.delete(key)


def _status(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["status", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_has_the_contract_fields(store, job_id, capsys):
    store.create(job_id, "s3://in/p/", "s3://out/p/", "s3://m/set/v1", "v1")
    store.record_enqueued(job_id, items=4, tasks=1, skipped=1, cursor="d.jpg")
    store.record_task(job_id, 0, {"s3://in/p/b.jpg": "decode_error"}, done=2, kept=1)
    rc, out, _ = _status(capsys, job_id, "--json")
    assert rc == 0 and len(out.strip().splitlines()) == 1
    data = json.loads(out)
    assert {k: data[k] for k in ("total", "done", "failed", "skipped", "pending", "finished", "kept")} == {
        "total": 5, "done": 2, "failed": 1, "skipped": 1, "pending": 1, "finished": False, "kept": 1}
    assert data["failure_codes"] == {"decode_error": 1} and data["images_per_s"] > 0
    assert data["eta_s"] is None  # the listing is not complete: the total may still grow
    rc, out, _ = _status(capsys, job_id)
    assert rc == 0 and "1 earlier result (within done)" in out


def test_rate_and_eta():
    from docmill.jobs import JobState

    running = JobState(job="j", total=100, done=30, failed=10, skipped=20, pending=40,
                       listing_done=True, started_at=1000.0)
    v = view(running, now=1020.0)
    assert (v["elapsed_s"], v["images_per_s"], v["eta_s"]) == (20.0, 2.0, 20.0)
    done = running.model_copy(update={"pending": 0, "done": 70, "finished": True, "finished_at": 1040.0})
    assert view(done, now=5000.0)["elapsed_s"] == 40.0 and view(done)["eta_s"] == 0.0


def test_table_output(store, job_id, capsys):
    store.create(job_id, "in/", "out/", "m", "v")
    rc, out, _ = _status(capsys, job_id)
    assert rc == 0 and f"job {job_id}" in out and "listing" in out and "pending" in out


def test_workers_on_the_broker_are_counted_live_or_silent(store, job_id, capsys, monkeypatch):
    """A job that stalls because its workers died says so: silent ones are counted apart."""
    monkeypatch.setenv("DOCMILL_WORKER_LOST_AFTER_S", "30")
    store.create(job_id, "in/", "out/", "m", "v")
    registry = WorkerRegistry(store.r)
    before = json.loads(_status(capsys, job_id, "--json")[1])["workers"]
    live, silent = f"test-live-{job_id}", f"test-silent-{job_id}"
    registry.beat(live, [])
    seconds, _ = registry.r.time()
    registry.r.zadd(WorkerRegistry.WORKERS, {silent: seconds - 60})  # its last beat, a minute ago
    try:
        after = json.loads(_status(capsys, job_id, "--json")[1])["workers"]
        table = _status(capsys, job_id)[1]
    finally:
        registry.leave(live)
        registry.leave(silent)
    assert (after["live"] - before["live"], after["silent"] - before["silent"]) == (1, 1)
    assert after["lost_after_s"] == 30
    assert f"{after['live']} live, {after['silent']} silent for over 30 s" in " ".join(table.split())


def test_watch_returns_once_the_job_finishes(store, job_id, capsys):
    store.create(job_id, "in/", "out/", "m", "v")
    store.record_enqueued(job_id, items=2, tasks=1, skipped=0, cursor="b")
    store.finish_listing(job_id)

    def finish() -> None:
        time.sleep(0.5)
        store.record_task(job_id, 0, {}, done=2)

    worker = threading.Thread(target=finish)
    worker.start()
    started = time.monotonic()
    rc, out, _ = _status(capsys, job_id, "--watch", "--json", "--interval", "0.1")
    worker.join()
    assert rc == 0 and time.monotonic() - started >= 0.5
    data = json.loads(out)
    assert data["finished"] is True and data["done"] == 2 and data["pending"] == 0


def test_unknown_job_is_one_line_exit_2(store, job_id, capsys):
    rc, out, err = _status(capsys, job_id + "-nope", "--json")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and "no job" in err
