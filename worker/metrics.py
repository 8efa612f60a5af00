"""Worker metrics on prometheus_client, served on `--metrics-port`.

Each `Metrics` owns its own `CollectorRegistry` rather than the process-wide default, so
tests and benches can hold several at once without their values (or their registrations)
colliding. The model sets a process has loaded are an Info metric labelled by set and
version (`docmill_model_set_info{set,version} 1`): one process may serve several versions
at once, and an Info without those labels would hold only the last one.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, generate_latest, start_http_server
from prometheus_client.metrics import disable_created_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from docmill.storage import s3_retries

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
# 1 ms (a small decode) to 60 s (a det batch of large pages on CPU), about 2.5x apart.
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STAGES = ("decode", "det", "cls", "rec", "write")
STORAGE_REQUEST = "storage_request"

# A `<name>_created` gauge per counter and histogram would double the families scraped and
# documented for a timestamp no docmill dashboard uses. The switch is process-wide, and
# this module is the only prometheus_client user in a worker process.
disable_created_metrics()


class _RetriesWithStorage(Collector):
    """`docmill_retries_total`: the worker's own counts plus boto3's request retries, which
    the storage layer keeps and which are read at scrape time. One family needs one
    collector, so the counter stays unregistered and this collector appends the sample."""

    def __init__(self, retries: Counter, storage_retries: Callable[[], int]) -> None:
        self._retries = retries
        self._storage_retries = storage_retries

    def describe(self) -> Iterable[Metric]:
        """The family without reading storage, so registering costs no storage call."""
        return self._retries.describe()

    def collect(self) -> Iterable[Metric]:
        family = self._retries.collect()[0]  # a fresh Metric per call, safe to extend
        family.add_sample(family.name + "_total", {"what": STORAGE_REQUEST}, float(self._storage_retries()))
        yield family


class Metrics:
    """The worker's counters and histograms, thread-safe (prometheus_client's are)."""

    def __init__(self, storage_retries: Callable[[], int] = s3_retries) -> None:
        self.registry = CollectorRegistry()
        retries = Counter("docmill_retries", "Retries of storage writes and whole tasks, and boto3's "
                          "re-sent storage requests (what=storage_request)", ["what"], registry=None)
        self._counters = {
            "items": Counter("docmill_items", "Images and pages finished, by outcome (ok, kept or an error code)",
                             ["outcome"], registry=self.registry),
            "tasks": Counter("docmill_tasks", "Tasks by what happened to them (done, redelivered, rejected)",
                             ["event"], registry=self.registry),
            "retries": retries,
        }
        self.registry.register(_RetriesWithStorage(retries, storage_retries))
        self._batch = Histogram("docmill_batch_size", "Images per engine batch from the dynamic batcher",
                                buckets=BATCH_BUCKETS, registry=self.registry)
        self._stage = Histogram("docmill_stage_seconds", "Seconds per stage: decode and write per item, "
                                "det, cls and rec per engine batch", ["stage"], buckets=SECONDS_BUCKETS,
                                registry=self.registry)
        for stage in STAGES:
            self._stage.labels(stage)  # every stage scrapes from the start, so rate() has a baseline
        self._queue_wait = Histogram("docmill_queue_wait_seconds", "Seconds an item waited in the dynamic "
                                     "batcher's queue before its batch started", buckets=SECONDS_BUCKETS,
                                     registry=self.registry)
        self._model_set = Info("docmill_model_set", "Model sets loaded by this process",
                               ["set", "version"], registry=self.registry)
        self._batch_sizes: Tally[int] = Tally()  # exact sizes, which the buckets blur, for histogram()
        self._lock = threading.Lock()

    def count(self, counter: str, key: str, n: int = 1) -> None:
        """Add `n` to `counter` (items, tasks or retries) under label value `key`."""
        if counter == "retries" and key == STORAGE_REQUEST:
            raise ValueError(f"retries/{STORAGE_REQUEST} is read from the storage layer at scrape time")
        self._counters[counter].labels(key).inc(n)

    def observe_batch(self, size: int) -> None:
        self._batch.observe(size)
        with self._lock:
            self._batch_sizes[size] += 1

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Time one stage; an unknown stage is refused so the label set stays fixed."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        self._stage.labels(stage).observe(seconds)

    def observe_queue_wait(self, seconds: float) -> None:
        self._queue_wait.observe(seconds)

    def set_model_set(self, name: str, version: str) -> None:
        """Mark a model set version as loaded; each version loaded keeps its own series."""
        self._model_set.labels(name, version).info({})

    def histogram(self) -> dict[int, int]:
        """Batch size -> batches of exactly that size (benches want sizes, not buckets)."""
        with self._lock:
            return dict(sorted(self._batch_sizes.items()))

    def render(self) -> str:
        """The Prometheus text exposition of this instance's registry."""
        return generate_latest(self.registry).decode()


def serve(metrics: Metrics, port: int, host: str = "0.0.0.0") -> WSGIServer:
    """Serve `metrics` on a daemon thread (any path, /metrics included); returns the server:
    `.server_address[1]` is the port when 0 was asked, `.shutdown()` stops it."""
    server, _ = start_http_server(port, addr=host, registry=metrics.registry)
    return server
