"""`docmill models fp16`: float16 conversion of small graphs built here (weights float16,
sensitive ops and out-of-range constants float32, float32 at the edges), the one-line refusal
where nothing computes float16, and the gate's verdict deciding what is kept. The real sets'
FP16 text is gated on CUDA, by hand or by `make bench-gpu`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from converter import fp16
from converter.fp16 import GateFailed, build_fp16_set, convert_model, convert_set, gated_fp16_set
from converter.gate import GateReport, accuracy_gate
from converter.modelset_build import build_model_set
from docmill.cli import main
from docmill.hashstamp import sha256_file
from docmill.modelset import ModelSet, SourceProvenance
from docmill.settings import Settings

from .conftest import TINY_DICT

RNG = np.random.default_rng(0)


def _model(path: Path, nodes: list, out_shape: list, weights: dict[str, np.ndarray],
           in_shape: tuple[int, ...] = (1, 3, 8, 8)) -> Path:
    graph = helper.make_graph(nodes, path.stem,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              initializer=[numpy_helper.from_array(w, name) for name, w in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _conv_head(path: Path) -> Path:
    """Conv -> Relu -> ReduceMean -> MatMul -> Softmax (the graph output, as in rec)."""
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("ReduceMean", ["r"], ["m"], axes=[2, 3], keepdims=0, name="mean"),
             helper.make_node("MatMul", ["m", "mw"], ["l"], name="matmul"),
             helper.make_node("Softmax", ["l"], ["y"], axis=-1, name="softmax")]
    weights = {"cw": RNG.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "cb": np.zeros(4, np.float32),
               "mw": RNG.normal(0, 1, (4, 5)).astype(np.float32)}
    return _model(path, nodes, [1, 5], weights)


def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    return {v.name: v.type.tensor_type.elem_type for v in values} | {
        t.name: t.data_type for t in inferred.graph.initializer}


def _node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(node for node in model.graph.node if node.name == name)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_weights_become_float16_and_sensitive_ops_stay_float32(tmp_path):
    dst = convert_model(_conv_head(tmp_path / "head.onnx"), tmp_path / "head.fp16.onnx")
    model = onnx.load(str(dst))
    onnx.checker.check_model(model, full_check=True)
    types = _types(model)
    assert types["cw"] == types["mw"] == TensorProto.FLOAT16
    assert types[_node(model, "conv").output[0]] == types[_node(model, "matmul").output[0]] == TensorProto.FLOAT16
    for blocked in ("mean", "softmax"):
        node = _node(model, blocked)
        assert all(types[name] == TensorProto.FLOAT for name in [*node.input, *node.output]), blocked
    assert [types[v.name] for v in [*model.graph.input, *model.graph.output]] == [TensorProto.FLOAT] * 2


def test_a_blocked_op_writing_the_graph_output_still_leaves_it_float32(tmp_path):
    """onnxconverter-common alone leaves such an output float16 (PP-OCRv4's rec) or fails
    (PP-OCRv6's ori)."""
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["l"]),
             helper.make_node("Softmax", ["l"], ["y"], axis=-1)]  # unnamed, as paddle2onnx leaves them
    src = _model(tmp_path / "cls.onnx", nodes, [1, 2], {"w": RNG.normal(0, 0.1, (192, 2)).astype(np.float32)})
    model = onnx.load(str(convert_model(src, tmp_path / "cls.fp16.onnx")))
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert len({node.name for node in model.graph.node}) == len(model.graph.node)


def test_a_constant_float16_cannot_hold_keeps_its_node_float32(tmp_path):
    """PP-OCRv4's det: a BatchNormalization whose running variance (a Constant) reaches 9.8e7."""
    variance = np.full(3, 9.8e7, np.float32)
    constant = helper.make_node("Constant", [], ["var"], value=numpy_helper.from_array(variance, "var"))
    nodes = [constant, helper.make_node("BatchNormalization", ["x", "s", "b", "mean", "var"], ["y"], name="bn")]
    params = {"s": np.ones(3, np.float32), "b": np.zeros(3, np.float32), "mean": np.zeros(3, np.float32)}
    src = _model(tmp_path / "bn.onnx", nodes, [1, 3, 8, 8], params)
    dst = convert_model(src, tmp_path / "bn.fp16.onnx")
    kept = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(dst)).graph.initializer}
    assert kept["var"].dtype == np.float32 and kept["var"][0] == pytest.approx(9.8e7)
    x = RNG.normal(0, 1e4, (1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(dst, x), _run(src, x), rtol=2e-3, atol=2e-3)


def test_onnxruntime_cpu_reads_the_fp16_model_within_float16_rounding(tmp_path):
    src = _conv_head(tmp_path / "head.onnx")
    dst = convert_model(src, tmp_path / "head.fp16.onnx")
    for _ in range(4):
        x = RNG.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
        got, want = _run(dst, x), _run(src, x)
        assert got.dtype == np.float32 and np.abs(got - want).max() < 5e-3


def test_the_cli_refuses_in_one_line_where_nothing_computes_float16(monkeypatch, capsys):
    monkeypatch.setattr("worker.engine.providers.cuda_works", lambda: False)
    monkeypatch.setattr(fp16, "cpu_computes_fp16", lambda: False)
    monkeypatch.setattr("converter.models_cli.ensure_model_set", _no_work)
    monkeypatch.setattr(fp16, "gated_fp16_set", _no_work)
    assert main(["models", "fp16", "pp-ocrv6"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "the FP16 gate needs a CUDA GPU" in err


def test_this_machine_refuses_or_has_a_device_that_computes_float16(capsys):
    """Unpatched: the probe on this machine's real ONNXRuntime agrees with the command."""
    from worker.engine.providers import cuda_works

    if cuda_works() or fp16.cpu_computes_fp16():
        assert fp16.gate_device() in {"cuda", "cpu"}
        return
    assert main(["models", "fp16", "no-such-set"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def _no_work(*_args, **_kwargs):
    raise AssertionError("work started before the refusal")


def _report(edits: int) -> GateReport:
    return GateReport(variant="fp16", device="cuda", pages=5, chars=1000, edits=edits, max_cer=0.002,
                      fp32_seconds=2.0, variant_seconds=1.0)


def test_the_gate_passes_only_within_the_cer_limit():
    assert _report(2).passed and not _report(3).passed
    assert _report(3).line().startswith("fp16 gate FAILED") and "on cuda" in _report(3).line()
    assert _report(2).as_dict()["cer"] == 0.002 and _report(3).as_dict()["passed"] is False


@pytest.fixture
def tiny_set(tiny_models, tmp_path) -> ModelSet:
    provenance = {stage: SourceProvenance(uri=path.as_uri(), sha256=sha256_file(path))
                  for stage, path in tiny_models.items()}
    return ModelSet.load(build_model_set("tiny", tiny_models["det"], tiny_models["cls"], tiny_models["rec"],
                                         TINY_DICT, provenance, {}, tmp_path / "sets"))


def test_a_failed_gate_keeps_nothing_and_a_passed_one_builds_the_set(tiny_set, tmp_path, monkeypatch):
    settings = Settings(cache_dir=tmp_path / "cache")
    monkeypatch.setattr(fp16, "accuracy_gate", lambda *args: _report(3))
    with pytest.raises(GateFailed) as failed:
        gated_fp16_set(tiny_set, settings, tmp_path / "out", tmp_path / "scratch-a", "cuda")
    assert failed.value.report.edits == 3 and not (tmp_path / "out").exists()
    monkeypatch.setattr(fp16, "accuracy_gate", lambda *args: _report(2))
    folder, report = gated_fp16_set(tiny_set, settings, tmp_path / "out", tmp_path / "scratch-b", "cuda")
    built = ModelSet.load(folder)
    assert folder.parent == tmp_path / "out" / "tiny-fp16" and report.passed
    assert built.characters == TINY_DICT and built.manifest.defaults == tiny_set.manifest.defaults
    source = built.manifest.models["rec"].source
    assert source.uri == f"fp16:tiny@{tiny_set.version}/rec.onnx" and source.sha256 == sha256_file(tiny_set.path("rec"))
    weight = next(t for t in onnx.load(str(built.path("rec"))).graph.initializer if t.name == "w0")
    assert weight.data_type == TensorProto.FLOAT16


def _fp16_cli(tiny_set, tmp_path, monkeypatch, edits: int) -> int:  # type: ignore[no-untyped-def]
    """`docmill models fp16 --publish` on the tiny set, as on a CUDA host, with a gate that
    counts `edits` character edits."""
    monkeypatch.setenv("DOCMILL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(fp16, "gate_device", lambda: "cuda")
    monkeypatch.setattr(fp16, "accuracy_gate", lambda *args: _report(edits))
    return main(["models", "fp16", str(tiny_set.path("det").parent), "--publish", str(tmp_path / "pub")])


def test_the_cli_prints_the_gated_folder_and_publishes_it(tiny_set, tmp_path, monkeypatch, capsys):
    assert _fp16_cli(tiny_set, tmp_path, monkeypatch, edits=0) == 0
    out, err = capsys.readouterr()
    folder = Path(out.strip())
    assert folder.parent == tmp_path / "sets" / "tiny-fp16" and "fp16 gate passed" in err
    published = json.loads((tmp_path / "pub" / "tiny-fp16" / folder.name / "manifest.json").read_text())
    assert published["name"] == "tiny-fp16"


def test_the_cli_refuses_a_failed_set_in_one_line(tiny_set, tmp_path, monkeypatch, capsys):
    assert _fp16_cli(tiny_set, tmp_path, monkeypatch, edits=50) == 1
    out, err = capsys.readouterr()
    assert out == "" and "tiny-fp16 refused: fp16 gate FAILED" in err.splitlines()[-1]
    assert not (tmp_path / "pub").exists() and not (tmp_path / "sets" / "tiny-fp16").exists()


@pytest.mark.models
@pytest.mark.slow
def test_float16_weights_alone_leave_pp_ocrv4_text_unchanged(engine_for, tmp_path):
    """On CPU, ONNXRuntime computes these models in float32 from their float16 weights, so
    this gates the conversion itself (it read 65% of characters wrong while a BatchNorm
    variance was clamped into float16), not float16 arithmetic, which needs CUDA."""
    _, fp32 = engine_for("pp-ocrv4-ch")
    folder = build_fp16_set(fp32, convert_set(fp32, tmp_path / "scratch"), tmp_path / "sets")
    report = accuracy_gate(fp32, ModelSet.load(folder), "fp16", Settings(device="cpu"), None, device="cpu")
    assert report.chars > 1000 and report.edits == 0, report.line()
