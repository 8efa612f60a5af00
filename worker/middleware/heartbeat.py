"""Worker heartbeats, so a killed worker's tasks are back on the queue within a minute.

Tasks are acked late, so each stays in kombu's `unacked` hash while a worker holds it, and
kombu re-queues a dead worker's only after the visibility timeout, which must outlast the
slowest task (an hour). So each worker registers in Redis, beats every `heartbeat_s` and
records the delivery tags it holds; a thread in every worker re-queues the tags of workers
silent for `worker_lost_after_s` (the Redis side is docmill.jobs.WorkerRegistry), with the
messages their taking lists hold (worker/kombu_taking.py). A worker takes only once registered.

This runs in the Celery consumer, the process that takes messages and holds their tags,
whatever the pool: the only process with the threads and solo pools, the parent with prefork.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, signals
from celery.worker import state

from docmill.jobs import WorkerRegistry, connect
from docmill.settings import Settings
from worker.kombu_taking import Taker
from worker.metrics import Metrics

log = logging.getLogger(__name__)


def held_tags() -> list[str]:
    """The delivery tags of every request this consumer holds: prefetched, running, or
    waiting out an ETA (a retry's countdown). All of them are unacked."""
    return [request.message.delivery_tag for request in list(state.requests.values())]


class Heartbeat:
    """One worker's registration, its beat, and the recovery of lost workers' tasks."""

    def __init__(self, app: Celery, registry: WorkerRegistry, settings: Settings, metrics: Metrics | None,
                 taker: Taker | None = None):
        self.app = app
        self.registry = registry
        self.taker = taker or Taker(registry)
        self.settings = settings
        self.metrics = metrics
        self.worker = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, sender: Any, **_: object) -> None:
        """On worker_init, before any message is taken: beat in a thread, and register now
        (should Redis fail just now, the thread's beats register it). The name is unique per
        start, so a restarted worker never takes over a dead one's registration."""
        if sender.app is not self.app:
            return
        self.worker = f"{sender.hostname}/{os.getpid()}/{secrets.token_hex(4)}"
        self._thread = threading.Thread(target=self._run, name="docmill-heartbeat", daemon=True)
        self._thread.start()
        self.registry.beat(self.worker, [])
        self.taker.own(self.worker)

    def hold(self, sender: Any, request: Any, **_: object) -> None:
        """On task_received: record the tag now, so a worker killed before its next beat
        still has every task it took recorded."""
        if sender.app is self.app and self.worker:
            self.registry.hold(self.worker, request.message.delivery_tag)

    def stop(self, sender: Any, **_: object) -> None:
        """On worker_shutdown, sent once a warm shutdown has acked or re-queued every task
        (leaving gives back anything still in the taking list)."""
        if sender.app is not self.app or self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self.registry.leave(self.worker)

    def tick(self) -> None:
        """Beat, then re-queue what every lapsed worker held, and what a worker killed before
        it could record a task left behind."""
        self.registry.beat(self.worker, held_tags())
        self.taker.own(self.worker)
        lost_after_s = self.settings.worker_lost_after_s
        for lost in self.registry.lapsed(lost_after_s):
            try:
                tags = self.registry.recover(lost, lost_after_s)
            except Exception:  # noqa: BLE001 - one worker's state must not hold up the others' recovery
                log.warning("could not re-queue what worker %s held; trying at the next beat", lost, exc_info=True)
                continue
            if tags is not None:
                log.warning("worker %s silent for over %ss: re-queued the %d tasks it held", lost,
                            lost_after_s, len(tags))
                self._count(len(tags))
        orphans = self.registry.recover_orphans(lost_after_s)
        if orphans:
            log.warning("re-queued %d tasks unacked for over %ss that no worker had recorded", len(orphans),
                        lost_after_s)
            self._count(len(orphans))

    def _count(self, recovered: int) -> None:
        if self.metrics:
            self.metrics.count("tasks", "recovered", recovered)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - Redis trouble must not end the beat for good
                log.warning("heartbeat failed; trying again in %ss", self.settings.heartbeat_s, exc_info=True)


def install(app: Celery, settings: Settings, metrics: Metrics | None,
            on_taken: Callable[[str], None] | None = None) -> Heartbeat:
    """Hook a Heartbeat into `app`'s worker (Celery's signals are global, so each handler
    checks that the signal is about this app). Its taker goes in the app's transport options."""
    registry = WorkerRegistry(connect(settings.broker_url.get_secret_value()))
    heartbeat = Heartbeat(app, registry, settings, metrics, Taker(registry, on_taken))
    signals.worker_init.connect(heartbeat.start, weak=False)
    signals.task_received.connect(heartbeat.hold, weak=False)
    signals.worker_shutdown.connect(heartbeat.stop, weak=False)
    return heartbeat
