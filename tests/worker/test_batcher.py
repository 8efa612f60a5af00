"""The dynamic batcher on the real engine: size-or-delay batches, per-item outcomes, and the
Prometheus endpoint that exposes the batch-size histogram."""

from __future__ import annotations

import time
import urllib.request

import numpy as np
import pytest

from docmill.storage import ObjectRef
from worker.batcher import DynamicBatcher
from worker.items import DecodedItem
from worker.metrics import Metrics, serve

pytestmark = [pytest.mark.models, pytest.mark.slow]


def _item(i: int, image) -> DecodedItem:
    return DecodedItem(ref=ObjectRef(uri=f"mem://{i}", key=str(i)), out_uri="", image=image)


def test_batches_close_on_size_then_on_delay(engine_for, sample_pages):
    engine, _ = engine_for("pp-ocrv4-ch")
    images, _ = sample_pages
    pages = list(images.values())[:3] * 2  # 6 items
    metrics = Metrics()
    batcher = DynamicBatcher(engine, max_batch_images=4, max_delay_ms=300, metrics=metrics)
    try:
        futures = [batcher.submit(_item(i, img), engine.options) for i, img in enumerate(pages)]
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
        batcher.submit(_item(0, tiny), engine.options).result(timeout=30)
        assert time.monotonic() - start < 5
    finally:
        batcher.close()
    assert metrics.histogram() == {1: 1}


def test_broken_item_fails_alone(engine_for, sample_pages):
    engine, _ = engine_for("pp-ocrv4-ch")
    images, _ = sample_pages
    batcher = DynamicBatcher(engine, max_batch_images=2, max_delay_ms=500, metrics=Metrics())
    try:
        good = batcher.submit(_item(0, images["letter.png"]), engine.options)
        bad = batcher.submit(_item(1, np.zeros((10, 10, 2), np.uint8)), engine.options)
        assert bad.result(timeout=60).code == "engine_error"
        assert good.result(timeout=60).lines
    finally:
        batcher.close()


def test_metrics_endpoint_serves_the_histogram():
    metrics = Metrics()
    for size in (1, 3, 3, 8):
        metrics.observe_batch(size)
    metrics.count("items", "ok", 15)
    server = serve(metrics, 0, host="127.0.0.1")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    assert 'docmill_batch_size_bucket{le="2"} 1' in body
    assert 'docmill_batch_size_bucket{le="4"} 3' in body
    assert 'docmill_batch_size_bucket{le="+Inf"} 4' in body
    assert "docmill_batch_size_sum 15" in body
    assert 'docmill_items_total{outcome="ok"} 15' in body
