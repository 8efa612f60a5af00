"""scripts/stack.py's Redis: `make stack` runs one of its own on a dedicated port and `make
stack-down` (`stack.py down`) stops it by its pid file. Only the Redis part is started here
(`stack.py redis`): the whole stack would import models and run a worker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

STACK = Path(__file__).resolve().parents[1] / "scripts" / "stack.py"

Stack = Callable[..., subprocess.CompletedProcess]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gone(pid: int) -> bool:
    """No such process, or only a zombie (dead, waiting for whoever inherited it to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, int, Path]]:
    """(run `stack.py ARGS` -> CompletedProcess, its Redis port, its state folder): a free port
    and a state folder of this test's own, so a developer's running stack is never touched.
    Whatever the test left running is stopped afterwards."""
    port, state = free_port(), tmp_path / "stack"
    env = {**os.environ, "STACK_DIR": str(state), "STACK_REDIS_PORT": str(port)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(STACK), *args], env=env, capture_output=True,
                              text=True, timeout=60)

    yield run, port, state
    run("down")


def test_redis_starts_on_its_own_port_and_down_stops_it(stack: tuple[Stack, int, Path]) -> None:
    run, port, state = stack
    started = run("redis")
    assert started.returncode == 0, started.stderr
    assert f"Redis: redis://127.0.0.1:{port}/0" in started.stderr
    pid_file = state / "redis.pid"
    pid = int(pid_file.read_text())
    assert redis.Redis(port=port).ping()

    again = run("redis")
    assert again.returncode == 0 and f"pid {pid}, already running" in again.stderr

    stopped = run("down")
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped Redis (pid {pid})" in stopped.stderr
    assert gone(pid) and not pid_file.exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port).ping()


def test_a_port_held_by_another_process_is_refused(stack: tuple[Stack, int, Path]) -> None:
    run, port, state = stack
    with socket.create_server(("127.0.0.1", port)):
        refused = run("redis")
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [
        f"stack: 127.0.0.1:{port} is taken by a process make stack did not start; "
        "stop it or set STACK_REDIS_PORT to a free port"]
    assert not (state / "redis.pid").exists()


def test_down_with_nothing_running_says_so(stack: tuple[Stack, int, Path]) -> None:
    run, _, state = stack
    result = run("down")
    assert result.returncode == 0
    assert result.stderr.strip() == f"stack: nothing to stop: no running daemon has a pid file in {state}"
