"""The worker's /metrics as Prometheus sees it: served over real HTTP, parsed with
prometheus_client's own parser, so a name, label or type Prometheus would read differently
fails here rather than on a dashboard."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from worker.metrics import Metrics, serve

Samples = dict[tuple[str, frozenset], float]


def _scrape(metrics: Metrics) -> tuple[dict[str, str], Samples]:
    """Serve `metrics` on a free port, GET /metrics once; returns (family -> type, samples
    keyed by (sample name, labels))."""
    server = serve(metrics, 0, host="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
            text = resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    families = list(text_string_to_metric_families(text))
    types = {f.name: f.type for f in families}
    samples = {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}
    return types, samples


def _get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_counters_keep_their_names_labels_and_types():
    metrics = Metrics(storage_retries=lambda: 0)
    metrics.count("items", "ok", 3)
    metrics.count("items", "decode_error")
    metrics.count("tasks", "done", 2)
    metrics.count("retries", "storage_write", 4)
    types, samples = _scrape(metrics)
    assert {types[n] for n in ("docmill_items", "docmill_tasks", "docmill_retries")} == {"counter"}
    assert _get(samples, "docmill_items_total", outcome="ok") == 3
    assert _get(samples, "docmill_items_total", outcome="decode_error") == 1
    assert _get(samples, "docmill_tasks_total", event="done") == 2
    assert _get(samples, "docmill_retries_total", what="storage_write") == 4
    assert not [name for name, _ in samples if name.endswith("_created")]


def test_batch_size_histogram_has_its_buckets_and_exact_sizes():
    metrics = Metrics(storage_retries=lambda: 0)
    for size in (1, 3, 3, 8):
        metrics.observe_batch(size)
    types, samples = _scrape(metrics)
    assert types["docmill_batch_size"] == "histogram"
    buckets = {dict(labels)["le"]: v for (name, labels), v in samples.items() if name == "docmill_batch_size_bucket"}
    assert buckets == {"1.0": 1, "2.0": 1, "4.0": 3, "8.0": 4, "16.0": 4, "32.0": 4, "64.0": 4, "+Inf": 4}
    assert (_get(samples, "docmill_batch_size_count"), _get(samples, "docmill_batch_size_sum")) == (4, 15)
    assert metrics.histogram() == {1: 1, 3: 2, 8: 1}


def test_stage_and_queue_wait_histograms_count_and_sum_what_was_observed():
    metrics = Metrics(storage_retries=lambda: 0)
    for seconds in (0.02, 0.03):
        metrics.observe_stage("det", seconds)
    metrics.observe_stage("write", 0.004)
    metrics.observe_queue_wait(0.25)
    metrics.observe_queue_wait(1.5)
    types, samples = _scrape(metrics)
    assert types["docmill_stage_seconds"] == types["docmill_queue_wait_seconds"] == "histogram"
    assert _get(samples, "docmill_stage_seconds_count", stage="det") == 2
    assert _get(samples, "docmill_stage_seconds_sum", stage="det") == pytest.approx(0.05)
    assert _get(samples, "docmill_stage_seconds_count", stage="write") == 1
    assert _get(samples, "docmill_stage_seconds_bucket", stage="write", le="0.005") == 1
    assert _get(samples, "docmill_stage_seconds_count", stage="rec") == 0  # listed before any batch
    assert _get(samples, "docmill_stage_seconds_bucket", stage="det", le="0.001") == 0
    assert _get(samples, "docmill_stage_seconds_bucket", stage="det", le="60.0") == 2
    assert _get(samples, "docmill_queue_wait_seconds_count") == 2
    assert _get(samples, "docmill_queue_wait_seconds_sum") == pytest.approx(1.75)
    assert _get(samples, "docmill_queue_wait_seconds_bucket", le="1.0") == 1


def test_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="unknown stage"):
        Metrics(storage_retries=lambda: 0).observe_stage("ocr", 1.0)


def test_model_set_info_lists_every_loaded_version():
    metrics = Metrics(storage_retries=lambda: 0)
    metrics.set_model_set("pp-ocrv4-ch", "2024.1")
    metrics.set_model_set("pp-ocrv4-ch", "2025.2")
    metrics.set_model_set("pp-ocrv4-ch", "2025.2")
    types, samples = _scrape(metrics)
    assert types["docmill_model_set_info"] == "gauge"
    loaded = {(dict(labels)["set"], dict(labels)["version"]): v
              for (name, labels), v in samples.items() if name == "docmill_model_set_info"}
    assert loaded == {("pp-ocrv4-ch", "2024.1"): 1, ("pp-ocrv4-ch", "2025.2"): 1}


def test_storage_requests_are_read_at_scrape_time():
    storage = {"retries": 2}
    metrics = Metrics(storage_retries=lambda: storage["retries"])
    assert _get(_scrape(metrics)[1], "docmill_retries_total", what="storage_request") == 2
    storage["retries"] = 9
    assert _get(_scrape(metrics)[1], "docmill_retries_total", what="storage_request") == 9
    with pytest.raises(ValueError, match="scrape time"):
        metrics.count("retries", "storage_request")


def test_two_instances_share_no_values():
    first, second = Metrics(storage_retries=lambda: 1), Metrics(storage_retries=lambda: 5)
    first.count("items", "ok", 7)
    first.observe_stage("rec", 0.5)
    first.set_model_set("a", "1")
    second.count("items", "ok")
    second.observe_batch(2)
    _, one = _scrape(first)
    _, two = _scrape(second)
    assert (_get(one, "docmill_items_total", outcome="ok"), _get(two, "docmill_items_total", outcome="ok")) == (7, 1)
    assert (_get(one, "docmill_stage_seconds_count", stage="rec"), _get(two, "docmill_stage_seconds_count", stage="rec")) == (1, 0)
    assert (_get(one, "docmill_batch_size_count"), _get(two, "docmill_batch_size_count")) == (0, 1)
    assert not [name for name, _ in two if name == "docmill_model_set_info"]
    assert (_get(one, "docmill_retries_total", what="storage_request"),
            _get(two, "docmill_retries_total", what="storage_request")) == (1, 5)
    assert first.histogram() == {} and second.histogram() == {2: 1}
