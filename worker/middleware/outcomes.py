"""Outcome metrics around the task body: each item's outcome (ok, or its error code) and
each task's (done, redelivered, rejected, retried, given up)."""

from __future__ import annotations

from collections.abc import Iterable

from worker.flow import Outcome
from worker.metrics import Metrics


def count_items(metrics: Metrics, outcomes: Iterable[Outcome]) -> None:
    for outcome in outcomes:
        metrics.count("items", outcome.code or "ok")


def count_task(metrics: Metrics, event: str) -> None:
    metrics.count("tasks", event)
