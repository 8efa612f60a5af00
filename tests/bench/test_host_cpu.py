"""bench.host_cpu's steady-state figure: the doubled folder and the arithmetic over two runs;
and its runs through the engine's CUDA branches."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.host_cpu import doubled, measure, steady
from demo.pages import write_samples


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


@pytest.mark.models
@pytest.mark.slow
def test_the_cuda_path_is_measured_through_the_engines_cuda_branches(tmp_path: Path) -> None:
    write_samples(tmp_path)
    (tmp_path / "truth.json").unlink()
    plain, cuda = measure("pp-ocrv6-int8det", tmp_path), measure("pp-ocrv6-int8det", tmp_path, cuda_path=True)
    assert plain["images"] == cuda["images"] == 5
    assert cuda["distinct_shapes"]["rec"] < plain["distinct_shapes"]["rec"]  # the CUDA defaults' buckets
    assert cuda["host_ms_per_image"] > 0 and cuda["session_s"] > 0
