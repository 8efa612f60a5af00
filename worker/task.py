"""What a worker does with one validated docmill.task/v1 message, without Celery.

The items go through the shared item flow (worker/flow.py), merged with other tasks' items
by the dynamic batcher; each result is written to its `dst` before the task's outcomes are
counted in the job state, once per task whatever the redeliveries. A redelivered task runs
its items one at a time under the redelivery cap (worker/middleware/redelivery.py).
"""

from __future__ import annotations

import logging

from docmill.jobs import write_summary
from docmill.messages import OcrTask, TaskItem
from docmill.result import ModelsInfo, ResultError
from docmill.storage import StorageError, open_storage
from worker.flow import Outcome, RunContext
from worker.host import LoadedModels, WorkerHost
from worker.items import DecodedItem
from worker.middleware.outcomes import count_items, count_task
from worker.middleware.retries import TransientError
from worker.results import build_result

log = logging.getLogger(__name__)


def run_task(host: WorkerHost, task: OcrTask, final_try: bool = True) -> dict[str, int]:
    """Process every item of `task`; returns outcome counts. Raises TransientError (before
    counting anything) when storage failed in a way a retry may cure and retries remain."""
    redelivered = host.redelivery.is_redelivery(task)
    loaded = host.models(task.models)
    context = RunContext(loaded.engine.options.merged(task.options), _models_info(loaded), loaded.engine.providers)
    if redelivered:
        count_task(host.metrics, "redelivered")
        outcomes = [host.redelivery.guard(task, item, lambda it: _alone(loaded, it, context),
                                          lambda it, error: _give_up(host, it, error, context.models,
                                                                     context.providers))
                    for item in task.items]
    else:
        outcomes = list(loaded.flow.run(task.items, context))
    retryable = [o for o in outcomes if o.retryable]
    if retryable and not final_try:
        raise TransientError(f"{len(retryable)} item(s) hit storage trouble, e.g. {retryable[0].result.source.uri}")
    return _record(host, task, outcomes)


def fail_task(host: WorkerHost, task: OcrTask, message: str) -> dict[str, int]:
    """Give up on a task that keeps failing as a whole (a model set that will not load, say):
    every item gets an `engine_error` result and counts as failed, so the job still ends with
    one result per image instead of waiting forever for a dropped message."""
    models = ModelsInfo(set=task.models.uri.rstrip("/").rsplit("/", 2)[-2] or "unknown",
                        version=task.models.version)
    error = ResultError(code="engine_error", message=f"the task failed repeatedly: {message}"[:500])
    return _record(host, task, [_give_up(host, item, error, models, []) for item in task.items])


def _alone(loaded: LoadedModels, item: TaskItem, context: RunContext) -> Outcome:
    return next(loaded.flow.run([item], context, ahead=1))


def _give_up(host: WorkerHost, item: TaskItem, error: ResultError, models: ModelsInfo,
             providers: list[str]) -> Outcome:
    """An error result for an item that is not run at all, written like any other."""
    result = build_result(DecodedItem(item=item), error, models, providers)
    try:
        host.writer.write(result, item.dst, item.etag)
    except StorageError as exc:
        return Outcome(result, exc, retryable=not exc.permanent)
    return Outcome(result)


def _record(host: WorkerHost, task: OcrTask, outcomes: list[Outcome]) -> dict[str, int]:
    """Count the task's outcomes once in the job state; the worker whose task completes the
    job writes its summary."""
    failures = {o.result.source.uri: o.code for o in outcomes if o.code}  # the writer logged write errors
    count_items(host.metrics, outcomes)
    done = len(outcomes) - len(failures)
    if host.jobs.record_task(task.job, task.seq, failures, done=done) == 2:
        _write_summary(host, task)
    count_task(host.metrics, "done")
    return {"done": done, "failed": len(failures)}


def _write_summary(host: WorkerHost, task: OcrTask) -> None:
    """The job summary, once, by the worker that completed the job. If the output cannot take
    it, the job state in Redis still holds every count (`docmill status`); the task is done."""
    try:
        write_summary(host.jobs, task.job, task.out_prefix, open_storage(task.out_prefix, host.settings))
    except StorageError as exc:
        log.error("job %s: finished, but its summary could not be written: %s", task.job, exc)


def _models_info(loaded: LoadedModels) -> ModelsInfo:
    return ModelsInfo(set=loaded.model_set.name, version=loaded.model_set.version)
