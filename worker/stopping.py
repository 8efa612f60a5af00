"""Stopping `docmill run` part way: a first SIGINT (Ctrl-C) or SIGTERM (`docker stop`, a
Kubernetes Job ending) stops it reading anything more: new inputs, a document's next pages,
and what was queued but not yet begun (worker.flow asks `stopped`). The images and pages
already being read finish, are written and counted, and the run ends with its summary and
exit status 128 + the signal's number. A second signal stops at once, as Python does by
default. Either way no result is left half written: every write is a rename.

The Python API installs no handlers: signals belong to the program that embeds it.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any, Self, TypeVar

T = TypeVar("T")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """Installed for the length of a `with` block (from the main thread only, where Python runs
    handlers); `until_stopped` hands out inputs until a signal comes."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.started = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"docmill run: {self.signal_name}: finishing the images and pages being read, then stopping "
              "(signal again to stop at once)", file=sys.stderr, flush=True)

    def stopped(self) -> bool:
        """Whether a signal has come: a document being read then reads no more pages."""
        return self.signum is not None

    @property
    def signal_name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int | None:
        """128 + the signal's number, the shell's convention for a process a signal ended."""
        return None if self.signum is None else 128 + self.signum

    def until_stopped(self, items: Iterable[T]) -> Iterator[T]:
        """`items`, one at a time, until a signal has come; counts those handed out."""
        for item in items:
            if self.signum is not None:
                return
            self.started += 1
            yield item
