"""bench.versus: two trees of docmill on the same images, rounds alternated, medians per side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.models, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_this_tree_against_itself_reports_both_sides_for_every_round(tmp_path: Path):
    images = tmp_path / "images"
    images.mkdir()
    page = np.full((120, 480, 3), 255, np.uint8)
    cv2.putText(page, "TOTAL 12.50", (20, 70), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 3)
    cv2.imwrite(str(images / "line.png"), page)
    done = subprocess.run([sys.executable, "-m", "bench.versus", str(REPO), "--images", str(images), "--rounds", "2",
                           "--", "--device", "cpu"], cwd=REPO, capture_output=True, text=True, check=True)
    assert [line.split()[:3] for line in done.stdout.splitlines() if line.startswith("round")] == [
        ["round", "1", "this"], ["round", "1", "other"], ["round", "2", "other"], ["round", "2", "this"]]
    report = json.loads((REPO / "bench" / "results" / "versus.json").read_text())
    for side in ("this", "other"):
        assert len(report["runs"][side]) == 2
        medians = report["medians"][side]
        assert medians["images_per_s"] > 0 and medians["cpu_s"] > 0 and medians["host_ms_per_image"] > 0


def test_a_folder_that_is_not_a_checkout_is_refused_before_any_run(tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", "bench.versus", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode != 0 and "not a docmill checkout" in done.stderr


def test_arguments_after_the_double_dash_reach_docmill_run(tmp_path: Path):
    (tmp_path / "images").mkdir()
    done = subprocess.run([sys.executable, "-m", "bench.versus", str(REPO), "--images", str(tmp_path / "images"),
                           "--rounds", "1", "--", "--no-such-flag"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0 and "docmill run failed" in done.stderr and "--no-such-flag" in done.stderr


def test_each_tree_reads_with_its_own_model_set(tmp_path: Path):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "blank.png"), np.full((64, 64, 3), 255, np.uint8))
    done = subprocess.run([sys.executable, "-m", "bench.versus", str(REPO), "--images", str(images), "--rounds", "1",
                           "--models", "pp-ocrv4-ch", "--other-models", "no-such-set", "--", "--device", "cpu"],
                          cwd=REPO, capture_output=True, text=True)
    assert [line.split()[:3] for line in done.stdout.splitlines()] == [["round", "1", "this"]]
    assert done.returncode != 0 and "docmill run failed" in done.stderr and "no-such-set" in done.stderr
