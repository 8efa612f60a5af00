"""`docmill produce`: start (or resume) a job, show progress on stderr, print the job id last.

Only the job id goes to stdout, so `JOB=$(docmill produce ...)` works in scripts.
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from docmill.documents import parse_formats, results_read_again
from docmill.errors import UsageError
from docmill.inputs import DEFAULT_INCLUDE, parse_include
from docmill.jobs import JobNotFound, JobState, JobStore, connect
from docmill.messages import JOB_ID, MAX_ITEMS_PER_TASK, queue_names
from docmill.modelset import ModelSetError, pin_for_job
from docmill.settings import Settings, mask_url
from docmill.storage import StorageError, open_storage, require_writable
from docmill.wording import counted
from producer.enqueue import (Backpressure, Counts, JobPlan, Services, TaskSender, load_plan, run_job,
                              save_plan)
from producer.listing import drop_last_modified


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    broker = settings.broker_url.get_secret_value()
    _check_limits(args)
    with _broker_errors(broker):
        store = JobStore(connect(broker))
        job, plan, state = _resume(args, store) if args.resume else _start(args, settings, store)
        _note(f"job {job}: {plan.in_uri} -> {plan.out_uri}, models {plan.models_tag}, "
              f"queue {plan.queue} on {mask_url(broker)}")
        if not state.listing_done:
            _produce(job, plan, state, store, broker, args.max_pending, settings)
    print(job, flush=True)
    return 0


def _check_limits(args: argparse.Namespace) -> None:
    if not 1 <= args.chunk <= MAX_ITEMS_PER_TASK:
        raise UsageError(f"--chunk must be between 1 and {MAX_ITEMS_PER_TASK}")
    if args.max_pending < 1:
        raise UsageError("--max-pending must be 1 or more")
    if args.pages_per_task < 1:
        raise UsageError("--pages-per-task must be 1 or more")
    try:
        parse_formats(args.format)
        if len(queue_names(args.queue)) > 1:
            raise ValueError(f"--queue {args.queue!r}: a job goes to one queue; a worker can consume several "
                             "(docmill worker --queue docmill,urgent)")
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _start(args: argparse.Namespace, settings: Settings, store: JobStore) -> tuple[str, JobPlan, JobState]:
    """A new job: check the prefixes, pin the model version, record the plan."""
    if not args.input or not args.out:
        raise UsageError("produce needs an input prefix and --out (or --resume JOB)")
    job = args.job or time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
    if not JOB_ID.match(job):
        raise UsageError(f"--job {job!r}: letters, digits, '.', '_' and '-' only, at most 128")
    try:
        open_storage(args.input, settings)
        include_text = args.include or DEFAULT_INCLUDE
        include = parse_include(include_text)
        refusal = results_read_again(include, include_text, [args.input], args.out)
        if refusal is not None:
            raise UsageError(refusal)
        require_writable(args.out, settings)
        models, set_name = pin_for_job(args.models or settings.models, settings)
        plan = JobPlan(in_uri=args.input, out_uri=args.out, models=models, models_set=set_name,
                       include=",".join(include.patterns), chunk=args.chunk,
                       skip_existing=args.skip_existing, queue=args.queue,
                       options=settings.engine.as_dict(), pages_per_task=args.pages_per_task,
                       pdf_text=args.pdf_text, formats=list(parse_formats(args.format)))
        store.create(job, plan.in_uri, plan.out_uri, models.uri, models.version)
    except (ModelSetError, StorageError, ValueError) as exc:
        raise UsageError(str(exc).splitlines()[0]) from exc
    save_plan(store, job, plan)
    return job, plan, store.get(job)


def _resume(args: argparse.Namespace, store: JobStore) -> tuple[str, JobPlan, JobState]:
    """An existing job, continued with its own plan; only --max-pending may differ."""
    try:
        state = store.get(args.resume)
        plan = load_plan(store, args.resume)
    except (JobNotFound, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    if args.input and args.input != plan.in_uri:
        raise UsageError(f"job {args.resume} lists {plan.in_uri}, not {args.input}")
    if args.out and args.out != plan.out_uri:
        raise UsageError(f"job {args.resume} writes to {plan.out_uri}, not {args.out}")
    if state.listing_done:
        _note(f"job {args.resume}: listing already complete; nothing to enqueue")
    return args.resume, plan, state


def _produce(job: str, plan: JobPlan, state: JobState, store: JobStore, broker: str,
             max_pending: int, settings: Settings) -> None:
    svc = Services(store=store, sender=TaskSender(broker, plan.queue),
                   backpressure=Backpressure(store, plan.queue, max_pending),
                   in_storage=open_storage(plan.in_uri, settings),
                   out_storage=open_storage(plan.out_uri, settings), settings=settings)
    drop_last_modified(svc.in_storage)
    started = time.monotonic()
    try:
        with _progress() as show:
            finished, counts = run_job(job, plan, state, svc, show)
    except StorageError as exc:
        raise UsageError(f"{exc} (continue with: docmill produce --resume {job})") from exc
    final = store.get(job)
    documents = (f" ({counted(final.documents, 'document')} split into {counted(final.pages, 'page')})"
                 if final.documents else "")
    _note(f"job {job}: {final.total:,} listed, {final.total - final.skipped:,} enqueued{documents} in "
          f"{counted(final.tasks_enqueued, 'task')}, {final.skipped:,} skipped{_left_out(counts)} "
          f"({time.monotonic() - started:.1f}s this run)" + ("; job finished" if finished else ""))


def _left_out(counts: Counts) -> str:
    """What this run listed but did not enqueue, besides the skipped: never left out in silence."""
    parts = [counted(counts.left_out, "unsafe key")] if counts.left_out else []
    parts += [f"{counts.own_results:,} of docmill's own results in --out"] if counts.own_results else []
    return f", left out {' and '.join(parts)}" if parts else ""


@contextmanager
def _progress() -> Iterator[Callable[[Counts], None]]:
    """A live line on stderr: listed, enqueued, skipped, rate, and when the queue is full."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    started = time.monotonic()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=_console(), transient=False) as progress:
        task = progress.add_task("listing", total=None)

        def show(c: Counts) -> None:
            rate = c.listed / max(time.monotonic() - started, 1e-6)
            notes = [f"queue full ({c.waiting_depth}), waiting"] if c.waiting_depth else []
            notes += [f"waited {c.waited_s:.0f}s for the queue"] if c.waited_s >= 1 else []
            notes += [f"{counted(c.left_out, 'unsafe key')} left out"] if c.left_out else []
            notes += [f"{c.own_results:,} of docmill's own results in --out passed over"] if c.own_results else []
            if c.documents:
                notes.append(f"{counted(c.documents, 'document')} split into {counted(c.pages, 'page')}")
            progress.update(task, description=" · ".join([
                f"{c.listed:,} listed", f"{c.enqueued:,} enqueued in {counted(c.tasks, 'task')}",
                f"{c.skipped:,} skipped", f"{rate:,.0f}/s", *notes]))

        yield show


@contextmanager
def _broker_errors(broker: str) -> Iterator[None]:
    """A broker that cannot be reached is one line naming it (password masked)."""
    import redis
    from kombu.exceptions import OperationalError

    try:
        yield
    except (redis.exceptions.ConnectionError, OperationalError) as exc:
        raise UsageError(f"cannot reach the broker at {mask_url(broker)}: {exc}") from exc


def _console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(stderr=True)


def _note(text: str) -> None:
    _console().print(text, markup=False, highlight=False)
