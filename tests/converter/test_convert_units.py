"""The converter's small pieces: the interp retyping, parity shapes and comparison, flag
parsing, the yml architecture check, and the onnxruntime half of the load gate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from converter.convert_cli import parse_input_shapes
from converter.paddle2onnx_step import ConversionFailed, check_loads, retype_interp_scale
from converter.paddle_model import Refused, read_yml, refuse_unconvertible
from converter.parity import compare, random_shapes
from docmill.cli import UsageError

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def test_only_float64_interp_scales_are_retyped() -> None:
    graph = {"program": {"ops": [
        {"#": "1.nearest_interp", "A": [{"N": "scale", "AT": {"D": [{"#": "0.a_f64", "D": 2.0}, {"#": "0.a_f64", "D": 2.0}]}}]},
        {"#": "1.bilinear_interp", "A": [{"N": "scale", "AT": {"D": [{"#": "0.a_f32", "D": 2.0}]}}]},
        {"#": "1.scale", "A": [{"N": "scale", "AT": {"#": "0.a_f64", "D": 3.0}}]},
    ]}}
    assert retype_interp_scale(graph) == 2
    ops = graph["program"]["ops"]
    assert [e["#"] for e in ops[0]["A"][0]["AT"]["D"]] == ["0.a_f32", "0.a_f32"]
    assert ops[2]["A"][0]["AT"]["#"] == "0.a_f64"  # not an interp op


def test_parity_shapes_vary_every_dynamic_dimension_and_keep_fixed_ones() -> None:
    assert random_shapes((-1, 3, 48, -1), "rec") == [(1, 3, 48, 80), (2, 3, 48, 320), (1, 3, 48, 640)]
    det = random_shapes((-1, 3, -1, -1), "det")
    assert len(set(det)) == 3 and all(h % 32 == 0 and w % 32 == 0 for _, _, h, w in det)
    assert random_shapes((-1, 1, 28, 28), "model") == [(1, 1, 28, 28), (2, 1, 28, 28), (3, 1, 28, 28)]
    assert random_shapes((-1, 784), "model") == [(1, 784), (2, 784), (3, 784)]


def test_compare_reports_the_largest_difference_and_inf_for_any_mismatch() -> None:
    a = np.zeros((2, 3), np.float32)
    assert compare([a], [a + 1e-5]) == pytest.approx(1e-5, rel=1e-3)
    assert compare([a], [np.zeros((3, 2), np.float32)]) == math.inf
    assert compare([a], [a, a]) == math.inf
    assert compare([a], [np.full((2, 3), np.nan, np.float32)]) == math.inf


def test_input_shape_flags_parse_and_bad_ones_are_usage_errors() -> None:
    stages = {"det", "cls", "rec"}
    assert parse_input_shapes(["det:x=[1,3,960,960]", "rec:x=[-1,3,48,320]"], stages) == {
        "det": {"x": [1, 3, 960, 960]}, "rec": {"x": [-1, 3, 48, 320]}}
    assert parse_input_shapes(["x=[1,1,28,28]"], {"model"}) == {"model": {"x": [1, 1, 28, 28]}}
    for bad in ("x=[1,3]", "ocr:x=[1]", "det:x=[1,3", "det:x=[0,3]", "det:x=[None]"):
        with pytest.raises(UsageError):
            parse_input_shapes([bad], stages)


def test_the_architecture_check_reads_post_processing_and_algorithm(tmp_path) -> None:
    refuse_unconvertible({"PostProcess": {"name": "CTCLabelDecode"}}, tmp_path)
    with pytest.raises(Refused, match="a SAR recogniser"):
        refuse_unconvertible({"Architecture": {"algorithm": "SAR"}}, tmp_path)
    with pytest.raises(Refused, match="a RARE recogniser"):
        refuse_unconvertible({"PostProcess": {"name": "AttnLabelDecode"}}, tmp_path)


def test_the_v5_rec_yml_is_not_mistaken_for_nrtr() -> None:
    folder = SHARED / "models/pir_graphs/korean_PP-OCRv5_mobile_rec_infer"
    if not folder.is_dir():
        pytest.skip("../shared is absent")
    yml = read_yml(folder)
    assert "NRTRLabelEncode" in str(yml["PreProcess"])  # training-time encoder only
    refuse_unconvertible(yml, folder)


def test_unreadable_yml_is_refused(tmp_path) -> None:
    (tmp_path / "inference.yml").write_text("PostProcess: [unclosed", "utf-8")
    with pytest.raises(Refused, match="not readable YAML"):
        read_yml(tmp_path)


def test_a_file_the_checker_accepts_but_onnxruntime_cannot_load_is_refused(tmp_path) -> None:
    """The paddle2onnx 2.1.0 failure mode: valid to onnx.checker, refused by onnxruntime."""
    node = helper.make_node("Mystery", ["x"], ["y"], domain="vendor.custom")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("vendor.custom", 1)])
    model.ir_version = 8
    path = tmp_path / "odd.onnx"
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    with pytest.raises(ConversionFailed, match="odd.onnx: onnxruntime cannot load it"):
        check_loads(path)
