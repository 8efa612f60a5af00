"""Provider choice: the CUDA probe is made only where the NVIDIA driver could run it."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from docmill.settings import Settings
from worker.engine import optimized
from worker.engine.providers import CPU, DeviceUnavailable, cuda_driver_loads, resolve_providers, session_options

no_driver = pytest.mark.skipif(cuda_driver_loads(), reason="an NVIDIA driver library loads here")


def test_driver_check_tells_a_loadable_library_from_a_missing_one():
    assert not cuda_driver_loads(("libdocmill-no-such-driver.so.1",))
    if sys.platform.startswith("linux"):
        assert cuda_driver_loads(("libdocmill-no-such-driver.so.1", "libc.so.6"))


@no_driver
def test_without_a_driver_auto_is_cpu_and_cuda_is_refused_with_advice():
    assert resolve_providers("auto") == [CPU]
    with pytest.raises(DeviceUnavailable, match="use --device auto or cpu"):
        resolve_providers("cuda")


@no_driver
def test_without_a_driver_no_cuda_provider_is_loaded_to_find_out():
    """The probe builds its one-node model with onnx: a fresh process that decided without
    the probe has not imported onnx (nor paid for loading ORT's CUDA provider)."""
    code = ("import sys; from worker.engine.providers import cuda_works; "
            "print(cuda_works(), 'onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def _int8_conv_of_ones(path: Path, channels: int = 64) -> Path:
    """x -> QDQ (uint8) -> 1x1 Conv over `channels` with int8 weights of 127 (1.0) -> QDQ:
    ORT runs it as one uint8 x int8 convolution. Fed ones, every input is 255 and every
    output the sum of `channels` ones."""
    def qdq(name: str, scale: float, zero: np.ndarray) -> list[onnx.NodeProto]:
        args = [f"{name}_scale", f"{name}_zero"]
        initializers.extend([numpy_helper.from_array(np.array(scale, np.float32), args[0]),
                             numpy_helper.from_array(zero, args[1])])
        return [helper.make_node("QuantizeLinear", [name, *args], [f"{name}_q"]),
                helper.make_node("DequantizeLinear", [f"{name}_q", *args], [f"{name}_dq"])]

    weight = numpy_helper.from_array(np.full((1, channels, 1, 1), 127, np.int8), "w_q")
    initializers = [weight, numpy_helper.from_array(np.array(1 / 127, np.float32), "w_scale"),
                    numpy_helper.from_array(np.array(0, np.int8), "w_zero")]
    nodes = [*qdq("x", 1 / 255, np.array(0, np.uint8)),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w_dq"]),
             helper.make_node("Conv", ["x_dq", "w_dq"], ["y"]), *qdq("y", 0.5, np.array(0, np.uint8))]
    nodes.append(helper.make_node("Identity", ["y_dq"], ["out"]))
    graph = helper.make_graph(nodes, "int8conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 2, 2])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 2, 2])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_int8_convolutions_do_not_saturate_on_cpus_without_vnni(tmp_path):
    """Without VNNI, ORT sums uint8 x int8 products in pairs in 16 bits: 255 x 127 twice is
    64,770, over 32,767. docmill's sessions have ORT move such weights to uint8 first, and the
    graph it saves for the next process keeps that (pp-ocrv6-int8det's det read faint lines
    with their first letters lost on an AVX2-only EPYC without it)."""
    model = _int8_conv_of_ones(tmp_path / "det.onnx")
    for _ in ("optimised and saved", "loaded from the saved graph"):
        session = optimized.open_session(str(model), session_options(Settings()), [CPU], [{}], save=True)
        assert session.run(None, {"x": np.ones((1, 64, 2, 2), np.float32)})[0].tolist() == [[[[64.0, 64.0]] * 2]]
