"""The pixel budget: pages wait while it is full, a page bigger than it runs alone, and the
item flow of both runners never holds more than it, without changing a single text."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from docmill.messages import TaskItem
from docmill.result import ModelsInfo
from docmill.settings import Settings
from worker.batcher import DynamicBatcher
from worker.budget import PixelBudget
from worker.engine.pipeline import page_pixels
from worker.flow import ItemFlow, RunContext
from worker.metrics import Metrics
from worker.writer import ResultWriter


class _Waiter:
    """A thread asking the budget for pixels, to see whether it is kept waiting."""

    def __init__(self, budget: PixelBudget, pixels: int):
        self.tickets: list = []
        self.thread = threading.Thread(target=lambda: self.tickets.append(budget.acquire(pixels)), daemon=True)
        self.thread.start()

    def waiting(self, seconds: float = 0.3) -> bool:
        self.thread.join(timeout=seconds)
        return self.thread.is_alive()


def test_pages_wait_while_the_budget_is_full_and_go_when_it_frees():
    budget = PixelBudget(100)
    first = budget.acquire(60)
    second = _Waiter(budget, 50)
    assert second.waiting(), "60 + 50 > 100: the second page must wait"
    first.release()
    assert not second.waiting(5)
    assert budget.in_use == 50


def test_a_page_bigger_than_the_budget_runs_alone():
    budget = PixelBudget(100)
    small = budget.acquire(10)
    big = _Waiter(budget, 500)
    assert big.waiting(), "a page over the budget waits until nothing else is held"
    small.release()
    assert not big.waiting(5)
    assert budget.in_use == 500
    tiny = _Waiter(budget, 1)
    assert tiny.waiting(), "nothing joins a page that is over the budget"
    big.tickets[0].release()
    assert not tiny.waiting(5)


def test_a_ticket_gives_its_pixels_back_once():
    budget = PixelBudget(100)
    ticket = budget.acquire(40)
    ticket.release()
    ticket.release()
    assert budget.in_use == 0
    assert budget.peak == 40


def test_a_budget_needs_a_capacity():
    with pytest.raises(ValueError, match="at least 1 pixel"):
        PixelBudget(0)


def _pages(folder: Path, sizes: list[tuple[int, int]]) -> list[TaskItem]:
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for n, (w, h) in enumerate(sizes):
        image = np.full((h, w, 3), 255, np.uint8)
        cv2.putText(image, f"PAGE {n} OF {len(sizes)}", (20, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (0, 0, 0), 3)
        path = folder / f"p{n:02d}.png"
        cv2.imwrite(str(path), image)
        items.append(TaskItem(src=str(path), dst=str(folder.parent / "out" / f"{path.name}.json")))
    return items


def _run_flow(engine, items: list[TaskItem], budget: PixelBudget) -> list[list[str]]:  # type: ignore[no-untyped-def]
    settings = Settings(device="cpu")
    batcher = DynamicBatcher(engine, max_batch_images=8, max_delay_ms=0, metrics=Metrics())
    context = RunContext(engine.options, ModelsInfo(set="t", version="t"), engine.providers)
    try:
        with ThreadPoolExecutor(8) as io:
            flow = ItemFlow(batcher, ResultWriter(settings, Metrics()), io, settings, budget)
            outcomes = list(flow.run(items, context))
    finally:
        batcher.close()
    assert all(o.result.error is None for o in outcomes)
    return [[line.text for line in o.result.lines] for o in outcomes]


@pytest.mark.models
@pytest.mark.slow
def test_the_flow_holds_no_more_than_the_budget_and_reads_the_same(engine_for, tmp_path):
    engine, _ = engine_for("pp-ocrv4-ch")
    sizes = [(900, 300), (1600, 1200), (640, 200), (1200, 900)] * 3
    items = _pages(tmp_path / "in", sizes)
    costs = [page_pixels(w, h, engine.options) for w, h in sizes]
    tight = PixelBudget(max(costs) + min(costs))  # the biggest page plus the smallest fit at once
    roomy = PixelBudget(sum(costs) * 2)

    started = time.perf_counter()
    tight_texts = _run_flow(engine, items, tight)
    assert time.perf_counter() - started < 300
    roomy_texts = _run_flow(engine, items, roomy)

    assert tight.peak <= tight.capacity, "the flow admitted pages beyond the budget"
    assert roomy.peak > tight.capacity, "with room, pages overlap (else this test proves nothing)"
    assert tight_texts == roomy_texts
    assert all(f"PAGE {n}" in " ".join(lines) for n, lines in enumerate(tight_texts))
    assert tight.in_use == 0 and roomy.in_use == 0, "every page gave its pixels back"
