"""Prepared models: the CTC head returns what the host would have taken from the full
probabilities, the cache is reused, replaced when its source or options change, and never
required."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from worker.engine import optimized, rec
from worker.engine.pixels import pixel_batch
from worker.engine.prepare import BEST_CLASS, BEST_PROB, add_ctc_head, add_pixel_input, prepared_model, rewrite
from worker.engine.session import ModelSession

RNG = np.random.default_rng(11)


def _softmax_model(opset: int, classes: int = 37):  # type: ignore[no-untyped-def]
    """A stand-in recogniser: (batch, steps, classes) logits in, their softmax out."""
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["probs"], axis=2)], "rec",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "steps", classes])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", "steps", classes])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _run(model: onnx.ModelProto | bytes, x: np.ndarray) -> list[np.ndarray]:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_ctc_head_gives_each_steps_best_class_and_probability(opset: int):
    x = RNG.normal(size=(3, 25, 37)).astype(np.float32) * 4
    (probs,) = _run(_softmax_model(opset), x)
    model = _softmax_model(opset)
    assert add_ctc_head(model)
    onnx.checker.check_model(model, full_check=True)
    best_class, best_prob = _run(model, x)
    assert [o.name for o in model.graph.output] == [BEST_CLASS, BEST_PROB]
    assert best_class.dtype == np.int64 and best_class.shape == (3, 25)
    np.testing.assert_array_equal(best_class, probs.argmax(axis=2))
    np.testing.assert_allclose(best_prob, probs.max(axis=2), rtol=1e-6)


def test_rec_reads_the_same_text_from_the_head_as_from_full_probabilities():
    chars = rec.output_characters(list("abcdefghij"))
    x = RNG.normal(size=(4, 30, len(chars))).astype(np.float32) * 6
    plain = _run(_softmax_model(13, len(chars)), x)
    headed = _softmax_model(13, len(chars))
    add_ctc_head(headed)
    with_head = _run(headed, x)
    assert rec.postprocess(with_head, chars, extents=[1.0] * 4) == rec.postprocess(plain, chars, extents=[1.0] * 4)


def test_a_model_without_a_class_axis_is_left_alone():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "det",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    before = model.SerializeToString()
    assert not add_ctc_head(model)
    assert model.SerializeToString() == before


def test_prepared_model_is_cached_and_replaced_when_its_source_changes(tmp_path):
    source = tmp_path / "rec.onnx"
    onnx.save(_softmax_model(13), source)
    first = prepared_model(source, fold=True, ctc_head=True)
    assert isinstance(first, str) and first != str(source)
    made = os.stat(first).st_mtime_ns
    assert prepared_model(source, fold=True, ctc_head=True) == first
    assert os.stat(first).st_mtime_ns == made  # reused, not rewritten
    other = prepared_model(source, fold=True, ctc_head=False)
    assert other != first  # other rewrites, another file, and neither removes the other
    assert os.path.exists(first) and os.path.exists(other)

    saved = optimized.saved_path(Path(first), ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    saved.write_bytes(b"ORT's optimisation of the first rewrite")

    onnx.save(_softmax_model(13, classes=41), source)
    os.utime(source, ns=(made + 10**9, made + 10**9))
    second = prepared_model(source, fold=True, ctc_head=True)
    assert second != first and not os.path.exists(first)  # the stale rewrite is gone
    assert not saved.exists() and os.path.exists(other)  # and what was derived from it, not the others
    (best_class, _) = _run(onnx.load(second), RNG.normal(size=(1, 5, 41)).astype(np.float32))
    assert best_class.max() < 41


def test_nothing_to_rewrite_means_the_file_itself(tmp_path):
    source = tmp_path / "det.onnx"
    onnx.save(_softmax_model(13), source)
    assert prepared_model(source, fold=False, ctc_head=False) == str(source)
    assert not (tmp_path / ".prepared").exists()


def test_an_unwritable_cache_gets_the_rewrite_from_memory(tmp_path):
    """Where `.prepared` cannot be made (here a file stands in its way, which stops root as
    well as anyone), the session still gets its rewrite."""
    source = tmp_path / "rec.onnx"
    onnx.save(_softmax_model(13), source)
    (tmp_path / ".prepared").write_text("in the way")
    model = prepared_model(source, fold=True, ctc_head=True)
    assert isinstance(model, bytes) and model == rewrite(source, fold=True, ctc_head=True)
    assert (tmp_path / ".prepared").read_text() == "in the way"


def _conv_model(opset: int, elem_type: int = TensorProto.FLOAT, dims: list | None = None):  # type: ignore[no-untyped-def]
    """A stand-in image model: N x 3 x H x W in, a 3 x 3 convolution out."""
    weight = RNG.normal(size=(2, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["xf", "w"], ["y"], pads=[1, 1, 1, 1])]
    if elem_type != TensorProto.FLOAT:  # a float16 input, as a converter might leave it
        nodes.insert(0, helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
    else:
        nodes.insert(0, helper.make_node("Identity", ["x"], ["xf"]))
    graph = helper.make_graph(
        nodes, "det", [helper.make_tensor_value_info("x", elem_type, dims or ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


@pytest.mark.parametrize("opset, elem_type", [(9, TensorProto.FLOAT), (13, TensorProto.FLOAT),
                                              (13, TensorProto.FLOAT16)])
def test_pixel_input_computes_what_the_host_did_padding_included(opset: int, elem_type: int):
    """Pages of different sizes on one canvas (with a bucket's empty item beside them), and
    a lone page that fills its canvas: the rewritten model's output equals the original's on
    the batch normalised on the host."""
    model = _conv_model(opset, elem_type)
    original = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    add_pixel_input(model)
    rewritten = ModelSession(ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]))
    assert rewritten.takes_pixels and rewritten.input_width is None
    pages = [RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8), RNG.integers(0, 256, (32, 12, 3), dtype=np.uint8),
             RNG.integers(0, 256, (7, 40, 3), dtype=np.uint8)]
    affine = [0.017, 0.0175, 0.0174], [-2.1, -2.0, -1.8]
    dtype = np.float16 if elem_type == TensorProto.FLOAT16 else np.float32
    padded, whole = pixel_batch(pages, (32, 40), *affine), pixel_batch(pages[1:2], (32, 12), *affine)
    assert padded.feed()["docmill_padded"].tolist() == [True] and whole.feed()["docmill_padded"].tolist() == [False]
    for batch in (padded, whole):
        expected = original.run(None, {"x": batch.normalized().astype(dtype)})[0]
        np.testing.assert_array_equal(rewritten.run(batch), expected)
        np.testing.assert_array_equal(rewritten.run(batch, bucketed=True), expected)  # three run as four
        raw = original.run(None, {"x": batch.pixels.transpose(0, 3, 1, 2).astype(dtype)})[0]
        assert not np.array_equal(rewritten.run(batch), raw)  # it did normalise


def test_pixel_input_keeps_a_fixed_width_and_refuses_what_it_cannot_rewrite():
    model = _conv_model(11, dims=["n", 3, 48, 192])
    add_pixel_input(model)
    session = ModelSession(ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]))
    assert session.input_width == 192
    with pytest.raises(ValueError, match="opset 8: docmill needs opset 9"):
        add_pixel_input(_conv_model(8))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        add_pixel_input(_conv_model(13, dims=["n", 3]))


@pytest.mark.models
def test_real_models_with_pixel_input_match_the_plain_models(engine_for):
    """The engine's det (a batch of two canvases) and rec sessions give what the plain model
    files give on the host-normalised batch, to the bit."""
    engine, model_set = engine_for("pp-ocrv4-ch")
    pages = [RNG.integers(0, 256, (96, 160, 3), dtype=np.uint8), RNG.integers(0, 256, (64, 192, 3), dtype=np.uint8)]
    for stage, session, batch in (
            ("det", engine.det_session, pixel_batch(pages, (96, 192), [1 / 58.4] * 3, [-2.1, -2.0, -1.8])),
            ("rec", engine.rec_session, pixel_batch([p[:48] for p in pages], (48, 320), [1 / 127.5] * 3, [-1.0] * 3))):
        plain = ort.InferenceSession(rewrite(model_set.path(stage), fold=True, ctc_head=False),
                                     providers=["CPUExecutionProvider"])
        expected = plain.run(None, {plain.get_inputs()[0].name: batch.normalized()})[0]
        np.testing.assert_array_equal(session.run(batch), expected)


@pytest.mark.models
def test_real_recognisers_head_matches_their_probabilities(engine_for):
    """On a real rec model (folded or not), the head's classes equal the argmax of the plain
    model's probabilities wherever the top two are not a near tie."""
    _, model_set = engine_for("pp-ocrv4-ch")
    path = model_set.path("rec")
    x = RNG.uniform(-1, 1, size=(2, 3, 48, 320)).astype(np.float32)
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (probs,) = plain.run(None, {plain.get_inputs()[0].name: x})
    for fold in (False, True):
        headed = ort.InferenceSession(rewrite(path, fold=fold, ctc_head=True), providers=["CPUExecutionProvider"])
        best_class, best_prob = headed.run(None, {headed.get_inputs()[0].name: x})
        top2 = np.sort(probs, axis=2)[..., -2:]
        clear = (top2[..., 1] - top2[..., 0]) > 1e-3
        np.testing.assert_array_equal(best_class[clear], probs.argmax(axis=2)[clear])
        np.testing.assert_allclose(best_prob, probs.max(axis=2), atol=2e-4)
