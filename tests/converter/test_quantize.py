"""--quantize int8: the quantiser writes a real QDQ model, and the gate's verdict follows the
measured CER (the full pp-ocrv4-ch run is measured by hand: see the README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from converter.gate import GateReport
from converter.quantize import quantize_model
from tests.converter.conftest import make_rec


def test_quantize_model_writes_a_loadable_int8_qdq_model(tmp_path):
    src = make_rec(tmp_path / "rec.onnx", classes=7)
    rng = np.random.default_rng(0)
    samples = [rng.uniform(-1, 1, (1, 3, 48, 96)).astype(np.float32) for _ in range(8)]
    (tmp_path / "out").mkdir()
    dst = tmp_path / "out" / "rec.int8.onnx"
    before = set(Path.cwd().iterdir())
    quantize_model(src, dst, samples, "x")
    assert set(Path.cwd().iterdir()) == before  # no temporary files left where it ran
    ops = {node.op_type for node in onnx.load(str(dst)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    fp32 = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    a, b = (s.run(None, {"x": samples[0]})[0] for s in (fp32, int8))
    assert a.shape == b.shape and np.abs(a - b).max() < 0.05


def test_gate_passes_only_within_the_cer_limit():
    within = GateReport(variant="int8", device="cpu", pages=5, chars=1000, edits=2, max_cer=0.002,
                        fp32_seconds=2.0, variant_seconds=1.0)
    beyond = GateReport(variant="int8", device="cpu", pages=5, chars=1000, edits=3, max_cer=0.002,
                        fp32_seconds=2.0, variant_seconds=1.0)
    assert within.passed and not beyond.passed
    assert "FAILED" in beyond.line() and "2.00x" in beyond.line() and beyond.line().startswith("int8 gate")
