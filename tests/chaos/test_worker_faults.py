"""Workers die mid-batch, by SIGKILL (a preempted machine) or SIGTERM (a rolling restart):
every image still ends with exactly one valid result and the job summary adds up. A SIGTERM
re-queues at once; a SIGKILL's tasks come back once the killed worker's heartbeat lapses
(DOCMILL_WORKER_LOST_AFTER_S), or once they are unacked past the visibility timeout, found
by a surviving worker's sweep (every DOCMILL_RESTORE_INTERVAL_S), whichever comes first.

Real processes throughout: `docmill produce`, two `docmill worker`s, a Redis of the test's
own and the moto S3 server. The poison-item case is tests/worker/test_worker_service.py.
"""

from __future__ import annotations

import json
import random
import re
import signal
import time
from typing import Any

import pytest

from docmill.jobs import JobStore, WorkerRegistry, connect
from tests.chaos.conftest import (Figures, Worker, base_env, produce, put_pages, read_results, start_worker,
                                  wait_finished)

pytestmark = [pytest.mark.chaos, pytest.mark.services, pytest.mark.models]

IMAGES = 100


def in_flight(worker: Worker) -> int:
    """Tasks this worker received and has not finished, from its own log."""
    text = worker.log.read_text(errors="replace")
    received = len(re.findall(r"Task docmill\.ocr\[[^\]]+\] received", text))
    ended = len(re.findall(r"Task docmill\.ocr\[[^\]]+\] (succeeded|retry|raised)", text))
    return received - ended


def settled(store: JobStore, job: str) -> int:
    state = store.get(job)
    return state.done + state.failed


def wait_busy(workers: list[Worker], store: JobStore, job: str, point: int, timeout: float = 120) -> Worker:
    """A live worker with a task in flight, once `point` items are settled."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [w for w in workers if w.alive() and in_flight(w) > 0]
        if busy and settled(store, job) >= point:
            return busy[0]
        time.sleep(0.05)
    pytest.fail(f"no busy worker at {point} settled items: {store.get(job)}")


def check_outcome(s3_client: Any, buckets: dict[str, str], keys: list[str], store: JobStore, job: str) -> dict:
    """One valid OCR result per image, nothing else under the prefix, the summary right."""
    images = len(keys)
    results = read_results(s3_client, buckets["out"], "run/")
    assert sorted(results) == sorted(f"run/{k.removeprefix('in/')}.json" for k in keys)
    bad = {k: d["error"] for k, d in results.items() if d["error"] or not d["lines"]}
    assert not bad, bad
    state = store.get(job)
    assert (state.total, state.done, state.failed, state.pending) == (images, images, 0, 0)
    summary = json.loads(s3_client.get_object(Bucket=buckets["out"], Key=f"run/_docmill/jobs/{job}.json")
                         ["Body"].read())
    assert (summary["total"], summary["done"], summary["failed"], summary["failures"]) == (images, images, 0, {})
    return results


def start_job(s3_client, buckets, published, redis_server, s3_endpoint, tmp_path, workers, visibility_s: int,  # type: ignore[no-untyped-def]
              images: int = IMAGES, **env_extra: str):
    keys = put_pages(s3_client, buckets["in"], "in", images)
    env = base_env(redis_server.url, s3_endpoint, tmp_path / "cache", DOCMILL_VISIBILITY_TIMEOUT_S=str(visibility_s),
                   **env_extra)
    for n in range(2):
        workers.append(start_worker(env, "docmill", tmp_path / f"worker{n}.log"))
    job = produce(env, f"s3://{buckets['in']}/in/", "--out", f"s3://{buckets['out']}/run/",
                  "--models", published.uri, "--chunk", "4")
    return keys, env, job


def test_sigterm_rolling_restart_requeues_at_once(s3_client, buckets, published, redis_server, s3_endpoint,
                                                  tmp_path, workers):
    """SIGTERM each worker in turn mid-batch, replacing it. The visibility timeout is an hour,
    so a task left unacked by a stopping worker would hold the job for an hour: finishing in
    well under a minute shows none was. Twice the images of the other cases: with 100, two
    fresh workers sometimes finished the second half before a busy one could be caught."""
    images = 2 * IMAGES
    keys, env, job = start_job(s3_client, buckets, published, redis_server, s3_endpoint, tmp_path, workers, 3600,
                               images)
    store = JobStore(connect(redis_server.url))
    started = time.monotonic()
    stop_seconds = []
    for n, point in enumerate((20, 50)):
        victim = wait_busy(workers, store, job, point)
        t0 = time.monotonic()
        assert victim.stop(signal.SIGTERM, timeout=60) == 0, victim.tail()
        stop_seconds.append(round(time.monotonic() - t0, 2))
        workers.append(start_worker(env, "docmill", tmp_path / f"replacement{n}.log"))
    wait_finished(store, job, 90, workers)
    results = check_outcome(s3_client, buckets, keys, store, job)
    Figures("sigterm", {"restarts": 2, "images": images, "results": len(results), "lost": images - len(results),
                        "visibility_timeout_s": 3600, "stop_seconds": stop_seconds,
                        "job_seconds": round(time.monotonic() - started, 1)}).show()
    assert time.monotonic() - started < 90


def test_sigkill_three_times_loses_nothing(s3_client, buckets, published, redis_server, s3_endpoint,
                                           tmp_path, workers):
    """kill -9 a busy worker at three random points, starting a replacement each time. The
    killed worker's unacked tasks (running and prefetched) are restored by the sweep once
    older than the 8 s visibility timeout, and another worker finishes them."""
    points = sorted(random.Random().sample(range(10, 80), 3))
    keys, env, job = start_job(s3_client, buckets, published, redis_server, s3_endpoint, tmp_path, workers, 8,
                               DOCMILL_RESTORE_INTERVAL_S="2")
    store = JobStore(connect(redis_server.url))
    started = time.monotonic()
    killed_in_flight = []
    for n, point in enumerate(points):
        victim = wait_busy(workers, store, job, point)
        killed_in_flight.append(in_flight(victim))
        assert victim.stop(signal.SIGKILL, timeout=10) == -signal.SIGKILL
        workers.append(start_worker(env, "docmill", tmp_path / f"replacement{n}.log"))
    wait_finished(store, job, 180, workers)
    results = check_outcome(s3_client, buckets, keys, store, job)
    Figures("sigkill", {"kills_at_settled": points, "tasks_in_flight_when_killed": killed_in_flight,
                        "images": IMAGES, "results": len(results), "lost": IMAGES - len(results),
                        "visibility_timeout_s": 8, "job_seconds": round(time.monotonic() - started, 1)}).show()


def test_sigkill_requeues_within_a_minute_with_an_hour_long_visibility_timeout(
        s3_client, buckets, published, redis_server, s3_endpoint, tmp_path, workers):
    """kill -9 a busy worker, with the default visibility timeout (an hour) and heartbeat
    settings, and no replacement. The survivor finds the killed worker's heartbeat lapsed
    and re-queues the tasks it held (running and prefetched) well within a minute."""
    keys, env, job = start_job(s3_client, buckets, published, redis_server, s3_endpoint, tmp_path, workers, 3600)
    store, registry = JobStore(connect(redis_server.url)), WorkerRegistry(connect(redis_server.url))
    victim = wait_busy(workers, store, job, 20)
    name = next(w for w in registry.lapsed(0) if f"/{victim.proc.pid}/" in w)
    assert victim.stop(signal.SIGKILL, timeout=10) == -signal.SIGKILL
    killed_at = time.monotonic()
    stranded = [tag for tag in registry.r.smembers(registry.tags_key(name)) if registry.r.hexists("unacked", tag)]
    assert stranded, "the victim held no unacked task when it was killed"
    while name in registry.lapsed(0):
        assert time.monotonic() - killed_at < 90, [w.tail() for w in workers]
        time.sleep(0.2)
    requeued_s = time.monotonic() - killed_at
    survivor = next(w for w in workers if w.alive())
    logged = re.findall(r"re-queued the (\d+) tasks it held", survivor.log.read_text(errors="replace"))
    assert logged == [str(len(stranded))], logged
    wait_finished(store, job, 120, workers)
    results = check_outcome(s3_client, buckets, keys, store, job)
    Figures("sigkill_heartbeat", {"images": IMAGES, "results": len(results), "lost": IMAGES - len(results),
                                  "visibility_timeout_s": 3600, "tasks_stranded": len(stranded),
                                  "requeued_after_kill_s": round(requeued_s, 1),
                                  "job_done_after_kill_s": round(time.monotonic() - killed_at, 1)}).show()
    assert requeued_s < 60
