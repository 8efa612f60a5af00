"""The dynamic batcher: items of concurrently running tasks merged into engine batches.

Triton's semantics: a batch closes when it holds `max_batch_images` items or when its oldest
item has waited `max_delay_ms`, whichever comes first. Each item gets its own future, and a
batch that breaks the engine is retried image by image (worker.runner.run_batch), so one
item's failure is that item's outcome alone.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from docmill.options import EngineOptions
from worker.engine.pipeline import OcrEngine
from worker.items import DecodedItem
from worker.metrics import Metrics
from worker.runner import run_batch


@dataclass
class _Pending:
    item: DecodedItem
    options: EngineOptions
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """One per process; `submit` is thread-safe and returns a Future of the item's output
    (PageLines, or ResultError when the engine failed on it)."""

    def __init__(self, engine: OcrEngine, max_batch_images: int, max_delay_ms: float, metrics: Metrics):
        self.engine = engine
        self.max_batch = max_batch_images
        self.max_delay = max_delay_ms / 1000.0
        self.metrics = metrics
        self._queue: "queue.Queue[_Pending | None]" = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="docmill-batcher", daemon=True)
        self._thread.start()

    def submit(self, item: DecodedItem, options: EngineOptions) -> Future:
        pending = _Pending(item, options)
        self._queue.put(pending)
        return pending.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _collect(self) -> list[_Pending] | None:
        """Block for the first item, then gather until full or the first item's deadline."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = first.queued_at + self.max_delay
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)
                break
            batch.append(nxt)
        return batch

    def _loop(self) -> None:
        while (batch := self._collect()) is not None:
            self.metrics.observe_batch(len(batch))
            for group in _by_options(batch).values():
                self._run(group)

    def _run(self, group: list[_Pending]) -> None:
        try:
            outputs: list[Any] = run_batch(self.engine, [p.item for p in group], group[0].options)
        except BaseException as exc:  # noqa: BLE001 - never leave a waiting task hanging
            for p in group:
                p.future.set_exception(exc)
            return
        for p, out in zip(group, outputs):
            p.future.set_result(out)


def _by_options(batch: list[_Pending]) -> dict[str, list[_Pending]]:
    """Only items with the same engine options can share an engine call."""
    groups: dict[str, list[_Pending]] = defaultdict(list)
    for p in batch:
        groups[json.dumps(p.options.model_dump(mode="json"), sort_keys=True)].append(p)
    return groups



