"""Outcome metrics around the task body: each item's outcome (ok, kept from an earlier run,
or its error code) and each task's (done, redelivered, rejected, retried, given up)."""

from __future__ import annotations

from collections.abc import Iterable

from worker.flow import Outcome
from worker.metrics import Metrics


def count_items(metrics: Metrics, outcomes: Iterable[Outcome]) -> None:
    for outcome in outcomes:
        metrics.count("items", outcome.code or ("kept" if outcome.kept else "ok"))


def count_kept(metrics: Metrics, pages: int) -> None:
    """Document pages whose earlier results a --skip-existing task kept: no outcome of their own."""
    if pages:
        metrics.count("items", "kept", pages)


def count_task(metrics: Metrics, event: str) -> None:
    metrics.count("tasks", event)
