"""The pixel budget: one bound on the pages a process holds at once, whatever their size.

A count of pages bounds nothing when one scan is 70 MP and the next a 0.2 MP receipt. So
each page is charged its pixels (the decoded page plus its detector input) from just before
it is decoded until the engine is done with it, and a page waits while the budget is full.
A page larger than the whole budget runs alone: it waits until nothing else is held.

One budget serves a whole process: `docmill run`, and every task thread of a worker.
"""

from __future__ import annotations

import threading


class PixelTicket:
    """What one page holds; `release` gives it back (once, however often it is called)."""

    def __init__(self, budget: "PixelBudget", pixels: int):
        self._budget = budget
        self.pixels = pixels

    def release(self) -> None:
        pixels, self.pixels = self.pixels, 0
        if pixels:
            self._budget._give_back(pixels)


class PixelBudget:
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("a pixel budget needs a capacity of at least 1 pixel")
        self.capacity = capacity
        self._in_use = 0
        self._peak = 0
        self._changed = threading.Condition()

    def acquire(self, pixels: int) -> PixelTicket:
        """Block until `pixels` fit beside what is held, or until nothing is held (a page
        over the capacity then runs alone)."""
        pixels = max(int(pixels), 1)
        with self._changed:
            self._changed.wait_for(lambda: self._in_use == 0 or self._in_use + pixels <= self.capacity)
            self._in_use += pixels
            self._peak = max(self._peak, self._in_use)
        return PixelTicket(self, pixels)

    @property
    def in_use(self) -> int:
        with self._changed:
            return self._in_use

    @property
    def peak(self) -> int:
        """The most pixels held at once so far (over the capacity only by a lone big page)."""
        with self._changed:
            return self._peak

    def _give_back(self, pixels: int) -> None:
        with self._changed:
            self._in_use -= pixels
            self._changed.notify_all()
