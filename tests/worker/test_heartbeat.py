"""Worker heartbeats against real Redis: a real `docmill worker`, with each pool docmill
offers, registers and records the delivery tag of a task it holds, so that tag can be
re-queued once the worker is killed; a clean stop deregisters; and a live worker's
heartbeat thread re-queues a lapsed worker's tasks and counts them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from docmill.jobs import WorkerRegistry, connect
from docmill.messages import TASK_NAME
from docmill.settings import Settings
from tests.conftest import stop_process
from tests.docmill.test_jobs_registry import channel, take  # noqa: F401 - the fixture, reused
from worker.metrics import Metrics
from worker.middleware.heartbeat import Heartbeat

pytestmark = [pytest.mark.services, pytest.mark.slow]

WAIT_S = 30.0


@pytest.fixture
def registry(redis_url: str) -> WorkerRegistry:
    return WorkerRegistry(connect(redis_url))


@pytest.fixture
def queue(registry: WorkerRegistry) -> Iterator[str]:
    name = f"q-{uuid.uuid4().hex[:8]}"
    yield name
    registry.r.delete(name)


def start_worker(redis_url: str, queue: str, pool: str, log: Path, consumes: str | None = None,
                 **faults: str) -> subprocess.Popen:
    """`docmill worker` in a session of its own, so a kill of its group takes a prefork
    pool's children too, as the loss of its machine would; on `consumes` (default: `queue`)."""
    env = dict(os.environ, DOCMILL_BROKER_URL=redis_url, DOCMILL_LOG_LEVEL="INFO", DOCMILL_HEARTBEAT_S="1",
               DOCMILL_WORKER_LOST_AFTER_S="3", DOCMILL_CACHE_DIR=str(log.parent / "cache"), **faults)
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "docmill.cli", "worker", "--queue", consumes or queue, "--pool", pool,
                                 "--concurrency", "2", "--hostname", f"{queue}@heartbeat-test"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def send_held_task(redis_url: str, queue: str) -> None:
    """A task due in an hour: the worker holds it unacked, waiting out its countdown."""
    app = Celery(broker=redis_url, set_as_current=False)
    app.send_task(TASK_NAME, args=[{"schema": "docmill.task/v1"}], queue=queue, countdown=3600)


def wait_for(what: str, check, log: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    pytest.fail(f"no {what} within {WAIT_S}s:\n{log.read_text(errors='replace')[-3000:]}")


def registered(registry: WorkerRegistry, queue: str) -> str | None:
    return next((w for w in registry.lapsed(0) if w.startswith(f"{queue}@")), None)


@pytest.mark.parametrize("pool", ["threads", "solo", "prefork"])
def test_a_killed_workers_held_task_is_recorded_and_requeued(redis_url, registry, queue, pool, tmp_path):
    log = tmp_path / "worker.log"
    proc = start_worker(redis_url, queue, pool, log)
    try:
        worker = wait_for("registration", lambda: registered(registry, queue), log)
        send_held_task(redis_url, queue)
        tags = wait_for("held tag", lambda: registry.r.smembers(registry.tags_key(worker)), log)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop_process(proc)
    assert all(registry.r.hexists("unacked", tag) for tag in tags)
    assert registry.recover(worker, 0) == list(tags)
    assert registry.r.llen(queue) == 1 and registered(registry, queue) is None


@pytest.mark.parametrize("queues", [1, 2])
def test_a_worker_killed_between_taking_a_task_and_recording_it_leaves_it_for_recovery(redis_url, registry, queue,
                                                                                      tmp_path, queues):
    """The window kombu's own BRPOP leaves open: the task was off the queue and in `unacked`
    nowhere. Now it waits in the dead worker's taking list, and recovery puts it back; for a
    worker on two queues too (`--queue other,q`, the task on the second)."""
    log = tmp_path / "worker.log"
    consumes = queue if queues == 1 else f"{queue}-other,{queue}"
    proc = start_worker(redis_url, queue, "threads", log, consumes, DOCMILL_FAULT_DIE_AFTER_TAKE="1")
    try:
        worker = wait_for("registration", lambda: registered(registry, queue), log)
        send_held_task(redis_url, queue)
        assert proc.wait(timeout=WAIT_S) == 137
    finally:
        stop_process(proc)
    taken = registry.r.lrange(registry.taking_key(worker), 0, -1)
    assert len(taken) == 1 and registry.r.llen(queue) == 0 and "dying after taking" in log.read_text()
    tag = json.loads(taken[0])["properties"]["delivery_tag"]
    assert not registry.r.hexists("unacked", tag)
    assert registry.recover(worker, 0) == [tag]
    assert registry.r.lrange(queue, 0, -1) == taken


def test_a_stopped_worker_deregisters(redis_url, registry, queue, tmp_path):
    log = tmp_path / "worker.log"
    proc = start_worker(redis_url, queue, "threads", log)
    try:
        wait_for("registration", lambda: registered(registry, queue), log)
        send_held_task(redis_url, queue)
        wait_for("held task", lambda: "received" in log.read_text(errors="replace"), log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        stop_process(proc)
    assert registered(registry, queue) is None
    assert registry.r.llen(queue) == 1  # kombu re-queued the held task itself, at shutdown


def test_a_lapsed_worker_that_cannot_be_recovered_does_not_hold_up_the_others(registry, channel, caplog):  # noqa: F811
    chan, name = channel
    broken, lost = f"test-{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    registry.beat(broken, [])
    registry.beat(lost, take(chan, name, 1))
    real_recover = registry.recover

    def recover(worker: str, lost_after_s: float) -> list[str] | None:
        if worker == broken:
            raise ValueError("a state this code cannot read")
        return real_recover(worker, lost_after_s)

    registry.recover = recover  # type: ignore[method-assign]
    heartbeat = Heartbeat(Celery(set_as_current=False), registry, Settings(heartbeat_s=1, worker_lost_after_s=3),
                          Metrics())
    heartbeat.worker = f"test-{uuid.uuid4().hex[:8]}"
    try:
        time.sleep(3.2)
        heartbeat.tick()
        assert registry.r.llen(name) == 1 and lost not in registry.lapsed(0) and broken in registry.lapsed(0)
        assert f"could not re-queue what worker {broken} held" in caplog.text
    finally:
        for worker in (broken, lost, heartbeat.worker):
            registry.leave(worker)


def test_tick_requeues_a_lapsed_workers_tasks_and_counts_them(registry, channel):  # noqa: F811
    chan, name = channel
    tags = take(chan, name, 2)
    lost = f"test-{uuid.uuid4().hex[:8]}"
    registry.beat(lost, tags)
    heartbeat = Heartbeat(Celery(set_as_current=False), registry, Settings(heartbeat_s=1, worker_lost_after_s=3),
                          Metrics())
    heartbeat.worker = f"test-{uuid.uuid4().hex[:8]}"
    heartbeat.tick()
    assert registry.r.llen(name) == 0  # not lapsed yet
    time.sleep(3.2)
    heartbeat.tick()
    assert registry.r.llen(name) == 2 and lost not in registry.lapsed(0)
    assert 'docmill_tasks_total{event="recovered"} 2.0' in heartbeat.metrics.render()
    registry.leave(heartbeat.worker)
