"""`docmill worker ARGS` as a real process that must refuse to start: exit 2 with one line on
stderr, before its broker wait (30 s against a closed port) ever began."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

BROKER_WAIT_S = 30


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refused_worker(tmp_path: Path, *args: str) -> str:
    """The one line `docmill worker ARGS` refused with."""
    env = dict(os.environ, DOCMILL_BROKER_URL=f"redis://127.0.0.1:{closed_port()}/0",
               DOCMILL_BROKER_WAIT_S=str(BROKER_WAIT_S), DOCMILL_CACHE_DIR=str(tmp_path))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "docmill.cli", "worker", *args], env=env, capture_output=True,
                          text=True, timeout=2 * BROKER_WAIT_S, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert time.monotonic() - start < BROKER_WAIT_S - 10, "the broker wait began"
    return lines[0]
