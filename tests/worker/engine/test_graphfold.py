"""Graph folding: each rewrite fires where it should, leaves alone what it must, and changes
no output beyond float rounding, on small graphs built here and on the real models."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from worker.engine.graphfold import fold_model

RNG = np.random.default_rng(7)


def _const(name: str, value) -> onnx.NodeProto:  # type: ignore[no-untyped-def]
    array = np.asarray(value, dtype=np.float32)
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


def _affine(x: str, stem: str, scale: float, shift: float) -> tuple[list[onnx.NodeProto], str]:
    """x * scale + shift, spelled as paddle2onnx spells PP-LCNet's learnable affine block."""
    nodes = [_const(f"{stem}_s", [scale]), _const(f"{stem}_t", [shift]),
             helper.make_node("Mul", [x, f"{stem}_s"], [f"{stem}_m"]),
             helper.make_node("Add", [f"{stem}_m", f"{stem}_t"], [f"{stem}_o"])]
    return nodes, f"{stem}_o"


def _hardswish(x: str, stem: str) -> tuple[list[onnx.NodeProto], str]:
    nodes = [_const(f"{stem}_3", 3.0), _const(f"{stem}_0", 0.0), _const(f"{stem}_6", 6.0),
             helper.make_node("Add", [x, f"{stem}_3"], [f"{stem}_a"]),
             helper.make_node("Clip", [f"{stem}_a", f"{stem}_0", f"{stem}_6"], [f"{stem}_c"]),
             helper.make_node("Mul", [x, f"{stem}_c"], [f"{stem}_m"]),
             helper.make_node("Div", [f"{stem}_m", f"{stem}_6"], [f"{stem}_o"])]
    return nodes, f"{stem}_o"


def _conv(x: str, stem: str, cin: int, cout: int, k: int, pad: int, group: int = 1) -> tuple[list[onnx.NodeProto], str]:
    weight = RNG.normal(0, 0.3, (cout, cin // group, k, k)).astype(np.float32)
    bias = RNG.normal(0, 0.1, cout).astype(np.float32)
    nodes = [_const(f"{stem}_w", weight), _const(f"{stem}_b", bias),
             helper.make_node("Conv", [x, f"{stem}_w", f"{stem}_b"], [f"{stem}_o"], name=stem,
                              kernel_shape=[k, k], pads=[pad] * 4, group=group)]
    return nodes, f"{stem}_o"


def _model(nodes: list[onnx.NodeProto], out: str, channels: int = 4) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 9, 11])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, None, None, None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def _lcnet_block() -> onnx.ModelProto:
    """conv 3x3 -> affine -> hard-swish -> affine -> conv 1x1 -> affine -> hard-swish ->
    affine -> padded depthwise 3x3: the shape of a PP-LCNetV3 block."""
    nodes, x = _conv("x", "c1", 4, 8, 3, 1)
    for step in (lambda v: _affine(v, "a1", 0.7, -0.2), lambda v: _hardswish(v, "h1"),
                 lambda v: _affine(v, "a2", 0.4, 0.15), lambda v: _conv(v, "c2", 8, 8, 1, 0),
                 lambda v: _affine(v, "a3", 1.3, 0.05), lambda v: _hardswish(v, "h2"),
                 lambda v: _affine(v, "a4", 0.5, -0.3), lambda v: _conv(v, "c3", 8, 8, 3, 1, group=8)):
        more, x = step(x)
        nodes += more
    return _model(nodes, x)


def _outputs(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node if n.op_type != "Constant"]


def test_lcnet_block_folds_to_convs_and_gates_with_the_same_output():
    model = _lcnet_block()
    x = RNG.normal(0, 2, (1, 4, 9, 11)).astype(np.float32)
    before = _outputs(model, x)
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    report = fold_model(folded)
    onnx.checker.check_model(folded)
    assert report.as_dict() == {"hardswish": 2, "affine_into_conv": 4, "affine_into_next_conv": 2}
    # a4 feeds a padded conv: its Mul and Add must stay, or the padding would change
    assert _ops(folded) == ["Conv", "HardSigmoid", "Mul", "Conv", "HardSigmoid", "Mul", "Mul", "Add", "Conv"]
    np.testing.assert_allclose(_outputs(folded, x), before, rtol=1e-5, atol=1e-5)


def test_the_half_that_closes_an_erf_gelu_stays_for_ort_to_fuse():
    """conv -> x * (1 + erf(x / sqrt 2)) * 0.5 -> conv 1x1: PP-OCRv6's blocks. The 0.5 could
    fold into the next conv exactly, but then ORT no longer sees a Gelu (measured slower)."""
    nodes, x = _conv("x", "c1", 4, 4, 3, 1)
    nodes += [_const("sqrt2", 2 ** 0.5), _const("one", 1.0), _const("half", 0.5),
              helper.make_node("Div", [x, "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
              helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", [x, "a"], ["m"]),
              helper.make_node("Mul", ["m", "half"], ["g"])]
    more, out = _conv("g", "c2", 4, 4, 1, 0)
    model = _model(nodes + more, out)
    x_in = RNG.normal(0, 2, (1, 4, 9, 11)).astype(np.float32)
    before = _outputs(model, x_in)
    report = fold_model(model)
    assert report.affine_into_next_conv == 0
    assert _ops(model).count("Mul") == 2 and "Erf" in _ops(model)
    np.testing.assert_allclose(_outputs(model, x_in), before, rtol=1e-5, atol=1e-5)


def test_a_conv_whose_output_is_read_twice_keeps_its_affine():
    nodes, x = _conv("x", "c1", 4, 4, 3, 1)
    more, y = _affine(x, "a1", 0.5, 0.1)
    nodes += more + [helper.make_node("Add", [x, y], ["out"])]
    model = _model(nodes, "out")
    report = fold_model(model)
    assert report.affine_into_conv == 0 and report.affine_into_next_conv == 0
    assert _ops(model) == ["Conv", "Mul", "Add", "Add"]


def test_a_clip_that_is_not_a_hardswish_is_left_alone():
    """relu6(x + 3) / 6 without the multiply by x is a hard-sigmoid, not a hard-swish."""
    nodes = [_const("three", 3.0), _const("zero", 0.0), _const("six", 6.0),
             helper.make_node("Add", ["x", "three"], ["a"]),
             helper.make_node("Clip", ["a", "zero", "six"], ["c"]),
             helper.make_node("Div", ["c", "six"], ["out"])]
    model = _model(nodes, "out")
    x = RNG.normal(0, 3, (1, 4, 9, 11)).astype(np.float32)
    before = _outputs(model, x)
    assert fold_model(model).hardswish == 0
    np.testing.assert_array_equal(_outputs(model, x), before)


def test_per_channel_scale_after_a_conv_folds():
    nodes, x = _conv("x", "c1", 4, 6, 3, 1)
    scale = RNG.uniform(0.5, 2.0, (1, 6, 1, 1))
    nodes += [_const("s", scale), helper.make_node("Mul", [x, "s"], ["out"])]
    model = _model(nodes, "out")
    x_in = RNG.normal(0, 1, (1, 4, 9, 11)).astype(np.float32)
    before = _outputs(model, x_in)
    assert fold_model(model).affine_into_conv == 1
    assert _ops(model) == ["Conv"]
    np.testing.assert_allclose(_outputs(model, x_in), before, rtol=1e-5, atol=1e-5)


@pytest.mark.models
@pytest.mark.slow
def test_folding_never_changes_texts_on_real_pages(engine_for, sample_pages, shared_dir):
    """The default set with and without folding: same lines, boxes within 1 px, scores
    within 1e-3, on the demo pages, three receipts and two PaddleOCR pages."""
    from docmill.modelset import ModelSet
    from docmill.settings import Settings
    from worker.engine.pipeline import OcrEngine

    folded_engine, model_set = engine_for("pp-ocrv4-ch")
    plain_engine = OcrEngine.load(ModelSet.load(model_set.root), Settings(device="cpu", fold_graph=False))
    images, _ = sample_pages
    batch = list(images.values())
    batch += [cv2.imread(str(p)) for p in sorted((shared_dir / "data/sroie_sample/images").glob("*.jpg"))[:3]]
    batch += [cv2.imread(str(p)) for p in sorted((shared_dir / "data/paddleocr/doc/imgs").glob("*.jpg"))[:2]]
    for folded, plain in zip(folded_engine.run(batch), plain_engine.run(batch)):
        assert [l.text for l in folded.lines] == [l.text for l in plain.lines]
        for a, b in zip(folded.lines, plain.lines):
            assert np.abs(np.array(a.box) - np.array(b.box)).max() <= 1
            assert abs(a.score - b.score) <= 1e-3
