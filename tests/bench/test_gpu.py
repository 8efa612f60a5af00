"""`make bench-gpu ARGS="--device cpu --quick"`: the prepared GPU benchmark, rehearsed on CPU
so that it runs end to end (docmill run, the local distributed path with --processes) and
writes every field the GPU figures need, before a GPU is at hand."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from bench.gpu import FP16_SWEEP, RECEIPTS, SWEEP, ResultCounter, record, steady_rate
from docmill.options import parse_option_assignments
from docmill.settings import Settings

pytestmark = [pytest.mark.models, pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not RECEIPTS.is_dir(), reason="../shared is absent")
def test_the_gpu_bench_rehearses_on_cpu_and_writes_its_fields():
    done = subprocess.run(["make", "bench-gpu", 'ARGS=--device cpu --quick'], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((REPO / "bench" / "results" / "gpu-rehearsal.json").read_text())
    for field in ("device", "onnxruntime", "model_set", "images_per_s", "gpu_util_mean", "stages_ms",
                  "distinct_shapes"):
        assert field in report, field
    assert report["device"] == "cpu" and report["images_per_s"] > 0 and report["gpu_util_mean"] is None
    assert report["distinct_shapes"]["det"] >= 1 and set(report["stages_ms"]) >= {"det", "rec"}
    probe = report["session_probe"]["shapes"]  # each session alone: a shape's first run against its steady ones
    shapes = {key: row for key, row in probe.items() if not key.endswith(":alternating")}
    assert {key.split(":")[0] for key in shapes} == {"det", "rec"}
    assert all(row["first_ms"] > 0 and row["steady_ms"] > 0 for row in shapes.values())
    assert probe["rec:alternating"]["runs"] == 2 * sum(key.startswith("rec:") for key in shapes)
    distributed = report["runs"]["distributed:receipts:p1"]
    assert distributed["images"] == report["sets"]["receipts"] and distributed["failed"] == 0
    assert distributed["s3_ceiling_images_per_s"] > 0  # the S3 test server's own cap, beside docmill's rate
    on_files = report["runs"]["distributed:files:p1"]  # the same job on the local filesystem, past that cap
    assert on_files["images"] == report["sets"]["receipts"] and on_files["failed"] == 0
    assert "written bench/results/gpu-rehearsal.json" in done.stdout  # never taken for GPU figures
    fp16 = report["fp16"]  # built from --models, but on CPU neither gated nor run
    assert fp16["built"] and fp16["set"].startswith("pp-ocrv6-fp16@") and fp16["gate"] is None
    assert "needs a CUDA GPU" in fp16["not_run"] and not any(run.startswith("fp16:") for run in report["runs"])


@pytest.mark.parametrize("label,env,args", [*SWEEP, FP16_SWEEP], ids=[label for label, _, _ in [*SWEEP, FP16_SWEEP]])
def test_every_sweep_configuration_names_real_settings_and_options(label, env, args):
    """A GPU is lent rarely and briefly: a misspelt setting would be ignored (Settings passes
    over unknown variables) and its configuration would time the defaults again."""
    fields = {name.removeprefix("DOCMILL_").lower(): value for name, value in env.items()}
    assert set(fields) <= set(Settings.model_fields), label
    Settings(**fields)
    parse_option_assignments([value for flag, value in zip(args[::2], args[1::2]) if flag == "--set"])


def test_a_sweep_choice_docmill_refuses_is_recorded_and_the_sweep_goes_on(capsys):
    def refused() -> dict:
        raise SystemExit("bench.gpu: docmill run exited 2: ['unknown provider option prefer_nhwc']")

    runs: dict = {}
    record(runs, "sweep:nhwc", refused, trial=True)
    record(runs, "sweep:defaults", lambda: {"images_per_s": 310.0}, trial=True)
    assert "prefer_nhwc" in runs["sweep:nhwc"]["error"] and runs["sweep:defaults"]["images_per_s"] == 310.0
    assert "sweep:nhwc: refused: bench.gpu: docmill run exited 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the runs every figure rests on still stop the bench
        record(runs, "default:receipts", refused)


def test_the_steady_rate_starts_at_the_tenth_done_and_a_single_batch_gives_the_whole_rate():
    assert steady_rate([(1.0, 0), (2.0, 10), (3.0, 50), (12.0, 100)], 100, 12.0) == (9.0, 2.0)
    assert steady_rate([(1.0, 0), (5.0, 100)], 100, 5.0) == (20.0, 5.0)
    assert steady_rate([], 40, 8.0) == (5.0, 8.0)


def test_the_result_counter_counts_finished_results_only(tmp_path):
    with ResultCounter(tmp_path, every_s=0.01) as counter:
        for name in ("a.jpg.json", "b.jpg.json", ".0f3a.tmp"):
            (tmp_path / name).write_text("{}")
        time.sleep(0.1)
    assert counter.samples and counter.samples[-1][1] == 2
    assert counter.rates(2, 4.0)["images_per_s_with_startup"] == 0.5

