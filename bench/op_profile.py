"""Where a model's time goes inside ONNXRuntime, by operator, with graph folding off and on.

    python -m bench.op_profile --models pp-ocrv4-ch [--runs 10]

Each model runs on a fixed input shaped as docmill feeds it (det: one 960x736 page; cls and
rec: six 48x320 lines) with ORT's profiler on; the table gives each operator's share of
kernel time and the mean run time. Use it to see what folding (worker/engine/graphfold.py) removed
and what is left.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort

from converter.presets import ensure_model_set
from docmill.modelset import ModelSet
from docmill.settings import Settings
from worker.engine.graphfold import folded_model_bytes

SHAPES = {"det": (1, 3, 960, 736), "cls": (6, 3, 48, 192), "rec": (6, 3, 48, 320)}


def profile(model: str | bytes, shape: tuple[int, ...], runs: int) -> tuple[Counter, float]:
    """(kernel microseconds per operator, mean seconds per run) over `runs` runs after one warm-up."""
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)}
        session.run(None, feed)
        start = time.perf_counter()
        for _ in range(runs):
            session.run(None, feed)
        mean_s = (time.perf_counter() - start) / runs
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: Counter = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"]
    return per_op, mean_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="pp-ocrv4-ch")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    model_set = ModelSet.load(ensure_model_set(args.models, Settings()))
    for stage, shape in SHAPES.items():
        path = str(model_set.path(stage))
        folded, report = folded_model_bytes(path)
        rows = {"plain": profile(path, shape, args.runs), "folded": profile(folded, shape, args.runs)}
        print(f"{stage} {shape}: folded {report.as_dict()}")
        for name, (per_op, mean_s) in rows.items():
            total = sum(per_op.values()) or 1
            shares = ", ".join(f"{op} {us / total:.0%}" for op, us in per_op.most_common(args.top))
            print(f"  {name:6s} {mean_s * 1000:7.1f} ms/run  {shares}")


if __name__ == "__main__":
    main()
