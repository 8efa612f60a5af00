"""The redelivery cap. A task delivered again was in flight when a worker died, so its
items run one at a time, and each item counts how often a worker died while processing it:
past the cap it is given up as `worker_lost` instead of killing workers forever."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from docmill.jobs import JobStore
from docmill.messages import OcrTask, TaskItem
from docmill.result import ResultError

T = TypeVar("T")


class RedeliveryCap:
    def __init__(self, jobs: JobStore, cap: int):
        self.jobs = jobs
        self.cap = cap

    def is_redelivery(self, task: OcrTask) -> bool:
        """Counts this delivery; True from the second one on."""
        return self.jobs.count_delivery(task.job, task.seq) > 1

    def guard(self, task: OcrTask, item: TaskItem, run: Callable[[TaskItem], T],
              lost: Callable[[TaskItem, ResultError], T]) -> T:
        """`run(item)`, unless workers already died `cap` times on it: then `lost(item, error)`.
        This start is taken off the count once the item has an outcome; a death leaves it."""
        if self.jobs.count_item_start(task.job, item.key) > self.cap:
            error = ResultError(code="worker_lost",
                                message=f"a worker died while processing this item {self.cap} times")
            outcome = lost(item, error)
        else:
            outcome = run(item)
        self.jobs.count_item_end(task.job, item.key)
        return outcome
