"""bench.cuda_path: docmill run through the engine's CUDA branches on CPU, so the CUDA
defaults' shapes and text can be measured without a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from demo.pages import write_samples

pytestmark = [pytest.mark.models, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _run(module: str, images: Path, out: Path) -> tuple[dict, dict[str, list[str]]]:
    done = subprocess.run([sys.executable, "-m", module, "run", str(images), "--out", str(out), "--models",
                           "pp-ocrv6", "--device", "cpu", "--quiet"], cwd=REPO, capture_output=True, text=True,
                          check=True)
    texts = {p.name: [line["text"] for line in json.loads(p.read_text())["lines"]] for p in sorted(out.glob("*.json"))}
    return json.loads(done.stdout), texts


def test_the_cuda_path_buckets_its_runs_and_reads_the_demo_pages_as_the_cpu_does(tmp_path: Path):
    write_samples(tmp_path / "pages")
    (tmp_path / "pages" / "truth.json").unlink()
    cpu, cpu_texts = _run("docmill.cli", tmp_path / "pages", tmp_path / "cpu")
    cuda, cuda_texts = _run("bench.cuda_path", tmp_path / "pages", tmp_path / "cuda")
    assert cuda_texts == cpu_texts and len(cuda_texts) == 5
    assert cuda["distinct_shapes"]["rec"] < cpu["distinct_shapes"]["rec"]  # 64 px widths, power-of-two batches
    assert cuda["providers"] == ["CPUExecutionProvider"]


def test_on_cuda_the_default_set_is_the_fp32_one_and_a_chosen_set_stays(tmp_path: Path):
    """The default's int8 detector is for CPUs: with no set chosen, a CUDA run loads the
    fp32 set and says so; a set chosen in DOCMILL_MODELS is kept, default or not."""
    write_samples(tmp_path / "pages")
    (tmp_path / "pages" / "truth.json").unlink()
    env = {k: v for k, v in os.environ.items() if k != "DOCMILL_MODELS"}
    for out, chosen in (("default", None), ("chosen", "pp-ocrv6-int8det")):
        done = subprocess.run([sys.executable, "-m", "bench.cuda_path", "run", str(tmp_path / "pages"), "--out",
                               str(tmp_path / out), "--device", "cpu"], cwd=REPO, capture_output=True, text=True,
                              check=True, env={**env, **({"DOCMILL_MODELS": chosen} if chosen else {})})
        sets = {json.loads(p.read_text())["models"]["set"] for p in (tmp_path / out).glob("*.json")}
        assert sets == {chosen or "pp-ocrv6"}
        assert ("on CUDA the default model set is pp-ocrv6" in done.stderr) is (chosen is None)
