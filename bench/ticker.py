"""A sampler's clock: something to do every few hundred milliseconds while a child runs.
Standard library only, so bench.gpu may import it before its wheels are installed."""

from __future__ import annotations

import threading
import time


class Ticker:
    """Calls `tick` with the seconds since the `with` block began, every `every_s`, on a
    thread of its own, until the block ends."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):  # type: ignore[no-untyped-def]  # the subclass itself
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.tick(time.perf_counter() - self._started)

    def tick(self, elapsed_s: float) -> None:
        raise NotImplementedError
