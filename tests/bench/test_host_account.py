"""bench.host_account's tally: thread CPU and calls of wrapped functions, where callers look them up."""

from __future__ import annotations

import sys
import time

import pytest

from bench.host_account import ThreadCpuTally


def _spin(seconds: float) -> str:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return "spun"


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


class Worker:
    def work(self) -> int:
        _spin(0.02)
        return 7


@pytest.fixture
def tally(monkeypatch: pytest.MonkeyPatch) -> ThreadCpuTally:
    module = sys.modules[__name__]
    for name in ("_spin", "_sleep"):  # put back after the test
        monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.setattr(Worker, "work", Worker.work)
    return ThreadCpuTally()


def test_cpu_is_counted_and_sleep_is_not(tally: ThreadCpuTally) -> None:
    for spec in (f"{__name__}:_spin", f"{__name__}:_sleep"):
        tally.wrap(spec)
    module = sys.modules[__name__]
    assert module._spin(0.05) == "spun"
    module._sleep(0.1)
    assert tally.seconds[f"{__name__}:_spin"] >= 0.05 and tally.calls[f"{__name__}:_spin"] == 1
    assert tally.seconds[f"{__name__}:_sleep"] < 0.02


def test_methods_are_counted_through_their_class(tally: ThreadCpuTally) -> None:
    tally.wrap(f"{__name__}:Worker.work")
    assert Worker().work() == 7 and Worker().work() == 7
    assert tally.calls[f"{__name__}:Worker.work"] == 2 and tally.seconds[f"{__name__}:Worker.work"] >= 0.04
