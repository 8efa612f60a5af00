"""worker.stopping: `docmill run` stopped by a signal part way, as a real process: what was
started is finished and written, the summary says what was left, and a rerun with
--skip-existing reads exactly that."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.models

INPUTS = 300  # well past the window of inputs started ahead (worker.flow.MAX_ITEMS_AHEAD), even on a busy machine


def _pages(folder: Path) -> None:
    folder.mkdir()
    for n in range(INPUTS):
        page = np.full((64, 320, 3), 255, np.uint8)
        cv2.putText(page, f"ITEM {n:03d}", (10, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2)
        cv2.imwrite(str(folder / f"{n:03d}.png"), page)


def _run(pages: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "docmill.cli", "run", str(pages), "--out", str(out), "--device",
                             "cpu", "--models", "pp-ocrv4-ch", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _first_result(out: Path, proc: subprocess.Popen, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while not (out.is_dir() and any(out.glob("*.json"))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no result appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_finishes_what_was_started_and_a_rerun_reads_the_rest(tmp_path: Path, signum: int):
    pages, out = tmp_path / "pages", tmp_path / "out"
    _pages(pages)
    proc = _run(pages, out)
    _first_result(out, proc)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    name = signal.Signals(signum).name
    assert summary["stopped_by"] == name and 0 < summary["not_started"] < INPUTS
    assert summary["images"] + summary["not_started"] == INPUTS and summary["failed"] == 0
    written = sorted(p.name for p in out.glob("*.json"))
    assert len(written) == summary["images"]
    assert not list(out.glob(".*.tmp"))
    for path in out.glob("*.json"):
        json.loads(path.read_text())  # every result whole
    assert f"docmill run: {name}: finishing the inputs already started" in stderr
    assert f"stopped by {name} with {summary['not_started']} inputs not started" in stderr

    rest = _run(pages, out, "--skip-existing", "--quiet")
    stdout, stderr = rest.communicate(timeout=300)
    assert rest.returncode == 0, stderr
    again = json.loads(stdout.strip().splitlines()[-1])
    assert (again["images"], again["current"], again["stopped_by"]) == (summary["not_started"], summary["images"],
                                                                        None)
    assert len(list(out.glob("*.json"))) == INPUTS


def test_a_second_signal_stops_at_once(tmp_path: Path):
    pages, out = tmp_path / "pages", tmp_path / "out"
    _pages(pages)
    proc = _run(pages, out)
    _first_result(out, proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and not stdout  # no summary: it did not wait for the inputs started
    for path in out.glob("*.json"):
        json.loads(path.read_text())
