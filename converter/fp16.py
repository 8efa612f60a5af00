"""`docmill models fp16`: FP16 copies of a built set, for cheaper arithmetic on a GPU.

Each model (det, cls, rec, and ori when the set has one) is converted with
onnxconverter-common: weights and activations become float16, except around the ops in
`SENSITIVE_OPS` and the nodes `out_of_range_nodes` finds, which keep float32 with casts on
either side. `keep_io_types` leaves graph inputs and outputs float32, so the engine feeds and
reads the set as it does any other (`_check_float32_edges` makes sure).

Why these ops stay float32 (float16 holds at most 65504, with 11 significant bits):
- Softmax and LogSoftmax: rec's softmax normalises over up to 18,710 classes; a float16 sum
  of that many terms rounds at every step.
- The reductions (ReduceMean, ...): the SVTR neck's layer norms take mean and variance over
  its channels; a float16 accumulator rounds every addition.
- Pow and Sqrt: the layer norms square (x - mean). Measured with the fp32 models on the demo
  pages' real inputs, those squares are rec's largest activations: up to 1460 in PP-OCRv6
  (from |x - mean| <= 38) and 552 in PP-OCRv4, where |x - mean| past 256 overflows float16.
- Exp and Log: overflow past 11, and lose everything near 0.
Div stays float16: hard-swish divides by the constant 6 after every other convolution, and
the layer norms by sqrt(variance + eps), measured no smaller than 0.33; keeping Div float32
would put two casts around the commonest layer in PP-LCNet. Erf (PP-OCRv6's GELU) and Sigmoid
are bounded and stay float16. onnxconverter-common's own list (Resize, TopK, ...) is kept too.
No fp32 activation on those inputs reached 65504; the closest is a convolution in PP-OCRv4's
det at 18400, 3.6x below it, which only the gate on real pages can watch.

ONNXRuntime's CPU provider loads and runs these files, but it has no float16 convolution
kernels: it wraps such nodes in casts and computes them in float32 (`cpu_computes_fp16`
checks), so a CPU run tests the weights' rounding but not float16 arithmetic. The gate
therefore runs where float16 is really computed (`gate_device`: CUDA here), and a command
refuses, before any work, on a machine with no such device.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from docmill.hashstamp import sha256_file
from docmill.modelset import OPTIONAL_STAGES, STAGES, ModelSet, ModelSetError, SourceProvenance
from docmill.settings import Settings

from converter.gate import GateReport, accuracy_gate
from converter.limits import DEFAULT_MAX_CER

SENSITIVE_OPS = frozenset({
    "Softmax", "LogSoftmax",
    "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
    "ReduceProd",
    "Pow", "Sqrt", "Exp", "Log",
    "LayerNormalization",
})
MAX_FINITE = 65504.0  # float16's largest value; onnxconverter-common's default clamps at 1e4
SUFFIX = "-fp16"
NEEDS_CUDA = ("the FP16 gate needs a CUDA GPU: ONNXRuntime's CPU provider has no float16 convolution "
              "kernels and would run these models in float32, so a CPU run would not measure FP16 text")


class Fp16Unavailable(Exception):
    """The FP16 copy cannot be made and gated here; the message is one line of advice."""


def require_converter() -> None:
    """onnxconverter-common comes with the `convert` extra; say so before any work rather
    than fail on an import halfway through."""
    import importlib.util

    if importlib.util.find_spec("onnxconverter_common") is None:
        raise Fp16Unavailable("docmill models fp16 needs onnxconverter-common, which is not installed; "
                              "run: pip install 'docmill[convert]'")


def block_list() -> list[str]:
    """onnxconverter-common's default list (ops with no float16 form) plus SENSITIVE_OPS;
    passing a list replaces its default, so both go in."""
    from onnxconverter_common.float16 import DEFAULT_OP_BLOCK_LIST

    return sorted(set(DEFAULT_OP_BLOCK_LIST) | SENSITIVE_OPS)


def convert_model(src: Path, dst: Path) -> Path:
    """`src` with float16 weights and arithmetic outside the block list, float32 at its edges
    and checked by onnx.checker before it is written."""
    from onnxconverter_common.float16 import convert_float_to_float16

    blocked = block_list()
    model = onnx.load(str(src))
    _name_nodes(model)
    float32_nodes = out_of_range_nodes(model)
    _detach_outputs(model, set(blocked), set(float32_nodes))
    with warnings.catch_warnings():  # one per weight below 1e-7, raised to 1e-7
        warnings.simplefilter("ignore", UserWarning)
        model = convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked,
                                         node_block_list=float32_nodes, max_finite_val=MAX_FINITE)
    _check_float32_edges(model, src)
    onnx.checker.check_model(model, full_check=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst


def out_of_range_nodes(model: onnx.ModelProto) -> list[str]:
    """The nodes with a constant input float16 cannot hold (|value| > MAX_FINITE), which keep
    float32. PP-OCRv4's det has a BatchNormalization whose running variance reaches 9.8e7;
    clamped into float16 it turned det's probability map to noise (max abs difference 1.0,
    CER against fp32 0.65 on the demo pages) even where every op computes in float32.
    Such values held by Constant nodes become initializers first: the converter converts a
    Constant whatever reads it, but leaves a blocked node's initializers as they are."""
    too_large = {tensor.name for tensor in model.graph.initializer if _beyond_float16(tensor)}
    for node in list(model.graph.node):
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None and _beyond_float16(value):
            model.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(value), node.output[0]))
            model.graph.node.remove(node)
            too_large.add(node.output[0])
    return [node.name for node in model.graph.node if too_large.intersection(node.input)]


def _beyond_float16(tensor: onnx.TensorProto) -> bool:
    return tensor.data_type == TensorProto.FLOAT and float(
        np.abs(numpy_helper.to_array(tensor)).max(initial=0.0)) > MAX_FINITE


def _name_nodes(model: onnx.ModelProto) -> None:
    """The converter names its casts after the node they serve; paddle2onnx leaves hundreds of
    nodes unnamed, whose casts would then share one name."""
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"docmill_{node.op_type}_{index}"


def _detach_outputs(model: onnx.ModelProto, blocked_ops: set[str], blocked_nodes: set[str]) -> None:
    """Put an Identity between a blocked node and the graph output it writes (rec's and ori's
    final Softmax). The converter casts a blocked node's result to float16 for its consumers,
    and with none but the graph output it leaves that output float16 despite keep_io_types
    (PP-OCRv4's rec), or fails outright (PP-OCRv6's ori)."""
    outputs = {output.name for output in model.graph.output}
    for node in list(model.graph.node):
        if node.op_type not in blocked_ops and node.name not in blocked_nodes:
            continue
        for index, name in enumerate(node.output):
            if name in outputs:
                node.output[index] = f"{name}_docmill_fp32"
                model.graph.node.append(onnx.helper.make_node(
                    "Identity", [node.output[index]], [name], name=f"docmill_output_{name}"))


def _check_float32_edges(model: onnx.ModelProto, src: Path) -> None:
    """The engine feeds and reads float32; a float16 input or output must never be written."""
    edges = [*model.graph.input, *model.graph.output]
    wrong = [edge.name for edge in edges if edge.type.tensor_type.elem_type == TensorProto.FLOAT16]
    if wrong:
        raise ValueError(f"{src}: float16 conversion left {wrong} float16; the engine needs float32 there")


def fp16_stages(model_set: ModelSet) -> list[str]:
    return [*STAGES, *(stage for stage in OPTIONAL_STAGES if model_set.has(stage))]


def convert_set(model_set: ModelSet, scratch: Path) -> dict[str, Path]:
    """Every model of the set converted, by stage, as files in `scratch`."""
    return {stage: _convert_stage(model_set, stage, scratch) for stage in fp16_stages(model_set)}


def _convert_stage(model_set: ModelSet, stage: str, scratch: Path) -> Path:
    try:
        return convert_model(model_set.path(stage), scratch / f"{stage}.fp16.onnx")
    except Exception as exc:  # noqa: BLE001 - onnx, protobuf and the converter raise their own types
        first = (str(exc).splitlines() or [exc.__class__.__name__])[0]
        raise ModelSetError(f"{model_set.name}: {stage}: float16 conversion failed ({first})") from exc


def build_fp16_set(model_set: ModelSet, models: dict[str, Path], out_root: Path) -> Path:
    """`<set>-fp16` under `out_root` from converted `models`: the same dictionary and
    defaults, provenance `fp16:<set>@<version>/<stage>.onnx` with the source file's sha256."""
    from converter.modelset_build import build_model_set

    provenance = {stage: SourceProvenance(uri=f"fp16:{model_set.name}@{model_set.version}/{stage}.onnx",
                                          sha256=sha256_file(model_set.path(stage))) for stage in models}
    return build_model_set(f"{model_set.name}{SUFFIX}", models["det"], models["cls"], models["rec"],
                           model_set.characters, provenance, model_set.manifest.defaults, out_root,
                           ori=models.get("ori"))


class GateFailed(Exception):
    """The FP16 set reads differently from the fp32 set; `report` has the figures."""

    def __init__(self, name: str, report: GateReport):
        super().__init__(f"{name}{SUFFIX} refused: {report.line()}; nothing kept or published")
        self.report = report


def gated_fp16_set(model_set: ModelSet, settings: Settings, out_root: Path, scratch: Path, device: str,
                   extra_images: Path | None = None, max_cer: float = DEFAULT_MAX_CER,
                   progress: Callable[[str], None] = lambda message: None) -> tuple[Path, GateReport]:
    """Convert, build the set in `scratch`, gate it on `device` against the fp32 set, and only
    when it passes build it under `out_root` (the same content, so the same version): a set
    that failed never reaches a folder `--models` can name. Raises GateFailed."""
    progress(f"{model_set.name}: converting {', '.join(fp16_stages(model_set))} to float16")
    models = convert_set(model_set, scratch / "models")
    staged = ModelSet.load(build_fp16_set(model_set, models, scratch / "staged"))
    progress(f"{model_set.name}: accuracy gate on {device}, fp16 against fp32")
    report = accuracy_gate(model_set, staged, "fp16", settings, extra_images, max_cer, device)
    progress(f"{model_set.name}: {report.line()}")
    if not report.passed:
        raise GateFailed(model_set.name, report)
    return build_fp16_set(model_set, models, out_root), report


def gate_device() -> str:
    """Where the FP16 gate can measure float16 text: `cuda` when CUDA works, else `cpu` when
    this CPU provider computes float16 convolutions itself; raises Fp16Unavailable otherwise.
    Cheap (a one-node probe), so commands call it before any work."""
    from worker.engine.providers import cuda_works

    if cuda_works():
        return "cuda"
    if cpu_computes_fp16():
        return "cpu"
    raise Fp16Unavailable(NEEDS_CUDA)


def cpu_computes_fp16() -> bool:
    """True when ONNXRuntime's CPU provider runs a float16 Conv in float16. Where it has no
    such kernel it wraps the node in casts to float32 (InsertedPrecisionFreeCast), which show
    in the graph it saves."""
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="docmill-fp16-probe-") as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(optimized)
        ort.InferenceSession(_conv_probe().SerializeToString(), options, providers=["CPUExecutionProvider"])
        return not any(node.op_type == "Cast" for node in onnx.load(str(optimized)).graph.node)


def _conv_probe() -> onnx.ModelProto:
    """x (float16) -> Conv -> y (float16): one node, so every cast ORT adds is its own."""
    from onnx import helper

    weight = numpy_helper.from_array(np.ones((1, 1, 1, 1), dtype=np.float16), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "fp16-probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 1, 4, 4])],
                              initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model

