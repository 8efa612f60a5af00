"""Redis restarts mid-job, with the producer still listing (held back by --max-pending) and
two workers busy: both sides reconnect, and the job completes with nothing lost."""

from __future__ import annotations

import subprocess
import time

import pytest

from docmill.jobs import JobStore
from tests.chaos.conftest import CLI, Figures, base_env, put_pages, start_worker, wait_finished
from tests.chaos.test_worker_faults import IMAGES, check_outcome, settled

pytestmark = [pytest.mark.chaos, pytest.mark.services, pytest.mark.models]


def test_redis_restart_mid_job(s3_client, buckets, published, redis_server, s3_endpoint, tmp_path, workers):
    keys = put_pages(s3_client, buckets["in"], "in", IMAGES)
    env = base_env(redis_server.url, s3_endpoint, tmp_path / "cache", DOCMILL_VISIBILITY_TIMEOUT_S="6")
    for n in range(2):
        workers.append(start_worker(env, "docmill", tmp_path / f"worker{n}.log"))
    producer = subprocess.Popen([*CLI, "produce", f"s3://{buckets['in']}/in/", "--out", f"s3://{buckets['out']}/run/",
                                 "--models", published.uri, "--chunk", "4", "--max-pending", "2", "--job", "restart"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = JobStore(redis_server.client())
    deadline = time.monotonic() + 120
    while not (store.exists("restart") and settled(store, "restart") >= 20):
        assert time.monotonic() < deadline and producer.poll() is None, producer.communicate()
        time.sleep(0.1)
    listing_at_restart = store.get("restart").tasks_enqueued
    down_s = redis_server.restart(down_s=2.0)
    out, err = producer.communicate(timeout=180)
    assert producer.returncode == 0 and out.strip().splitlines()[-1] == "restart", err[-3000:]
    store = JobStore(redis_server.client())
    wait_finished(store, "restart", 180, workers)
    assert all(w.alive() for w in workers), [w.tail() for w in workers]
    results = check_outcome(s3_client, buckets, keys, store, "restart")
    Figures("redis_restart", {"images": IMAGES, "results": len(results), "lost": IMAGES - len(results),
                              "redis_down_s": round(down_s, 1), "tasks_enqueued_before_restart": listing_at_restart,
                              "tasks_enqueued": store.get("restart").tasks_enqueued}).show()
