"""`docmill worker` as a real process: pointed at a dead broker it says why in one line and
exits after the bounded wait, instead of retrying in silence; asked for a device or values it
cannot run with, it says so in one line before that wait begins."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.worker.refused import closed_port, refused_worker


def test_a_dead_broker_stops_the_worker_with_one_line(tmp_path):
    env = dict(os.environ, DOCMILL_BROKER_URL=f"redis://:secretpw@127.0.0.1:{closed_port()}/0",
               DOCMILL_BROKER_WAIT_S="3", DOCMILL_CACHE_DIR=str(tmp_path))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "docmill.cli", "worker", "--device", "cpu"], env=env,
                          capture_output=True, text=True, timeout=90)
    took = time.monotonic() - start
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "cannot start: broker" in lines[0] and "DOCMILL_BROKER_WAIT_S" in lines[0]
    assert "secretpw" not in proc.stderr
    assert 3 <= took < 20


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_cuda_asked_for_where_it_does_not_load_is_one_line_before_the_broker_wait(tmp_path, pool):
    """Such a worker used to start, take tasks and fail each one until its retries ran out.
    The prefork pool's check runs in a probe process (a CUDA context made in the parent would
    reach its forked children broken); both say the same line."""
    from worker.engine.providers import cuda_works

    if cuda_works():
        pytest.skip("CUDA loads on this host")
    line = refused_worker(tmp_path, "--device", "cuda", "--pool", pool)
    assert line.startswith("docmill: --device cuda: CUDA is not available here")
    assert line.endswith("use --device auto or cpu")


@pytest.mark.parametrize(("args", "says"), [
    (["--concurrency", "0"], "--concurrency must be 1 or more"),
    (["--max-batch-images", "0"], "--max-batch-images must be 1 or more"),
    (["--redelivery-cap", "-1"], "--redelivery-cap must be 0 or more"),
    (["--processes", "0"], "--processes must be 1 or more"),
    (["--max-delay-ms", "-1"], "--max-delay-ms must be 0 or more"),
    (["--metrics-port", "70000"], "--metrics-port must be between 1 and 65535"),
    (["--metrics-port", "65535", "--processes", "3"], "between 1 and 65533 (3 processes take ports 65535 and up)"),
    (["--queue", "docmill,"], "--queue 'docmill,': a queue name is empty"),
    (["--queue", "urgent backfill"], "'urgent backfill' has a space in it"),
])
def test_a_value_no_worker_runs_with_is_one_line_before_the_broker_wait(tmp_path, args, says):
    assert says in refused_worker(tmp_path, "--device", "cpu", *args)
