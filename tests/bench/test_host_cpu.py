"""bench.host_cpu's steady-state figure: the doubled folder and the arithmetic over two runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.host_cpu import doubled, steady


def test_doubled_links_every_image_twice(tmp_path: Path) -> None:
    (tmp_path / "twice").mkdir()
    images = tmp_path / "images"
    images.mkdir()
    for name, data in (("r1.jpg", b"one"), ("r2.png", b"two")):
        (images / name).write_bytes(data)
    (images / "nested").mkdir()  # only the folder's own files are doubled
    folder = doubled(images, tmp_path / "twice")
    assert sorted(p.name for p in folder.iterdir()) == ["a-r1.jpg", "a-r2.png", "b-r1.jpg", "b-r2.png"]
    assert (folder / "b-r2.png").read_bytes() == b"two"


def test_steady_splits_host_cpu_into_start_up_and_per_image() -> None:
    once = {"images": 20, "cpu_s": 25.0, "session_s": 22.9}  # 2.1 s outside the sessions
    twice = {"images": 40, "cpu_s": 48.6, "session_s": 44.9}  # 3.7 s: 1.6 s for 20 more images
    figures = steady(once, twice)
    assert figures["steady_host_ms_per_image"] == pytest.approx(80.0)
    assert figures["startup_host_s"] == pytest.approx(0.5)
