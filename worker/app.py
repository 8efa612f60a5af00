"""The Celery wiring, kept thin: configuration, the one task, and the per-process host.

`celery -A worker.app worker` and `docmill worker` start the same thing. JSON is the only
content type accepted anywhere, so a pickle message is refused before it is deserialised.
Messages are acked only after their results are written (acks_late), re-queued when a
worker is lost, and the engine is created in the process that runs tasks, after any fork.
"""

from __future__ import annotations

import logging
import threading

from celery import Celery, signals
from celery.exceptions import Reject
from pydantic import ValidationError

from docmill.jobs import JobStore, connect
from docmill.messages import QUEUE, TASK_NAME, OcrTask
from docmill.settings import Settings, get_settings, mask_url
from worker import kombu_fixes
from worker.task_runner import TransientError, WorkerHost, fail_task, run_task

log = logging.getLogger(__name__)


def transport_options(settings: Settings) -> dict:
    """kombu's Redis transport. A killed worker's unacked tasks go back on the queue when
    some worker's sweep finds them older than the visibility timeout; kombu sweeps only
    every 10th tick by default (100 s), so sweep every tick of `restore_interval_s`. The
    socket timeouts turn a Redis that vanished mid-command into an error kombu retries,
    never a read that blocks forever."""
    return {"visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": settings.restore_interval_s, "unacked_restore_throttle": 1,
            "socket_timeout": 30, "socket_connect_timeout": 10, "retry_on_timeout": True}


def make_app(settings: Settings) -> Celery:
    kombu_fixes.apply()
    url = settings.broker_url.get_secret_value()
    app = Celery("docmill", broker=url, set_as_current=True)
    app.conf.update(
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=True, result_backend=None,
        task_acks_late=True, task_reject_on_worker_lost=True, task_acks_on_failure_or_timeout=False,
        worker_prefetch_multiplier=1, task_default_queue=QUEUE,
        broker_transport_options=transport_options(settings),
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    log.info("broker %s", mask_url(url))
    return app


app = make_app(get_settings())
_host: WorkerHost | None = None
_host_lock = threading.Lock()
HOST_OPTIONS: dict = {}


def host() -> WorkerHost:
    """The process's host, created on first use (so never in a parent that forks)."""
    global _host
    with _host_lock:
        if _host is None:
            settings = get_settings()
            _host = WorkerHost(settings, JobStore(connect(settings.broker_url.get_secret_value())),
                               **HOST_OPTIONS)
        return _host


@app.task(name=TASK_NAME, bind=True)
def ocr(self, payload: dict) -> dict:  # type: ignore[no-untyped-def]
    """Validate the message, then hand it to the engine side; nothing else lives here."""
    try:
        task = OcrTask.model_validate(payload)
    except ValidationError as exc:
        host().metrics.count("tasks", "rejected")
        log.error("refused a message that is not docmill.task/v1: %s", str(exc).splitlines()[0])
        raise Reject(str(exc).splitlines()[0], requeue=False) from None
    try:
        return run_task(host(), task, final_try=self.request.retries >= get_settings().task_retries)
    except TransientError as exc:
        host().metrics.count("retries", "task")
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries, 60),
                         max_retries=get_settings().task_retries * 4) from None
    except Exception as exc:  # noqa: BLE001 - Celery would drop the message: retry, then give results
        if self.request.retries < get_settings().task_retries:
            host().metrics.count("retries", "task")
            log.warning("task %s failed (%s: %s); retrying", task.task_key, type(exc).__name__, exc)
            raise self.retry(exc=exc, countdown=min(2 ** self.request.retries, 60),
                             max_retries=get_settings().task_retries) from None
        log.error("task %s failed %d times; writing engine_error results", task.task_key, self.request.retries + 1)
        return fail_task(host(), task, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


@signals.worker_process_shutdown.connect
def _close_host(**_: object) -> None:
    if _host is not None:
        _host.close()
