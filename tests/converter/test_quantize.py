"""--quantize int8: the quantiser writes a real QDQ model, and the gate's verdict follows the
measured CER (the full pp-ocrv4-ch run is measured by hand: see the README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from onnx import TensorProto, helper, numpy_helper

from converter.gate import GateReport
from converter.modelset_build import build_model_set
from converter.quantize import QDQ_MIN_OPSET, quantize_model, quantize_models
from docmill.hashstamp import sha256_file
from docmill.modelset import ModelSet, SourceProvenance
from docmill.settings import Settings
from worker.engine.optimized import X64_QUANT_PRECISION
from tests.converter.conftest import IR_VERSION, TINY_DICT, make_rec


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
    as_docmill_runs_it = ort.SessionOptions()  # whose int8 convolutions do not saturate on AVX2
    as_docmill_runs_it.add_session_config_entry(*X64_QUANT_PRECISION)
    int8 = ort.InferenceSession(str(dst), as_docmill_runs_it, providers=["CPUExecutionProvider"])
    a, b = (s.run(None, {"x": samples[0]})[0] for s in (fp32, int8))
    assert a.shape == b.shape and np.abs(a - b).max() < 0.05


def test_gate_passes_only_within_the_cer_limit():
    within = GateReport(variant="int8", device="cpu", pages=5, chars=1000, edits=2, max_cer=0.002,
                        fp32_seconds=2.0, variant_seconds=1.0)
    beyond = GateReport(variant="int8", device="cpu", pages=5, chars=1000, edits=3, max_cer=0.002,
                        fp32_seconds=2.0, variant_seconds=1.0)
    assert within.passed and not beyond.passed
    assert "FAILED" in beyond.line() and "2.00x" in beyond.line() and beyond.line().startswith("int8 gate")


def _conv_det(path: Path, opset: int) -> Path:
    """A det-shaped model with a real convolution, [N,3,H,W] -> [N,1,H,W], at `opset`."""
    weight = np.random.default_rng(1).uniform(-0.5, 0.5, (1, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Sigmoid", ["c"], ["y"])],
        "det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        initializer=[numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_VERSION
    onnx.save(model, str(path))
    return path


def _opset(path: Path) -> int:
    return next(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx"))


def test_an_opset_11_model_is_converted_up_for_per_channel_int8(tmp_path):
    """PP-OCRv6's det is opset 11, where DequantizeLinear has no per-channel axis."""
    src = _conv_det(tmp_path / "det.onnx", 11)
    samples = [np.random.default_rng(i).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32) for i in range(4)]
    (tmp_path / "out").mkdir()
    dst = tmp_path / "out" / "det.int8.onnx"
    quantize_model(src, dst, samples, "x")
    assert _opset(dst) >= QDQ_MIN_OPSET and _opset(src) == 11  # the source file is left as it was
    assert sorted(p.name for p in dst.parent.iterdir()) == ["det.int8.onnx"]
    as_docmill_runs_it = ort.SessionOptions()  # whose int8 convolutions do not saturate on AVX2
    as_docmill_runs_it.add_session_config_entry(*X64_QUANT_PRECISION)
    int8 = ort.InferenceSession(str(dst), as_docmill_runs_it, providers=["CPUExecutionProvider"])
    fp32 = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    a, b = (s.run(None, {"x": samples[0]})[0] for s in (fp32, int8))
    assert np.abs(a - b).max() < 0.05


def test_a_det_only_int8_set_carries_every_other_file_over(tiny_models, tmp_path):
    tiny_models["det"] = _conv_det(tmp_path / "det11.onnx", 11)
    provenance = {stage: SourceProvenance(uri=f"pypi:tiny==1#{stage}.onnx", sha256=sha256_file(path))
                  for stage, path in tiny_models.items()}
    provenance["dict"] = provenance["rec"]
    fp32 = ModelSet.load(build_model_set("tiny", tiny_models["det"], tiny_models["cls"], tiny_models["rec"],
                                         TINY_DICT, provenance, {}, tmp_path / "sets"))
    settings = Settings(cache_dir=tmp_path / "cache")
    models = quantize_models(fp32, settings, tmp_path / "scratch", ("det",), "tiny-int8det")
    int8 = ModelSet.load(models.build(tmp_path / "sets"))
    assert int8.name == "tiny-int8det" and int8.version != fp32.version
    assert "QuantizeLinear" in {node.op_type for node in onnx.load(str(int8.path("det"))).graph.node}
    for stage in ("cls", "rec"):
        assert sha256_file(int8.path(stage)) == sha256_file(fp32.path(stage))
    # the cache knows the copy by the fp32 files it came from (converter.presets.cached_preset)
    assert {s: m.source.sha256 for s, m in int8.manifest.models.items()} == \
        {s: m.source.sha256 for s, m in fp32.manifest.models.items()}
    assert int8.manifest.dictionary.source == fp32.manifest.dictionary.source
    assert models.build(tmp_path / "again").name == int8.version  # the same files, the same version
