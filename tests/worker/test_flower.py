"""Flower, started as docs/flower.md says (`celery --broker=... flower`), shows a running
docmill worker as online and lists a task it ran with its state. Real processes on the real
broker: the worker must send heartbeats (Flower's "online") and task events (Flower's task
list), and answer remote control (Flower's worker details)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import stop_process

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 40.0
# A message docmill refuses whole: the cheapest task a worker really runs (no models, no S3).
REFUSED_PAYLOAD = {"schema": "docmill.task/v1", "job": "flower-check"}
# Celery reports a Reject raised by the task as task-failed then task-rejected; Flower keeps
# FAILURE (the ready state) and the rejected time.
REFUSED_STATES = {"FAILURE", "REJECTED"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _process(argv: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A subprocess logging to `log`, terminated (then killed) however the test ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop_process(proc)


def start_worker(redis_url: str, queue: str, log: Path) -> AbstractContextManager[subprocess.Popen]:
    """`docmill worker` as deployed, on one thread (a refused message needs no engine),
    consuming only `queue` and named after it so Flower's lists can be searched."""
    argv = [sys.executable, "-m", "docmill.cli", "worker", "--queue", queue, "--pool", "solo",
            "--concurrency", "1", "--hostname", node_name(queue)]
    env = {"DOCMILL_BROKER_URL": redis_url, "DOCMILL_LOG_LEVEL": "INFO", "DOCMILL_CACHE_DIR": str(log.parent / "cache")}
    return _process(argv, log, env)


def start_flower(redis_url: str, port: int, log: Path) -> AbstractContextManager[subprocess.Popen]:
    """Flower on the broker alone (no app module), API open because it listens on loopback only."""
    argv = [sys.executable, "-m", "celery", f"--broker={redis_url}", "flower", f"--port={port}",
            "--address=127.0.0.1"]
    return _process(argv, log, {"FLOWER_UNAUTHENTICATED_API": "true"})


def node_name(queue: str) -> str:
    return f"{queue}@flower-test"


def _get_json(url: str) -> Any:
    """The JSON body, or None while Flower is not answering yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, ConnectionError):
        return None


def _poll(what: str, check: Callable[[], Any], procs: dict[str, tuple[subprocess.Popen, Path]]) -> Any:
    """`check()` until truthy; fails at once with a log when a process died, or at WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for name, (proc, log) in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                            f"{log.read_text(errors='replace')[-3000:]}")
        if found := check():
            return found
        time.sleep(0.3)
    logs = "\n".join(f"--- {name}\n{log.read_text(errors='replace')[-2000:]}" for name, (_, log) in procs.items())
    pytest.fail(f"Flower did not show {what} within {WAIT_S}s\n{logs}")


def _send_refused_task(redis_url: str, queue: str) -> str:
    from celery import Celery

    client = Celery("flower-test", broker=redis_url, set_as_current=False)
    client.conf.update(task_serializer="json", accept_content=["json"])
    task_id = str(uuid.uuid4())
    client.send_task("docmill.ocr", args=[REFUSED_PAYLOAD], queue=queue, task_id=task_id)
    return task_id


def _details(api: str, hostname: str) -> dict | None:
    """The worker's entry in Flower's worker list, once remote control has filled it in."""
    info = (_get_json(f"{api}/workers?refresh=1") or {}).get(hostname) or {}
    return info if {"registered", "active_queues"} <= info.keys() else None


def _finished(api: str, hostname: str, task_id: str) -> dict | None:
    """The task in Flower's task list, once its events say the worker is done with it."""
    task = (_get_json(f"{api}/tasks?workername={hostname}") or {}).get(task_id)
    return task if task and task["state"] in REFUSED_STATES else None


def test_flower_shows_the_worker_online_and_its_task(redis_url: str, tmp_path: Path):
    queue, port = f"flower-{uuid.uuid4().hex[:8]}", _free_port()
    api, hostname = f"http://127.0.0.1:{port}/api", node_name(queue)
    with start_flower(redis_url, port, tmp_path / "flower.log") as flower, \
            start_worker(redis_url, queue, tmp_path / "worker.log") as worker:
        procs = {"flower": (flower, tmp_path / "flower.log"), "worker": (worker, tmp_path / "worker.log")}
        # Online comes from the worker's heartbeat events, before it has run any task.
        _poll("the worker online", lambda: (_get_json(f"{api}/workers?status=1") or {}).get(hostname), procs)
        details = _poll("the worker's details", lambda: _details(api, hostname), procs)
        assert "docmill.ocr" in details["registered"]
        assert [q["name"] for q in details["active_queues"]] == [queue]

        task_id = _send_refused_task(redis_url, queue)
        task = _poll("the task finished", lambda: _finished(api, hostname, task_id), procs)
    assert (task["name"], task["worker"]) == ("docmill.ocr", hostname)
    assert task["received"] and task["started"] and task["rejected"]
