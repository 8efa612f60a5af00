"""The glibc tuning the engine applies at load (worker/engine/memory.py)."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import pytest

from worker.engine.memory import fix_mmap_threshold


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_threshold_is_fixed_on_glibc_and_zero_leaves_the_default():
    assert fix_mmap_threshold(128) is True
    assert fix_mmap_threshold(0) is False
    assert ctypes.CDLL(ctypes.util.find_library("c")).mallopt  # the call it makes exists
