"""`docmill status JOB [--watch] [--json]`: a job's counts, throughput and ETA, from Redis,
and the workers registered on the same broker (live, or silent past DOCMILL_WORKER_LOST_AFTER_S),
so a job that stalls because no worker runs says so.

Reads only what the producer and workers keep (docmill.jobs), so it works from any machine
that can reach the broker, while the job runs or after it finished.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from docmill.errors import UsageError
from docmill.jobs import JobNotFound, JobState, JobStore, WorkerRegistry, connect
from docmill.settings import Settings, mask_url
from docmill.wording import counted


def view(state: JobState, now: float | None = None) -> dict[str, Any]:
    """The job state plus what people ask of it: elapsed time, images/s, pages/s, ETA. The
    rate is images and documents with an outcome (done or failed) per second since the job
    started; skipped ones cost nothing, so they would flatter it. Document pages have their
    own rate."""
    now = time.time() if now is None else now
    end = state.finished_at or now
    elapsed = max(end - state.started_at, 0.0) if state.started_at else 0.0
    processed = state.done + state.failed
    rate = processed / elapsed if elapsed > 0 else 0.0
    eta = 0.0 if state.finished else (state.pending / rate if rate > 0 and state.listing_done else None)
    pages_rate = (state.pages_done + state.pages_failed) / elapsed if elapsed > 0 else 0.0
    return {**state.model_dump(mode="json"), "elapsed_s": round(elapsed, 3),
            "images_per_s": round(rate, 3), "pages_per_s": round(pages_rate, 3),
            "eta_s": None if eta is None else round(eta, 1)}


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    broker = settings.broker_url.get_secret_value()
    client = connect(broker)
    store, workers = JobStore(client), _Workers(WorkerRegistry(client), settings.worker_lost_after_s)
    state = _get(store, args.job, broker)
    if args.watch and not state.finished:
        state = _watch(store, workers, args.job, broker, max(args.interval, 0.1))
    data = workers.add_to(view(state))
    if args.json:
        print(json.dumps(data, sort_keys=True), flush=True)
    else:
        from rich.console import Console

        Console().print(_table(data))
    return 0


def _get(store: JobStore, job: str, broker: str) -> JobState:
    import redis

    try:
        return store.get(job)
    except JobNotFound as exc:
        raise UsageError(f"{exc} at {mask_url(broker)}") from exc
    except redis.exceptions.ConnectionError as exc:
        raise UsageError(f"cannot reach the broker at {mask_url(broker)}: {exc}") from exc


class _Workers:
    """The broker's worker census, added to a job's view."""

    def __init__(self, registry: WorkerRegistry, lost_after_s: float):
        self.registry = registry
        self.lost_after_s = lost_after_s

    def add_to(self, data: dict[str, Any]) -> dict[str, Any]:
        live, silent = self.registry.census(self.lost_after_s)
        return {**data, "workers": {"live": live, "silent": silent, "lost_after_s": self.lost_after_s}}


def _watch(store: JobStore, workers: _Workers, job: str, broker: str, interval: float) -> JobState:
    """Refresh a table on stderr until the job is finished; the last state."""
    from rich.console import Console
    from rich.live import Live

    state = _get(store, job, broker)
    with Live(_table(workers.add_to(view(state))), console=Console(stderr=True), auto_refresh=False) as live:
        while not state.finished:
            time.sleep(interval)
            state = _get(store, job, broker)
            live.update(_table(workers.add_to(view(state))), refresh=True)
    return state


def _table(data: dict[str, Any]):  # type: ignore[no-untyped-def]
    from rich.table import Table

    phase = "finished" if data["finished"] else ("running" if data["listing_done"] else "listing")
    table = Table(title=f"job {data['job']} · {phase}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key in ("total", "done", "failed", "skipped", "pending"):
        table.add_row(key, f"{data[key]:,}")
    if data["kept"]:
        table.add_row("kept", f"{counted(data['kept'], 'earlier result')} (within done)")
    if data["documents"]:
        table.add_row("documents", f"{data['documents_done']:,} of {data['documents']:,} written")
        table.add_row("pages", f"{data['pages_done'] + data['pages_failed']:,} of {data['pages']:,} "
                      f"({data['pages_failed']:,} failed)")
        table.add_row("pages/s", f"{data['pages_per_s']:,.1f}")
    table.add_row("images/s", f"{data['images_per_s']:,.1f}")
    table.add_row("ETA", _duration(data["eta_s"]))
    table.add_row("elapsed", _duration(data["elapsed_s"]))
    table.add_row("models", f"{data['models'].get('uri', '')} ({data['models'].get('version', '')})")
    if "workers" in data and not data["finished"]:
        table.add_row("workers", _workers(data["workers"]))
    for code, n in sorted(data["failure_codes"].items()):
        table.add_row(f"failed: {code}", f"{n:,}")
    return table


def _workers(census: dict[str, Any]) -> str:
    """Say "2 live", or "0 live, 1 silent for over 30 s", which tells why a job stalls."""
    silent = f", {census['silent']:,} silent for over {census['lost_after_s']:g} s" if census["silent"] else ""
    return f"{census['live']:,} live{silent}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
