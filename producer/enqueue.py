"""One job's tasks onto the Celery queue: pinned models, backpressure, a resumable cursor.

The producer builds its own Celery client (JSON only) and sends by task name, so it never
imports worker code or its dependencies. After each chunk is on the queue, the job state
records the chunk's counts and its last key (the cursor) in one Redis round trip; a resumed
run lists from that key on and numbers its tasks from `tasks_enqueued`, so it makes the same
tasks, with the same `seq`, as the run it continues.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from docmill.documents import OutputFormat, PdfText
from docmill.inputs import may_be_document, parse_include
from docmill.jobs import ONE_LIST_PER_QUEUE, JobState, JobStore, write_summary
from docmill.messages import QUEUE, TASK_NAME, ModelsRef, OcrTask, TaskItem
from docmill.result import models_tag
from docmill.resultcheck import ResultCheck
from docmill.settings import Settings
from docmill.storage import ObjectRef, Storage, result_uri, written_by_docmill
from producer.commands import DEFAULT_PAGES_PER_TASK
from producer.documents import split_document
from producer.listing import chunked, iter_sources, prefetched

log = logging.getLogger(__name__)

POLL_START_S = 0.05
POLL_MAX_S = 1.0
PREFETCH_REFS = 2000  # listed ahead of sending: two S3 pages, a bounded amount of memory


# --- the plan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobPlan:
    """Everything that decides which tasks a job gets. Stored with the job, so a resumed run
    makes the same chunks as the run it continues, whatever flags it is given."""

    in_uri: str
    out_uri: str
    models: ModelsRef
    models_set: str
    include: str
    chunk: int
    skip_existing: bool
    queue: str = QUEUE
    options: dict[str, Any] = field(default_factory=dict)
    pages_per_task: int = DEFAULT_PAGES_PER_TASK
    pdf_text: PdfText = "ocr"
    formats: list[OutputFormat] = field(default_factory=list)

    @property
    def models_tag(self) -> str:
        """How results name their model set: the worker's `docmill-models` metadata."""
        return models_tag(self.models_set, self.models.version)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "models": self.models.model_dump()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "JobPlan":
        data = json.loads(text)
        return cls(**{**data, "models": ModelsRef(**data["models"])})


def save_plan(store: JobStore, job: str, plan: JobPlan) -> None:
    store.save_plan(job, plan.to_json())


def load_plan(store: JobStore, job: str) -> JobPlan:
    text = store.load_plan(job)
    if not text:
        raise ValueError(f"job {job!r} was not started by `docmill produce`; it cannot be resumed")
    return JobPlan.from_json(text)


# --- the queue ------------------------------------------------------------------------------


class TaskSender:
    """Celery's client side, configured here: JSON out, nothing else accepted."""

    def __init__(self, broker_url: str, queue: str = QUEUE) -> None:
        from celery import Celery

        self.app = Celery("docmill-producer", broker=broker_url, set_as_current=False)
        self.app.conf.update(task_serializer="json", accept_content=["json"],
                             result_serializer="json", broker_connection_retry_on_startup=True,
                             task_send_sent_event=True,  # Flower shows queued tasks as SENT
                             broker_transport_options=dict(ONE_LIST_PER_QUEUE))
        self.queue = queue
        self._producer: Any = None

    @contextmanager
    def connected(self) -> Iterator["TaskSender"]:
        """Hold one broker connection for a whole job instead of one per task."""
        with self.app.producer_or_acquire() as producer:
            self._producer = producer
            try:
                yield self
            finally:
                self._producer = None

    def send(self, task: OcrTask) -> None:
        """The task id is `<job>:<seq>`: a task sent twice (a crash between sending and
        recording it) carries the same id and seq, which workers count once. The short
        argsrepr spares Celery a repr of the whole payload per task (a third of the send)."""
        self.app.send_task(TASK_NAME, args=[task.to_payload()], queue=self.queue,
                           task_id=task.task_key, producer=self._producer,
                           argsrepr=f"<{task.task_key}: {len(task.items)} items>", kwargsrepr="{}")


class Backpressure:
    """Wait while the queue holds more than `max_pending` tasks, so Redis memory stays
    bounded however large the listing is."""

    def __init__(self, store: JobStore, queue: str, max_pending: int) -> None:
        self.store = store
        self.queue = queue
        self.max_pending = max_pending

    def wait(self, on_wait: Callable[[int], None] | None = None) -> float:
        """Seconds spent waiting; polls back off to POLL_MAX_S."""
        waited, delay = 0.0, POLL_START_S
        while (depth := self.store.queue_depth(self.queue)) > self.max_pending:
            if on_wait:
                on_wait(depth)
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, POLL_MAX_S)
        return waited


# --- the job --------------------------------------------------------------------------------


@dataclass
class Counts:
    """This run's progress (a resumed run counts from zero)."""

    listed: int = 0
    enqueued: int = 0
    skipped: int = 0
    tasks: int = 0
    documents: int = 0  # split into page ranges, with their pages
    pages: int = 0
    left_out: int = 0
    own_results: int = 0  # docmill's results of an earlier run, in an --out inside the input prefix
    waited_s: float = 0.0
    waiting_depth: int = 0


@dataclass
class Services:
    store: JobStore
    sender: TaskSender
    backpressure: Backpressure
    in_storage: Storage
    out_storage: Storage
    settings: Settings


def run_job(job: str, plan: JobPlan, state: JobState, svc: Services,
            on_progress: Callable[[Counts], None] = lambda c: None) -> tuple[bool, Counts]:
    """List after the job's cursor, enqueue chunk by chunk, close the listing. True when the
    job is finished already (nothing left for workers); its summary is then written here.
    With it, this run's counts, for what the job's record does not keep (keys left out)."""
    counts, seq = Counts(), state.tasks_enqueued
    check = ResultCheck(svc.out_storage, plan.models_tag, plan.formats) if plan.skip_existing else None
    refs = iter_sources(svc.in_storage, plan.in_uri, parse_include(plan.include), state.cursor)
    try:
        with svc.sender.connected():
            for chunk in prefetched(chunked(refs, plan.chunk), PREFETCH_REFS // plan.chunk + 1):
                seq += _enqueue_chunk(job, seq, chunk, plan, svc, check, counts, on_progress)
                on_progress(counts)
    finally:
        if check:
            check.close()
    finished = svc.store.finish_listing(job)
    if finished:
        write_summary(svc.store, job, plan.out_uri, svc.out_storage)
    return finished, counts


def _enqueue_chunk(job: str, seq: int, chunk: list[ObjectRef], plan: JobPlan, svc: Services,
                   check: ResultCheck | None, counts: Counts,
                   on_progress: Callable[[Counts], None]) -> int:
    """Send one chunk's tasks (unless nothing in it needs doing) and record them; the number of
    tasks sent. Images (and documents that stay whole) share one task; each page range of a
    split document is a task of its own."""
    items = _items(chunk, plan.out_uri, counts)
    todo = _pending(items, check) if check else items
    tasks = _tasks(job, todo, plan, svc, counts)

    def waiting(depth: int) -> None:
        counts.waiting_depth = depth
        on_progress(counts)

    for offset, task_items in enumerate(tasks):
        counts.waited_s += svc.backpressure.wait(waiting)
        counts.waiting_depth = 0
        svc.sender.send(OcrTask(job=job, seq=seq + offset, models=plan.models, options=plan.options,
                                out_prefix=plan.out_uri, pdf_text=plan.pdf_text, formats=plan.formats,
                                skip_existing=plan.skip_existing, items=task_items))
    skipped = len(items) - len(todo)
    svc.store.record_enqueued(job, items=len(todo), tasks=len(tasks), skipped=skipped, cursor=chunk[-1].key)
    counts.listed += len(chunk)
    counts.enqueued += len(todo)
    counts.skipped += skipped
    counts.tasks += len(tasks)
    return len(tasks)


def _pending(items: list[TaskItem], check: ResultCheck) -> list[TaskItem]:
    """The items whose results are not current, those current but for a --format file marked
    `formats_only`: the worker keeps such a result and makes only the files."""
    todo, lacking = check.split(items)
    return [item.model_copy(update={"formats_only": True}) if item.dst in lacking else item for item in todo]


def _tasks(job: str, todo: list[TaskItem], plan: JobPlan, svc: Services, counts: Counts) -> list[list[TaskItem]]:
    """The items of each task to send for these items; split documents registered first, so
    that their last page knows it is the last."""
    whole: list[TaskItem] = []
    ranges: list[list[TaskItem]] = []
    for item in todo:
        split = split_document(item, svc.in_storage, svc.settings, plan.pages_per_task) \
            if may_be_document(item.src) else None
        if split is None or split.page_count is None:
            whole.append(item)
            continue
        svc.store.register_document(job, item.dst, split.page_count)
        counts.documents += 1
        counts.pages += split.page_count
        ranges += [[part] for part in split.items]
    return ([whole] if whole else []) + ranges


def _items(chunk: list[ObjectRef], out_uri: str, counts: Counts) -> list[TaskItem]:
    """Task items for a chunk. A key that cannot map to a result inside the output prefix
    ('..' segments) is left out with a warning rather than stopping a long backfill, and so
    are the searchable PDFs and pictures docmill wrote into an output prefix inside the
    input prefix: read again, each would become a result of its own."""
    items = []
    for ref in chunk:
        if written_by_docmill(out_uri, ref.uri):
            if not counts.own_results:
                log.warning("passing over docmill's own results in --out %s (the first: %s)", out_uri, ref.uri)
            counts.own_results += 1
            continue
        try:
            dst = result_uri(out_uri, ref.key)
        except ValueError as exc:
            log.warning("left out %s: %s", ref.uri, exc)
            counts.left_out += 1
            continue
        items.append(TaskItem(src=ref.uri, dst=dst, etag=ref.etag, bytes=ref.size))
    return items
