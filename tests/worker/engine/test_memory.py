"""The glibc tuning the engine applies at load (worker/engine/memory.py)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from worker.engine.memory import fix_mmap_threshold


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_threshold_is_fixed_on_glibc_and_zero_leaves_the_default():
    assert fix_mmap_threshold(128) is True
    assert fix_mmap_threshold(0) is False
    assert ctypes.CDLL(ctypes.util.find_library("c")).mallopt  # the call it makes exists


def _rss_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _two_step_model() -> bytes:
    """y = mean(relu(x)): the relu output is as big as the input and lives in the session's
    arena only during the run; the output is one number."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("ReduceMean", ["r"], ["y"], keepdims=0)],
        "two-step",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1024, 1024])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm") or platform.libc_ver()[0] != "glibc",
                    reason="reads RSS from /proc, with glibc's mmap threshold fixed")
@pytest.mark.parametrize("arena, keeps_mb", [("session", True), ("shrink", False)])
def test_a_shrinking_arena_hands_a_big_run_back_and_a_session_arena_keeps_it(arena, keeps_mb):
    import onnxruntime as ort

    from docmill.settings import Settings
    from worker.engine.providers import CPU, run_options, session_options

    settings = Settings(cpu_arena=arena, graph_optimization="disable")
    fix_mmap_threshold(settings.malloc_mmap_threshold_kb)  # as OcrEngine.load does
    session = ort.InferenceSession(_two_step_model(), sess_options=session_options(settings), providers=[CPU])
    small = np.ones((1, 1024, 1024), np.float32)
    session.run(None, {"x": small}, run_options(settings))
    before = _rss_mb()
    big = np.ones((64, 1024, 1024), np.float32)  # 256 MB, and as much again for the intermediate
    session.run(None, {"x": big}, run_options(settings))
    del big
    session.run(None, {"x": small}, run_options(settings))
    grown = _rss_mb() - before
    assert (grown > 200) is keeps_mb, f"{arena}: RSS grew by {grown:.0f} MB after the big run"


_FRAGMENT_AND_TRIM = """
import os
from worker.engine.memory import fix_mmap_threshold, trim_heap

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

fix_mmap_threshold(128)
before = rss_mb()
blocks = [bytes(4096) for _ in range(200 * 256)]  # 200 MB of 4 KiB blocks, below the threshold
survivors = blocks[::64]  # pin the freed space inside the heap, so it cannot shrink from its top
del blocks
held = rss_mb()
trimmed = trim_heap()
print(before, held, rss_mb(), trimmed, len(survivors))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm") or platform.libc_ver()[0] != "glibc",
                    reason="reads RSS from /proc; malloc_trim is glibc's")
def test_trimming_hands_the_free_pages_inside_the_heap_back():
    """In a fresh process, so that the heap holds nothing freed before."""
    out = subprocess.run([sys.executable, "-c", _FRAGMENT_AND_TRIM], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[3]).stdout.split()
    before, held, after = (float(value) for value in out[:3])
    assert held - before > 150  # glibc kept the freed blocks: the survivors pin them
    assert out[3] == "True" and held - after > 150


_TWO_SESSIONS = """
import os, sys
from pathlib import Path
import numpy as np
import onnxruntime as ort
from docmill.settings import Settings
from worker.engine.memory import fix_mmap_threshold
from worker.engine.providers import CPU, run_options, session_options

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

model = Path(sys.argv[2]).read_bytes()
settings = Settings(cpu_arena=sys.argv[1], graph_optimization="disable")
fix_mmap_threshold(settings.malloc_mmap_threshold_kb)
first, second = (ort.InferenceSession(model, sess_options=session_options(settings),
                                      providers=[CPU]) for _ in range(2))
big = np.ones((64, 1024, 1024), np.float32)  # 256 MB in, as much again for the relu between
for _ in range(2):  # ORT's arena settles at its second run of a shape
    first.run(None, {"x": big}, run_options(settings))
after_first = rss_mb()
second.run(None, {"x": big}, run_options(settings))
print(after_first, rss_mb())
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm") or platform.libc_ver()[0] != "glibc",
                    reason="reads RSS from /proc, with glibc's mmap threshold fixed")
@pytest.mark.parametrize("arena, second_adds_mb", [("shared", False), ("session", True)])
def test_a_shared_arena_serves_the_second_session_from_what_the_first_left(arena, second_adds_mb, tmp_path):
    """det, cls and rec take turns; with one arena the second model's run reuses the first's
    memory instead of holding its own. In a fresh process: the arena is registered once per
    process, and this one's may already be big."""
    model = tmp_path / "two-step.onnx"
    model.write_bytes(_two_step_model())
    out = subprocess.run([sys.executable, "-c", _TWO_SESSIONS, arena, str(model)], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[3]).stdout.split()
    after_first, after_second = (float(value) for value in out)
    grown = after_second - after_first
    assert (grown > 200) is second_adds_mb, f"{arena}: the second session's run added {grown:.0f} MB"
