"""A flaky bucket: every S3 request of the producer and the workers (listing, model fetch,
reads, result writes, the summary) goes through a proxy that breaks 10% of them with a 500,
a 503 SlowDown, a reset connection or added latency. The job completes, nothing is lost, and
the workers' metrics show the requests boto3 re-sent."""

from __future__ import annotations

import time

import pytest

from docmill.jobs import JobStore
from tests.chaos.conftest import FAULT_KINDS, FaultProxy, Figures, base_env, produce, put_pages, start_worker, wait_finished
from tests.chaos.test_worker_faults import IMAGES, check_outcome

pytestmark = [pytest.mark.chaos, pytest.mark.services, pytest.mark.models]


@pytest.fixture
def proxy(s3_endpoint):  # type: ignore[no-untyped-def]
    server = FaultProxy(s3_endpoint, rate=0.1, latency_s=0.3, seed=11)
    yield server
    server.close()


def test_flaky_storage_loses_nothing(s3_client, buckets, published, redis_server, proxy, tmp_path, workers):
    keys = put_pages(s3_client, buckets["in"], "in", IMAGES)
    env = base_env(redis_server.url, proxy.url, tmp_path / "cache", DOCMILL_VISIBILITY_TIMEOUT_S="30")
    for n in range(2):
        workers.append(start_worker(env, "docmill", tmp_path / f"worker{n}.log", metrics=True))
    started = time.monotonic()
    job = produce(env, f"s3://{buckets['in']}/in/", "--out", f"s3://{buckets['out']}/run/",
                  "--models", published.uri, "--chunk", "4")
    store = JobStore(redis_server.client())
    wait_finished(store, job, 180, workers)
    results = check_outcome(s3_client, buckets, keys, store, job)
    retries = {}
    for worker in workers:
        for name, value in worker.metrics().items():
            if name.startswith("docmill_retries_total"):
                retries[name] = retries.get(name, 0) + value
    injected = dict(proxy.injected)
    Figures("storage_faults", {"requests": proxy.forwarded + sum(injected[k] for k in injected if k != "latency"),
                               "injected": injected, "worker_retries_metric": retries, "images": IMAGES,
                               "results": len(results), "lost": IMAGES - len(results),
                               "seconds": round(time.monotonic() - started, 1)}).show()
    assert set(injected) == set(FAULT_KINDS) and min(injected.values()) >= 3, injected
    assert retries.get('docmill_retries_total{what="storage_request"}', 0) > 0, retries
