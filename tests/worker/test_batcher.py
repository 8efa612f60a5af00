"""The dynamic batcher on the real engine: size-or-delay batches and per-image outcomes
(the metrics it feeds are tested in test_metrics.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from docmill.options import EngineOptions
from worker.batcher import DynamicBatcher, streams_for
from worker.engine.pipeline import PageLines
from worker.metrics import Metrics



@pytest.mark.models
@pytest.mark.slow
def test_batches_close_on_size_then_on_delay(engine_for, sample_pages):
    engine, _ = engine_for("pp-ocrv4-ch")
    images, _ = sample_pages
    pages = list(images.values())[:3] * 2  # 6 items
    metrics = Metrics()
    batcher = DynamicBatcher(engine, max_batch_images=4, max_delay_ms=300, metrics=metrics)
    try:
        futures = [batcher.submit(img, engine.options) for img in pages]
        outputs = [f.result(timeout=120) for f in futures]
    finally:
        batcher.close()
    assert metrics.histogram() == {4: 1, 2: 1}
    alone = engine.run(pages[:3])
    for got, want in zip(outputs, alone * 2):
        assert [l.text for l in got.lines] == [l.text for l in want.lines]


@pytest.mark.models
@pytest.mark.slow
def test_lone_item_waits_at_most_the_delay(engine_for, sample_pages):
    engine, _ = engine_for("pp-ocrv4-ch")
    tiny = np.full((64, 64, 3), 255, dtype=np.uint8)
    metrics = Metrics()
    batcher = DynamicBatcher(engine, max_batch_images=8, max_delay_ms=100, metrics=metrics)
    try:
        start = time.monotonic()
        batcher.submit(tiny, engine.options).result(timeout=30)
        assert time.monotonic() - start < 5
    finally:
        batcher.close()
    assert metrics.histogram() == {1: 1}


@pytest.mark.models
@pytest.mark.slow
def test_broken_item_fails_alone(engine_for, sample_pages):
    engine, _ = engine_for("pp-ocrv4-ch")
    images, _ = sample_pages
    batcher = DynamicBatcher(engine, max_batch_images=2, max_delay_ms=500, metrics=Metrics())
    try:
        good = batcher.submit(images["letter.png"], engine.options)
        bad = batcher.submit(np.zeros((10, 10, 2), np.uint8), engine.options)
        assert bad.result(timeout=60).code == "engine_error"
        assert good.result(timeout=60).lines
    finally:
        batcher.close()


class _MeetingEngine:
    """An engine whose every call waits until `parties` calls are inside it at once, so a
    batcher that runs its batches one after another breaks the meeting."""

    def __init__(self, parties: int, streams: int = 1):
        self.streams = streams
        self.meeting = threading.Barrier(parties, timeout=5)

    def run_each(self, images, options):  # type: ignore[no-untyped-def]
        self.meeting.wait()
        return [PageLines() for _ in images]


@pytest.mark.parametrize("streams", [1, 2])
def test_streams_run_that_many_batches_at_once(streams: int):
    engine = _MeetingEngine(parties=2)
    batcher = DynamicBatcher(engine, max_batch_images=1, max_delay_ms=0, metrics=Metrics(),  # type: ignore[arg-type]
                             streams=streams)
    try:
        futures = [batcher.submit(np.zeros((8, 8, 3), np.uint8), EngineOptions()) for _ in range(4)]
        done = [f.exception(timeout=30) is None for f in futures]
    finally:
        batcher.close()
    assert all(done) if streams == 2 else not any(done)
    assert not any(thread.is_alive() for thread in batcher._threads)


def test_streams_follow_the_engine_unless_set():
    one, two = _MeetingEngine(1, streams=1), _MeetingEngine(1, streams=2)
    assert streams_for(one, 0) == 1 and streams_for(two, 0) == 2  # type: ignore[arg-type]
    assert streams_for(one, 3) == 3 and streams_for(two, 1) == 1  # type: ignore[arg-type]
