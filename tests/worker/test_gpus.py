"""`docmill worker --gpus`: which GPU each engine process sees, and a list this host cannot
serve refused in one line before any work."""

from __future__ import annotations

import ctypes

import pytest

from tests.worker.refused import refused_worker
from worker.gpus import GpuListError, child_devices, driver_gpu_count, parse_gpus


def _has_driver() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def test_a_gpu_list_is_indices_or_all():
    assert parse_gpus("0,1,3") == [0, 1, 3] and parse_gpus(" 2 ") == [2] and parse_gpus("all") is None


@pytest.mark.parametrize(("text", "says"), [("x", "such as 0,1"), ("", "such as 0,1"), ("-1", "such as 0,1"),
                                            ("0,1,0", "GPU 0 is listed twice; use --processes")])
def test_a_bad_gpu_list_says_what_to_give(text: str, says: str):
    with pytest.raises(GpuListError, match=says):
        parse_gpus(text)


def test_each_gpu_gets_its_processes_in_the_order_given():
    assert child_devices(None, 2, 2, None) == ["0", "0", "1", "1"]
    assert child_devices([1, 0], 1, 2, None) == ["1", "0"]


def test_indices_count_the_gpus_the_parent_sees_and_children_get_its_own_names():
    """A container handed GPUs 4 and 5 (or by UUID) sees them as 0 and 1."""
    assert child_devices([1], 3, 2, "4,5") == ["5", "5", "5"]
    assert child_devices(None, 1, 2, "GPU-aa, GPU-bb") == ["GPU-aa", "GPU-bb"]


def test_a_gpu_the_driver_does_not_show_is_refused_with_the_ones_it_does():
    with pytest.raises(GpuListError, match=r"no GPU 2: the driver shows 2 \(GPUs 0-1\)"):
        child_devices([0, 2], 1, 2, None)
    with pytest.raises(GpuListError, match=r"no GPU 1: the driver shows 1 \(GPU 0\)"):
        child_devices([1], 1, 1, None)
    with pytest.raises(GpuListError, match="shows no GPU"):
        child_devices(None, 1, 0, None)


def test_the_driver_counts_the_gpus_or_its_absence_is_said():
    if not _has_driver():
        with pytest.raises(GpuListError, match="no NVIDIA driver on this host"):
            driver_gpu_count()
    else:
        assert driver_gpu_count() >= 0


@pytest.mark.parametrize(("args", "says"), [
    (["--gpus", "0", "--device", "cpu"], "--gpus needs --device cuda or auto"),
    (["--gpus", "0,0"], "GPU 0 is listed twice"),
    (["--gpus", "0", "--check"], "no NVIDIA driver on this host"),
])
def test_a_gpu_list_this_host_cannot_serve_is_one_line_before_the_broker_wait(tmp_path, args, says):
    if _has_driver() and "--check" in args:
        pytest.skip("this host has an NVIDIA driver")
    assert says in refused_worker(tmp_path, *args)
