"""The dynamic batcher: images from any number of callers merged into engine batches.

Triton's semantics: a batch closes when it holds `max_batch_images` images or when its
oldest image has waited `max_delay_ms`, whichever comes first. The worker waits a few ms for
other tasks' images; `docmill run` uses a zero delay (a batch is whatever is queued when the
engine is free). Each image gets its own future, and a batch that breaks the engine is
retried image by image (OcrEngine.run_each), so one image's failure is its outcome alone.

With `streams` above 1 (the engine's own count by default), that many engine calls run at
once, each on the next batch: while one batch is inside a model, another's host work (det
pre- and post-processing, crops, CTC decoding, which release the GIL in OpenCV and numpy)
goes on, so a GPU is fed without gaps and a CPU's cores are shared by narrow sessions
(worker.engine.session).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from docmill.options import EngineOptions
from docmill.result import ResultError
from worker.engine.pipeline import STAGES, OcrEngine, PageLines
from worker.metrics import Metrics


@dataclass
class _Pending:
    image: np.ndarray | None
    options: EngineOptions
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)


def streams_for(engine: OcrEngine, configured: int) -> int:
    """Engine calls to run at once: the setting, or the engine's own count when it is 0."""
    return configured or engine.streams


class DynamicBatcher:
    """One per engine; `submit` is thread-safe and returns a Future of the image's output
    (PageLines, or a ResultError when the engine failed on it)."""

    def __init__(self, engine: OcrEngine, max_batch_images: int, max_delay_ms: float, metrics: Metrics,
                 streams: int = 0):
        """`streams`: engine calls at once, 0 for the engine's (streams_for)."""
        self.engine = engine
        self.max_batch = max_batch_images
        self.max_delay = max_delay_ms / 1000.0
        self.metrics = metrics
        self._queue: "queue.Queue[_Pending | None]" = queue.Queue()
        self._collecting = threading.Lock()  # one stream gathers a batch at a time
        self._threads = [threading.Thread(target=self._loop, name=f"docmill-batcher-{i}", daemon=True)
                         for i in range(streams_for(engine, streams))]
        for thread in self._threads:
            thread.start()

    def submit(self, image: np.ndarray, options: EngineOptions) -> Future:
        pending = _Pending(image, options)
        self._queue.put(pending)
        return pending.future

    def close(self) -> None:
        self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=30)

    def _collect(self) -> list[_Pending] | None:
        """Block for the first image, then gather until full or the first image's deadline."""
        with self._collecting:
            return self._gather()

    def _gather(self) -> list[_Pending] | None:
        first = self._queue.get()
        if first is None:
            self._queue.put(None)  # the other streams stop on it too
            return None
        batch = [first]
        deadline = first.queued_at + self.max_delay
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)
                break
            batch.append(nxt)
        return batch

    def _loop(self) -> None:
        while (batch := self._collect()) is not None:
            self._serve(batch)
            del batch  # while the next _collect blocks, this batch's pages must not stay alive

    def _serve(self, batch: list[_Pending]) -> None:
        self.metrics.observe_batch(len(batch))
        started = time.monotonic()
        for pending in batch:
            self.metrics.observe_queue_wait(started - pending.queued_at)
        for group in _by_options(batch).values():
            self._run(group)

    def _run(self, group: list[_Pending]) -> None:
        try:
            outputs = self.engine.run_each(_take_images(group), group[0].options)
        except BaseException as exc:  # noqa: BLE001 - never leave a waiting caller hanging
            for p in group:
                p.future.set_exception(exc)
            return
        self._observe_stages(outputs)
        for p, out in zip(group, outputs):
            p.future.set_result(out)

    def _observe_stages(self, outputs: list[PageLines | ResultError]) -> None:
        """Each model stage's time for this engine call (the sum of its pages' shares); a
        batch that failed as a whole has none to report."""
        pages = [out for out in outputs if isinstance(out, PageLines)]
        for stage in STAGES:
            seconds = sum(p.timings_ms[stage] for p in pages) / 1000
            if pages and (stage != "cls" or seconds):  # no cls time when angle classification is off
                self.metrics.observe_stage(stage, seconds)


def _take_images(group: list[_Pending]) -> list[np.ndarray]:
    """The group's images, no longer held by the batch: once the engine returns, the caller
    that is told the result holds the last reference and can free the page at once."""
    images = [p.image for p in group]
    for p in group:
        p.image = None
    return images  # type: ignore[return-value]


def _by_options(batch: list[_Pending]) -> dict[str, list[_Pending]]:
    """Only images with the same engine options can share an engine call."""
    groups: dict[str, list[_Pending]] = defaultdict(list)
    for p in batch:
        groups[json.dumps(p.options.model_dump(mode="json"), sort_keys=True)].append(p)
    return groups
