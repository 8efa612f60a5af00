"""The dynamic batcher on the real engine: size-or-delay batches and per-image outcomes
(the metrics it feeds are tested in test_metrics.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from worker.batcher import DynamicBatcher
from worker.metrics import Metrics

pytestmark = [pytest.mark.models, pytest.mark.slow]


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
