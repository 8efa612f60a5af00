"""ORT's saved optimisation: a second CPU session loads it and computes exactly what an
optimising session does; the key changes with the model and the machine; nothing is saved
where it should not be."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from worker.engine import optimized

RNG = np.random.default_rng(5)
CPU = ["CPUExecutionProvider"]


def _conv_model(path: Path) -> Path:
    """Conv -> Add -> Relu: ORT fuses it when it optimises, so the saved graph differs."""
    weight = numpy_helper.from_array(RNG.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(RNG.normal(size=(1, 4, 1, 1)).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Add", ["c", "b"], ["a"]), helper.make_node("Relu", ["a"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, "h", "w"])], [weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


def _open(model: str | bytes, save: bool = True) -> tuple[ort.InferenceSession, ort.SessionOptions]:
    opts = _options()
    return optimized.open_session(model, opts, CPU, [{}], save=save), opts


def test_the_second_session_loads_the_saved_graph_and_computes_the_same(tmp_path):
    model = _conv_model(tmp_path / "det.onnx")
    target = optimized.saved_path(model, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    first, _ = _open(str(model))
    assert target.is_file() and target.parent.name == ".prepared"
    saved = onnx.load(str(target))
    assert [n.op_type for n in saved.graph.node] != ["Conv", "Add", "Relu"]  # what ORT made of it
    second, opts = _open(str(model))
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # loaded, not redone
    x = RNG.normal(size=(2, 3, 17, 23)).astype(np.float32)
    plain = ort.InferenceSession(str(model), _options(), providers=CPU)
    expected = plain.run(None, {"x": x})[0]
    assert np.array_equal(first.run(None, {"x": x})[0], expected)
    assert np.array_equal(second.run(None, {"x": x})[0], expected)
    assert not list(target.parent.glob(".*.tmp"))


def test_an_edited_model_or_another_machine_gets_its_own_file(tmp_path, monkeypatch):
    model = _conv_model(tmp_path / "rec.onnx")
    level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    here = optimized.saved_path(model, level)
    assert optimized.saved_path(model, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC) != here
    monkeypatch.setattr(optimized, "machine_features", lambda: "avx512f other-machine")
    assert optimized.saved_path(model, level) != here
    monkeypatch.undo()
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert optimized.saved_path(model, level) != here


def test_a_model_in_a_prepared_folder_is_saved_beside_it(tmp_path):
    (tmp_path / ".prepared").mkdir()
    model = _conv_model(tmp_path / ".prepared" / "cls.folded.abc.onnx")
    path = optimized.saved_path(model, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    assert path.parent == model.parent and path.name.startswith("cls.folded.abc.ort-")


@pytest.mark.parametrize("case", ["not saving", "bytes", "optimisation off"])
def test_nothing_is_saved_where_it_should_not_be(tmp_path, case):
    model = _conv_model(tmp_path / "det.onnx")
    opts = _options()
    if case == "optimisation off":
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source: str | bytes = model.read_bytes() if case == "bytes" else str(model)
    session = optimized.open_session(source, opts, CPU, [{}], save=case != "not saving")
    assert session.run(None, {"x": np.zeros((1, 3, 4, 4), np.float32)})[0].shape == (1, 4, 4, 4)
    assert not (tmp_path / ".prepared").exists()


def test_a_graph_that_cannot_be_saved_still_gives_a_session(tmp_path):
    """ORT fails a session whose optimised graph it cannot write (here a folder stands where
    the file would go, which stops root as well as anyone): the session is made without it."""
    import threading

    model = _conv_model(tmp_path / "det.onnx")
    target = optimized.saved_path(model, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    target.parent.mkdir()
    (target.parent / f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp").mkdir()
    session, _ = _open(str(model))
    assert session.run(None, {"x": np.zeros((1, 3, 4, 4), np.float32)})[0].shape == (1, 4, 4, 4)
    assert not target.exists()


def test_machine_features_names_this_processor():
    assert optimized.machine_features().strip()
