"""The Celery wiring, kept thin: `make_app(settings)` builds the app and its one task; the
task body is worker/task.py, with retries and outcome metrics around it (worker/middleware).

JSON is the only content type accepted anywhere, so a pickle message is refused before it is
deserialised. Messages are acked only after their results are written (acks_late), re-queued
when a worker is lost, and the engine is created in the process that runs tasks, after any
fork. Task events are sent, so Flower can show workers and tasks (docs/flower.md).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, signals
from celery.exceptions import Reject
from pydantic import ValidationError

from docmill.jobs import ONE_LIST_PER_QUEUE, JobStore, connect
from docmill.messages import QUEUE, TASK_NAME, OcrTask
from docmill.settings import Settings, mask_url
from worker import kombu_fixes, kombu_taking
from worker.middleware import faults, heartbeat, retries
from worker.middleware.outcomes import count_task

log = logging.getLogger(__name__)


def transport_options(settings: Settings, taker: kombu_taking.Taker | None = None) -> dict:
    """kombu's Redis transport. A killed worker's unacked tasks go back on the queue when
    some worker's sweep finds them older than the visibility timeout; kombu sweeps only
    every 10th tick by default (100 s), so sweep every tick of `restore_interval_s`.

    A sweep holds a Redis lock that kombu lets expire after 300 s, so a worker killed
    mid-sweep stops every other worker's sweeps for five minutes. The lock now expires
    after one sweep interval: a sweep restores ten tasks at most, each in a WATCH
    transaction, so two overlapping sweeps never restore one task twice.

    The socket timeouts turn a Redis that vanished mid-command into an error kombu retries,
    never a read that blocks forever. Each queue is one list, and the worker's taker moves
    each task off it in one step (worker/kombu_taking.py)."""
    return {**ONE_LIST_PER_QUEUE, kombu_taking.TAKER_OPTION: taker,
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": settings.restore_interval_s, "unacked_restore_throttle": 1,
            "unacked_mutex_expire": settings.restore_interval_s,
            "socket_timeout": 30, "socket_connect_timeout": 10, "retry_on_timeout": True}


class HostHolder:
    """The process's WorkerHost, created on first use (so never in a parent that forks)."""

    def __init__(self, settings: Settings, options: dict[str, Any]):
        self.settings = settings
        self.options = options
        self._host: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        from worker.host import WorkerHost

        with self._lock:
            if self._host is None:
                jobs = JobStore(connect(self.settings.broker_url.get_secret_value()))
                self._host = WorkerHost(self.settings, jobs, **self.options)
            return self._host

    def close(self, **_: object) -> None:
        if self._host is not None:
            self._host.close()


def make_app(settings: Settings, host_options: dict[str, Any] | None = None) -> Celery:
    """The worker's Celery app for these settings, with the `docmill.ocr` task registered.
    `host_options` go to the WorkerHost (device, batching, redelivery cap, metrics)."""
    kombu_fixes.apply()
    kombu_taking.apply()
    url = settings.broker_url.get_secret_value()
    app = Celery("docmill", broker=url, set_as_current=False)
    app.conf.update(
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=True, result_backend=None,
        task_acks_late=True, task_reject_on_worker_lost=True, task_acks_on_failure_or_timeout=False,
        worker_prefetch_multiplier=1, task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_send_task_events=True,
    )
    holder = HostHolder(settings, host_options or {})
    app.task(name=TASK_NAME, bind=True)(_task_body(settings, holder))
    signals.worker_process_shutdown.connect(holder.close, weak=False)
    app.docmill_host = holder  # type: ignore[attr-defined]
    beat = heartbeat.install(app, settings, holder.options.get("metrics"), faults.die_after_take())
    app.conf.broker_transport_options = transport_options(settings, beat.taker)
    log.info("broker %s", mask_url(url))
    return app


def _task_body(settings: Settings, holder: HostHolder):  # type: ignore[no-untyped-def]
    from worker.task import fail_task, run_task

    def ocr(self, payload: dict) -> dict:  # type: ignore[no-untyped-def]
        """Validate the message, run it, and let the retry policy decide what a failure leads to."""
        host = holder.get()
        try:
            task = OcrTask.model_validate(payload)
        except ValidationError as exc:
            count_task(host.metrics, "rejected")
            log.error("refused a message that is not docmill.task/v1: %s", str(exc).splitlines()[0])
            raise Reject(str(exc).splitlines()[0], requeue=False) from None
        try:
            return run_task(host, task, final_try=retries.final_try(self.request.retries, settings))
        except Exception as exc:  # noqa: BLE001 - Celery would drop the message: retry, then give results
            decision = retries.decide(exc, self.request.retries, settings)
            if not decision.retry:
                log.error("task %s failed %d times; writing engine_error results", task.task_key,
                          self.request.retries + 1)
                count_task(host.metrics, "given_up")
                return fail_task(host, task, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            count_task(host.metrics, "retried")
            host.metrics.count("retries", "task")
            log.warning("task %s failed (%s: %s); retrying", task.task_key, type(exc).__name__, exc)
            raise self.retry(exc=exc, countdown=decision.countdown_s, max_retries=decision.max_retries) from None

    return ocr
