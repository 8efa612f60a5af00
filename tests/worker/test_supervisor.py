"""`docmill worker --processes N`: N real worker processes, fresh interpreters, each registered
in Redis as a worker of its own; one that dies is started again; a SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from docmill.jobs import WorkerRegistry, connect
from tests.chaos.conftest import RedisServer, base_env
from worker.supervisor import child_argv

pytestmark = pytest.mark.services


def test_each_child_gets_its_own_name_and_metrics_port_and_no_processes_flag():
    argv = ["--pool", "threads", "--processes", "3", "--metrics-port", "9108", "--hostname", "w@host"]
    assert child_argv(argv, 2) == ["--pool", "threads", "--metrics-port", "9110", "--hostname", "w-p2@host"]
    assert child_argv(["--processes=2"], 0) == ["--hostname", "docmill-p0@%h"]


def _registered(registry: WorkerRegistry) -> set[int]:
    """The pids of the workers registered in Redis (their names hold host/pid/random)."""
    return {int(name.split("/")[1]) for name in registry.lapsed(-3600)}


def _wait(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_n_processes_run_restart_and_stop_together(tmp_path):
    redis = RedisServer(tmp_path / "redis").start()
    try:
        env = base_env(redis.url, "http://127.0.0.1:1", tmp_path / "cache")
        supervisor = subprocess.Popen([sys.executable, "-m", "docmill.cli", "worker", "--processes", "2",
                                       "--queue", "supervised", "--device", "cpu"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        registry = WorkerRegistry(connect(redis.url))
        _wait(lambda: len(_registered(registry)) == 2, 60)
        first = _registered(registry)
        assert supervisor.pid not in first
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: len(_registered(registry) - {victim}) == 2, 60)  # a new child in its place
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0
        children = _registered(registry) - {victim}
        _wait(lambda: not any(os.path.exists(f"/proc/{pid}") and "Z" not in open(f"/proc/{pid}/stat").read()
                              .split()[2] for pid in children), 10)
    finally:
        redis.stop()


def _environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as handle:
        pairs = [item.decode().partition("=") for item in handle.read().split(b"\0") if item]
    return {name: value for name, _, value in pairs}


def test_each_child_sees_its_own_gpu_and_keeps_it_when_restarted(tmp_path):
    """What `docmill worker --gpus` hands the supervisor, run for real on CPU: each child's
    CUDA_VISIBLE_DEVICES is read back from the running process."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        env = base_env(redis.url, "http://127.0.0.1:1", tmp_path / "cache")
        code = ("import sys; from worker.supervisor import Supervisor; sys.exit(Supervisor(['--queue', 'gpus', "
                "'--device', 'cpu'], [{'CUDA_VISIBLE_DEVICES': '7'}, {'CUDA_VISIBLE_DEVICES': 'GPU-b'}]).run())")
        supervisor = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        registry = WorkerRegistry(connect(redis.url))
        _wait(lambda: len(_registered(registry)) == 2, 60)
        first = {pid: _environ(pid)["CUDA_VISIBLE_DEVICES"] for pid in _registered(registry)}
        assert sorted(first.values()) == ["7", "GPU-b"]
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: len(_registered(registry) - {victim}) == 2, 60)
        replacement = (_registered(registry) - set(first)).pop()
        assert _environ(replacement)["CUDA_VISIBLE_DEVICES"] == first[victim]
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0
    finally:
        redis.stop()


def test_a_child_that_refuses_its_configuration_stops_the_supervisor_with_exit_2(tmp_path):
    """A restart cannot cure exit 2 (here `--device cuda` without CUDA, the same in every
    child): the supervisor stops instead of restarting its children every 5 s forever."""
    from worker.engine.providers import cuda_works

    if cuda_works():
        pytest.skip("CUDA loads on this host")
    redis = RedisServer(tmp_path / "redis").start()
    try:
        env = base_env(redis.url, "http://127.0.0.1:1", tmp_path / "cache")
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "docmill.cli", "worker", "--processes", "2", "--device", "cuda",
                               "--queue", "refused"], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2, done.stderr
        assert "refused to start (exit 2); stopping the others" in done.stderr
        assert "CUDA is not available here" in done.stderr
        assert time.monotonic() - start < 30  # no restart rounds (each waits 5 s)
    finally:
        redis.stop()
