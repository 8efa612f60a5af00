"""What a worker does with one validated docmill.task/v1 message, without Celery.

Items are read and decoded on an I/O pool, merged with other tasks' items by the dynamic
batcher, and each result is written to its `dst` before the task's outcomes are counted in
the job state (once per task, whatever the redeliveries). A redelivered task runs its items
one at a time and counts, per item, how often that item was being processed when a worker
died: past the cap it gets a `worker_lost` result instead of killing workers forever.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docmill.jobs import JobStore, write_summary
from docmill.messages import ModelsRef, OcrTask, TaskItem
from docmill.modelset import ModelSet, fetch_remote_set
from docmill.result import ModelsInfo, OcrResult, ResultError
from docmill.settings import Settings
from docmill.storage import ObjectRef, is_s3_uri, open_storage
from worker.batcher import DynamicBatcher
from worker.engine.pipeline import OcrEngine
from worker.items import DecodedItem, load_item
from worker.metrics import Metrics
from worker.results import build_result, write_result

log = logging.getLogger(__name__)

TRANSIENT_CODES = {"read_error"}


class TransientError(Exception):
    """Storage trouble worth retrying the whole task for (with backoff)."""


@dataclass
class LoadedModels:
    model_set: ModelSet
    engine: OcrEngine
    batcher: DynamicBatcher


class WorkerHost:
    """Everything one worker process holds for its lifetime: one engine (and batcher) per
    model version, created on first use after any fork, an I/O pool, the job store."""

    def __init__(self, settings: Settings, jobs: JobStore, device: str | None = None,
                 max_batch_images: int | None = None, max_delay_ms: float = 20.0,
                 redelivery_cap: int = 3, metrics: Metrics | None = None):
        self.settings = settings
        self.jobs = jobs
        self.device = device
        self.max_batch_images = max_batch_images or settings.batch_images
        self.max_delay_ms = max_delay_ms
        self.redelivery_cap = redelivery_cap
        self.metrics = metrics or Metrics()
        self.io = ThreadPoolExecutor(max_workers=8, thread_name_prefix="docmill-io")
        self._models: dict[str, LoadedModels] = {}
        self._lock = threading.Lock()

    def models(self, ref: ModelsRef) -> LoadedModels:
        """The engine for a pinned model version, fetched and verified on first use."""
        from worker.sessions import build_engine

        with self._lock:
            if ref.version not in self._models:
                root = fetch_remote_set(ref.uri, self.settings) if is_s3_uri(ref.uri) else Path(ref.uri)
                model_set = ModelSet.load(root)
                if model_set.version != ref.version:
                    raise ValueError(f"{ref.uri} holds version {model_set.version}, task wants {ref.version}")
                engine = build_engine(model_set, self.settings, self.device)
                batcher = DynamicBatcher(engine, self.max_batch_images, self.max_delay_ms, self.metrics)
                self._models[ref.version] = LoadedModels(model_set, engine, batcher)
            return self._models[ref.version]

    def close(self) -> None:
        for loaded in self._models.values():
            loaded.batcher.close()
        self.io.shutdown(wait=True)


def run_task(host: WorkerHost, task: OcrTask, final_try: bool = True) -> dict[str, int]:
    """Process every item of `task`; returns outcome counts. Raises TransientError (before
    counting anything) when storage failed in a way a retry may cure and retries remain."""
    attempt = host.jobs.r.hincrby(_attempts_key(task.job), f"task:{task.seq}", 1)
    loaded = host.models(task.models)
    options = loaded.engine.options.merged(task.options)
    models = ModelsInfo(set=loaded.model_set.name, version=loaded.model_set.version)
    providers = loaded.engine.det_session.providers
    if attempt > 1:
        host.metrics.count("tasks", "redelivered")
        results = [_isolated(host, task, item, loaded, options, models, providers) for item in task.items]
    else:
        results = _batched(host, task, loaded, options, models, providers, final_try)
    failures = {r.source.uri: r.error.code for r in results if r.error}
    for result in results:
        host.metrics.count("items", result.error.code if result.error else "ok")
    if host.jobs.record_task(task.job, task.seq, failures, done=len(results) - len(failures)) == 2:
        _write_summary(host, task)
    host.metrics.count("tasks", "done")
    return {"done": len(results) - len(failures), "failed": len(failures)}


def fail_task(host: WorkerHost, task: OcrTask, message: str) -> dict[str, int]:
    """Give up on a task that keeps failing as a whole (a model set that will not load, say):
    every item gets an `engine_error` result and counts as failed, so the job still ends with
    one result per image instead of waiting forever for a dropped message."""
    models = ModelsInfo(set=task.models.uri.rstrip("/").rsplit("/", 2)[-2] or "unknown",
                        version=task.models.version)
    error = ResultError(code="engine_error", message=f"the task failed repeatedly: {message}"[:500])
    items = [DecodedItem(ref=_ref(item), out_uri=item.dst) for item in task.items]
    results = [build_result(item, error, models, []) for item in items]
    _write_all(host, results, items)
    for _ in results:
        host.metrics.count("items", "engine_error")
    if host.jobs.record_task(task.job, task.seq, {r.source.uri: "engine_error" for r in results}, done=0) == 2:
        _write_summary(host, task)
    return {"done": 0, "failed": len(results)}


def _batched(host: WorkerHost, task: OcrTask, loaded: LoadedModels, options: Any,
             models: ModelsInfo, providers: list[str], final_try: bool) -> list[OcrResult]:
    items = list(host.io.map(lambda it: _load(host, it), task.items))
    transient = [i for i in items if i.error and i.error.code in TRANSIENT_CODES]
    if transient and not final_try:
        raise TransientError(f"{len(transient)} item(s) unreadable for now, e.g. {transient[0].ref.uri}")
    futures = [loaded.batcher.submit(i, options) if i.image is not None else None for i in items]
    outputs = [f.result() if f is not None else i.error for i, f in zip(items, futures)]
    results = [build_result(i, out, models, providers) for i, out in zip(items, outputs)]
    _write_all(host, results, items)
    return results


def _isolated(host: WorkerHost, task: OcrTask, item: TaskItem, loaded: LoadedModels, options: Any,
              models: ModelsInfo, providers: list[str]) -> OcrResult:
    """One item alone, after a redelivery: count how often it was in flight when a worker
    died; past the cap it is given up as `worker_lost`."""
    key, field = _attempts_key(task.job), f"item:{item.src}"
    if host.jobs.r.hincrby(key, field, 1) > host.redelivery_cap:
        decoded = DecodedItem(ref=_ref(item), out_uri=item.dst)
        error = ResultError(code="worker_lost",
                            message=f"a worker died while processing this item {host.redelivery_cap} times")
        result = build_result(decoded, error, models, providers)
    else:
        decoded = _load(host, item)
        output = loaded.batcher.submit(decoded, options).result() if decoded.image is not None else decoded.error
        result = build_result(decoded, output, models, providers)
    _write_all(host, [result], [decoded])
    host.jobs.r.hdel(key, field)
    return result


def _load(host: WorkerHost, item: TaskItem) -> DecodedItem:
    poison = host.settings.fault_crash_on_source
    if poison and poison in item.src:
        log.error("fault injection: dying on %s", item.src)
        os._exit(137)
    return load_item(_ref(item), item.dst, host.settings)


def _ref(item: TaskItem) -> ObjectRef:
    return ObjectRef(uri=item.src, key=item.src.rsplit("/", 1)[-1], size=item.bytes, etag=item.etag)


def _write_all(host: WorkerHost, results: list[OcrResult], items: list[DecodedItem]) -> None:
    """Write every result (same content on a redelivery, so rewrites are harmless)."""
    errors = [f.exception() for f in [host.io.submit(write_result, r, i, host.settings) for r, i in zip(results, items)]]
    failed = [e for e in errors if e is not None]
    if failed:
        host.metrics.count("retries", "storage_write", len(failed))
        raise TransientError(f"{len(failed)} result write(s) failed: {failed[0]}")


def _write_summary(host: WorkerHost, task: OcrTask) -> None:
    write_summary(host.jobs, task.job, task.out_prefix, open_storage(task.out_prefix, host.settings))


def _attempts_key(job: str) -> str:
    return JobStore.key(job) + ":attempts"
