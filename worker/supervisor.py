"""`docmill worker --processes N`: N engine processes on one host (one GPU), each a whole
`docmill worker` of its own, started as a fresh interpreter.

Why processes, and why fresh ones: one process's Python host work (decode, box
post-processing, crops, CTC decode, JSON) runs under one GIL and cannot keep a GPU busy
(docs/operating.md, "Processes per GPU"). Celery's prefork pool would fork them, and CUDA does
not survive a fork once initialised; a fresh interpreter never inherits it. Each child has its
own engine, batcher, pixel budget and heartbeat, exactly as a worker started by hand.

With `docmill worker --gpus`, each child also gets its own environment: the GPU it alone
sees (worker/gpus.py), kept when it is restarted.

The supervisor forwards SIGTERM and SIGINT (a warm shutdown: running tasks finish or go back
on the queue), restarts a child that dies on its own (with a pause, so a child that cannot
start does not spin), and exits once every child has stopped. A child that exits 2 refused
its configuration (`--device cuda` where CUDA does not load, say): a restart cannot cure
that, so the supervisor stops the others and exits 2 too, and an orchestrator sees a worker
that cannot start rather than one that restarts its processes forever.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence

from docmill.errors import EXIT_USAGE

log = logging.getLogger(__name__)

RESTART_PAUSE_S = 5.0


def child_argv(argv: Sequence[str], index: int) -> list[str]:
    """The child's `docmill worker` arguments: the supervisor's own, without --processes, with
    its node name and metrics port made its own (name-p<index>, port + index)."""
    out, skip = [], False
    items = list(argv)
    for position, arg in enumerate(items):
        if skip:
            skip = False
            continue
        if arg == "--processes":
            skip = True
            continue
        if arg.startswith("--processes="):
            continue
        if arg in ("--hostname", "--metrics-port") and position + 1 < len(items):
            out += [arg, _own(arg, items[position + 1], index)]
            skip = True
            continue
        out.append(arg)
    if "--hostname" not in items:
        out += ["--hostname", f"docmill-p{index}@%h"]
    return out


def _own(flag: str, value: str, index: int) -> str:
    if flag == "--metrics-port":
        return str(int(value) + index)
    name, _, host = value.partition("@")
    return f"{name}-p{index}@{host}" if host else f"{value}-p{index}"


class Supervisor:
    """N children, kept running until a signal asks them all to stop."""

    def __init__(self, argv: Sequence[str], envs: Sequence[Mapping[str, str]]):
        """One child per entry of `envs`, each run with its entry over this process's environment."""
        self.argv = list(argv)
        self.envs = list(envs)
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        for index in range(len(self.envs)):
            self._start(index)
        while not self._stopping.is_set():
            for index, child in list(self.children.items()):
                if child.poll() == EXIT_USAGE and not self._stopping.is_set():
                    log.error("worker process %d (pid %d) refused to start (exit %d); stopping the others",
                              index, child.pid, EXIT_USAGE)
                    self._stop(signal.SIGTERM, None)
                    self._wait_all()
                    return EXIT_USAGE
                if child.poll() is not None and not self._stopping.is_set():
                    log.error("worker process %d (pid %d) exited %d; restarting it in %.0f s", index,
                              child.pid, child.returncode, RESTART_PAUSE_S)
                    self._stopping.wait(RESTART_PAUSE_S)
                    if not self._stopping.is_set():
                        self._start(index)
            self._stopping.wait(0.5)
        return self._wait_all()

    def _start(self, index: int) -> None:
        command = [sys.executable, "-m", "docmill.cli", "worker", *child_argv(self.argv, index)]
        own = self.envs[index]
        self.children[index] = subprocess.Popen(command, env={**os.environ, **own} if own else None)
        log.info("worker process %d started (pid %d)%s", index, self.children[index].pid,
                 "".join(f" {name}={value}" for name, value in own.items()))

    def _stop(self, signum: int, _frame: object) -> None:
        self._stopping.set()
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signum)

    def _wait_all(self) -> int:
        codes = [child.wait() for child in self.children.values()]
        return 0 if all(code in (0, -signal.SIGTERM, -signal.SIGINT) for code in codes) else 1
