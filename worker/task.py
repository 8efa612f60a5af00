"""What a worker does with one validated docmill.task/v1 message, without Celery.

The items go through the shared item flow (worker/flow.py), merged with other tasks' items
by the dynamic batcher; each result is written to its `dst` before the task's outcomes are
counted in the job state, once per task whatever the redeliveries. A redelivered task runs
its items one at a time under the redelivery cap (worker/middleware/redelivery.py).
"""

from __future__ import annotations

import logging

from docmill.documents import PageSummary
from docmill.jobs import TaskPages, write_summary
from docmill.messages import OcrTask, TaskItem
from docmill.options import EngineOptions
from docmill.result import DocumentPage, ModelsInfo, ResultError
from docmill.storage import StorageError, open_storage
from worker.documents import DocumentPart, DocumentReader, document_result
from worker.flow import Event, Outcome, RunContext, options_for
from worker.host import LoadedModels, WorkerHost
from worker.items import DecodedItem
from worker.middleware.outcomes import count_items, count_kept, count_task
from worker.middleware.retries import TransientError
from worker.results import build_result

log = logging.getLogger(__name__)


def run_task(host: WorkerHost, task: OcrTask, final_try: bool = True) -> dict[str, int]:
    """Process every item of `task`; returns outcome counts. Raises TransientError (before
    counting anything) when storage failed in a way a retry may cure and retries remain."""
    redelivered = host.redelivery.is_redelivery(task)
    loaded = host.models(task.models)
    context = RunContext(options_for(loaded.engine.options.merged(task.options), task.formats), _models_info(loaded),
                         loaded.engine.providers, pdf_text=task.pdf_text, formats=tuple(task.formats),
                         reuse_pages=task.skip_existing,
                         formats_lacking=frozenset(item.dst for item in task.items if item.formats_only))
    if redelivered:
        count_task(host.metrics, "redelivered")
        events = [event for item in task.items
                  for event in host.redelivery.guard(task, item, lambda it: _alone(loaded, it, context),
                                                     lambda it, error: _give_up(host, it, error, context))]
    else:
        events = list(loaded.flow.run(task.items, context))
    retryable = [e for e in events if e.retryable]
    if retryable and not final_try:
        raise TransientError(f"{len(retryable)} item(s) hit storage trouble, e.g. {retryable[0].key}")
    return _record(host, task, events, context)


def fail_task(host: WorkerHost, task: OcrTask, message: str) -> dict[str, int]:
    """Give up on a task that keeps failing as a whole (a model set that will not load, say):
    every item (every page of a document item) gets an `engine_error` result and counts as
    failed, so the job still ends with one result per image instead of waiting forever for a
    dropped message."""
    models = ModelsInfo(set=task.models.uri.rstrip("/").rsplit("/", 2)[-2] or "unknown",
                        version=task.models.version)
    context = RunContext(EngineOptions(), models, [], pdf_text=task.pdf_text)
    error = ResultError(code="engine_error", message=f"the task failed repeatedly: {message}"[:500])
    return _record(host, task, [e for item in task.items for e in _give_up(host, item, error, context)], context)


def _alone(loaded: LoadedModels, item: TaskItem, context: RunContext) -> list[Event]:
    return list(loaded.flow.run([item], context, ahead=1))


def _give_up(host: WorkerHost, item: TaskItem, error: ResultError, context: RunContext) -> list[Event]:
    """Error results for an item that is not run at all, written like any other: an image's
    result, or each page's of a document's page range and then its part."""
    if item.pages is None:
        return [_write_given_up(host, DecodedItem(item=item), error, context)]
    first, last = item.pages
    reader = DocumentReader(item, host.spool, host.settings, context.pdf_text)
    reader.numbers = list(range(first, last + 1))
    events: list[Event] = []
    for number in reader.numbers:
        page = DecodedItem(item=reader.page_item(number), page=DocumentPage(index=number, count=reader.page_count))
        events.append(outcome := _write_given_up(host, page, error, context))
        reader.record(outcome.page_summary())
    return events + [reader.part()]


def _write_given_up(host: WorkerHost, decoded: DecodedItem, error: ResultError, context: RunContext) -> Outcome:
    result = build_result(decoded, error, context.models, context.providers)
    try:
        host.writer.write(result, decoded.item.dst, decoded.item.etag)
    except StorageError as exc:
        return Outcome(result, exc, retryable=not exc.permanent)
    return Outcome(result)


def _record(host: WorkerHost, task: OcrTask, events: list[Event], context: RunContext) -> dict[str, int]:
    """Count the task's outcomes once in the job state; write the results of documents whose
    last page this was; the worker whose task (or document) completes the job writes its
    summary."""
    outcomes = [e for e in events if isinstance(e, Outcome)]
    parts = [e for e in events if isinstance(e, DocumentPart)]
    count_items(host.metrics, outcomes)
    failures = {o.key: o.code for o in outcomes if o.code}  # the writer logged write errors
    whole_parts = [p for p in parts if p.item.pages is None]
    split = [p for p in parts if p.item.pages is not None]
    whole = [host.deliverables.finish_document(document_result(p, context.models, context.pdf_text), p.item,
                                               context.formats) for p in whole_parts]
    failures.update({part.item.src: code for part, code in zip(whole_parts, whole) if code})
    images = [o for o in outcomes if o.result.page is None]
    failed = sum(1 for o in images if o.code) + sum(1 for code in whole if code)
    done = len(images) + len(whole) - failed
    reused = sum(p.reused for p in parts)  # document pages kept from an earlier run: no outcome of their own
    kept = sum(1 for o in images if o.kept and not o.code) + reused
    count_kept(host.metrics, reused)
    pages = TaskPages(done=sum(1 for o in outcomes if o.result.page and not o.code) + reused,
                      failed=sum(1 for o in outcomes if o.result.page and o.code),
                      summaries={p.item.dst: {s.index: s.model_dump_json() for s in p.pages} for p in split})
    status, completed = host.jobs.record_task_pages(task.job, task.seq, failures, done=done, failed=failed,
                                                    pages=pages, kept=kept)
    if status == 0:  # counted by an earlier delivery, which may have died before writing what it completed
        completed = host.jobs.documents_to_finish(task.job, [p.item.dst for p in split])
    finished = status == 2
    for dst in completed:
        part = next(p for p in split if p.item.dst == dst)
        finished |= _finish_split_document(host, task, part, context) == 2
    if finished:
        _write_summary(host, task)
    count_task(host.metrics, "done")
    counts = {"done": done, "failed": failed}
    return counts | ({"pages": pages.done + pages.failed} if pages.done + pages.failed else {})


def _finish_split_document(host: WorkerHost, task: OcrTask, part: DocumentPart, context: RunContext) -> int:
    """All pages of a split document are recorded: write its result from every task's page
    summaries, then count it (once, whoever else gets here)."""
    summaries = host.jobs.document_pages(task.job, part.item.dst)
    pages = [PageSummary.model_validate_json(summaries[n]) for n in sorted(summaries)]
    code = host.deliverables.finish_document(document_result(part, context.models, context.pdf_text, pages),
                                             part.item, context.formats)
    return host.jobs.record_document(task.job, part.item.dst, part.item.src, code)


def _write_summary(host: WorkerHost, task: OcrTask) -> None:
    """The job summary, once, by the worker that completed the job. If the output cannot take
    it, the job state in Redis still holds every count (`docmill status`); the task is done."""
    try:
        write_summary(host.jobs, task.job, task.out_prefix, open_storage(task.out_prefix, host.settings))
    except StorageError as exc:
        log.error("job %s: finished, but its summary could not be written: %s", task.job, exc)


def _models_info(loaded: LoadedModels) -> ModelsInfo:
    return ModelsInfo(set=loaded.model_set.name, version=loaded.model_set.version)
