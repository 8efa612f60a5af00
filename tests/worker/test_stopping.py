"""worker.stopping: `docmill run` stopped by a signal part way, as a real process: what was
started is finished and written, the summary says what was left, and a rerun with
--skip-existing reads exactly that, a long document's unread pages included."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from worker.flow import MAX_ITEMS_AHEAD

pytestmark = pytest.mark.models

INPUTS = 300  # well past the window of inputs started ahead (worker.flow.MAX_ITEMS_AHEAD), even on a busy machine


def _page(n: int) -> np.ndarray:
    page = np.full((64, 320, 3), 255, np.uint8)
    cv2.putText(page, f"ITEM {n:03d}", (10, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2)
    return page


def _pages(folder: Path) -> None:
    folder.mkdir()
    for n in range(INPUTS):
        cv2.imwrite(str(folder / f"{n:03d}.png"), _page(n))


def _run(pages: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "docmill.cli", "run", str(pages), "--out", str(out), "--device",
                             "cpu", "--models", "pp-ocrv4-ch", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def _first_result(out: Path, proc: subprocess.Popen, limit_s: float = 120.0, pattern: str = "*.json") -> None:
    deadline = time.monotonic() + limit_s
    while not (out.is_dir() and any(out.glob(pattern))):
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
    assert f"docmill run: {name}: finishing the images and pages being read" in stderr
    assert re.search(rf"stopped by {name} with {summary['not_started']} inputs? not started", stderr)

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


def test_a_signal_stops_a_document_part_way_and_a_rerun_reads_only_its_unread_pages(tmp_path: Path):
    """The signal ends a document after the pages being read, with no document result or
    --format file yet: the pages it had not reached, and those started (MAX_ITEMS_AHEAD of
    them) but still waiting for the pixel budget, here one page at a time. The rerun keeps
    the pages written (not rewritten) and reads the rest, then writes the whole document's
    result and text."""
    count = 100
    source, out = tmp_path / "in" / "long.tif", tmp_path / "out"
    source.parent.mkdir()
    frames = [Image.fromarray(_page(n)) for n in range(count)]
    frames[0].save(source, save_all=True, append_images=frames[1:], compression="tiff_lzw")
    proc = _run(source.parent, out, "--format", "txt", env={"DOCMILL_PIXEL_BUDGET_MP": "0.01"})
    _first_result(out, proc, pattern="long.tif/page-*.json")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert (summary["stopped_by"], summary["documents"], summary["documents_unfinished"]) == ("SIGINT", 0, 1)
    assert 0 < summary["pages"] < count - MAX_ITEMS_AHEAD and summary["pages"] + summary["pages_unread"] == count
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "long.tif").glob("page-*.json")}
    assert len(kept) == summary["pages"]
    assert not (out / "long.tif.json").exists() and not (out / "long.tif.txt").exists()
    assert re.search(rf"and {summary['pages_unread']} pages? unread in 1 document \(run again", stderr)

    rest = _run(source.parent, out, "--format", "txt", "--skip-existing", "--quiet")
    stdout, stderr = rest.communicate(timeout=300)
    assert rest.returncode == 0, stderr
    again = json.loads(stdout.strip().splitlines()[-1])
    assert (again["pages"], again["results_kept"], again["documents"]) == (summary["pages_unread"], len(kept), 1)
    assert {name: (out / "long.tif" / name).stat().st_mtime_ns for name in kept} == kept
    document = json.loads((out / "long.tif.json").read_text())
    assert [page["status"] for page in document["pages"]] == ["ok"] * count
    text = (out / "long.tif.txt").read_text().replace(" ", "")
    assert all(f"ITEM{n:03d}" in text for n in range(count))
