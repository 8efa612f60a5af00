"""Exact graph rewrites that ONNXRuntime does not do for PP-OCR's PP-LCNet models.

PP-LCNetV3 (the det, cls and rec backbones of PP-OCRv4/v5) follows most convolutions with
a "learnable affine block" (x * s + t, scalars) and a hard-swish that paddle2onnx spells as
Add(3) -> Clip(0, 6) -> Mul(x) -> Div(6). ONNXRuntime fuses neither, so each convolution
drags six element-wise passes over its whole output, and its blocked (NCHWc) convolutions
must reorder to plain layout around them: about a third of rec's time on CPU.

Three rewrites, each exact in real arithmetic (only float rounding changes):
- hard-swish -> Mul(x, HardSigmoid(x; 1/6, 0.5)), which ONNXRuntime fuses into the conv;
- Conv -> Mul(c) / Add(c) ... -> one Conv with scaled weights and shifted bias;
- Mul(c) / Add(c) ... -> Conv without padding -> one Conv (a padded conv would see the
  padding zeros shifted, so those affines stay).

The model files are not changed: the worker rewrites a copy in memory before ONNXRuntime
loads it (`DOCMILL_FOLD_GRAPH=false` turns this off).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

HARDSWISH_OFFSET, HARDSWISH_CAP = 3.0, 6.0


@dataclass
class FoldReport:
    """How many nodes each rewrite removed or replaced."""

    hardswish: int = 0
    affine_into_conv: int = 0
    affine_into_next_conv: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _GraphIndex:
    """Producers, consumers and constant values of one graph, rebuilt after each rewrite."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.outputs = {o.name for o in graph.output}
        self._constants = {t.name: t for t in graph.initializer}
        self._constants.update({n.output[0]: n.attribute[0].t for n in graph.node
                                if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})

    def constant(self, name: str) -> np.ndarray | None:
        tensor = self._constants.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def scalar(self, name: str) -> float | None:
        value = self.constant(name)
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def sole_consumer(self, name: str) -> onnx.NodeProto | None:
        """The one node reading `name`, if exactly one does and it is no graph output."""
        readers = self.consumers.get(name, [])
        return readers[0] if len(readers) == 1 and name not in self.outputs else None

    def split_scalar(self, node: onnx.NodeProto) -> tuple[str, float] | None:
        """(variable input, scalar constant) of a two-input node with one scalar constant."""
        if len(node.input) != 2:
            return None
        a, b = node.input
        if self.scalar(b) is not None and self.constant(a) is None:
            return a, self.scalar(b)  # type: ignore[return-value]
        if self.scalar(a) is not None and self.constant(b) is None:
            return b, self.scalar(a)  # type: ignore[return-value]
        return None


def _attr(node: onnx.NodeProto, name: str, default):  # type: ignore[no-untyped-def]
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _clip_bounds(index: _GraphIndex, clip: onnx.NodeProto) -> tuple[float | None, float | None]:
    if len(clip.input) >= 3:
        return index.scalar(clip.input[1]), index.scalar(clip.input[2])
    return _attr(clip, "min", None), _attr(clip, "max", None)


def _close(value: float | None, target: float) -> bool:
    return value is not None and abs(value - target) < 1e-6


def _hardswish_at(index: _GraphIndex, clip: onnx.NodeProto) -> tuple[str, list[onnx.NodeProto]] | None:
    """(x, [add, clip, mul, div]) when `clip` is the middle of x * clip(x + 3, 0, 6) / 6."""
    low, high = _clip_bounds(index, clip)
    add = index.producer.get(clip.input[0])
    if not (_close(low, 0.0) and _close(high, HARDSWISH_CAP) and add is not None and add.op_type == "Add"):
        return None
    split = index.split_scalar(add)
    if split is None or not _close(split[1], HARDSWISH_OFFSET) or index.sole_consumer(add.output[0]) is not clip:
        return None
    x = split[0]
    mul = index.sole_consumer(clip.output[0])
    if mul is None or mul.op_type != "Mul" or sorted(mul.input) != sorted([x, clip.output[0]]):
        return None
    div = index.sole_consumer(mul.output[0])
    if div is None or div.op_type != "Div" or div.input[0] != mul.output[0] or not _close(index.scalar(div.input[1]), HARDSWISH_CAP):
        return None
    return x, [add, clip, mul, div]


def _fold_hardswish(model: onnx.ModelProto) -> int:
    graph = model.graph
    index = _GraphIndex(graph)
    replaced: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    for clip in [n for n in graph.node if n.op_type == "Clip"]:
        found = _hardswish_at(index, clip)
        if found is None:
            continue
        x, chain = found
        out = chain[-1].output[0]
        gate = f"{out}/hardsigmoid"
        replaced[id(chain[-1])] = [
            helper.make_node("HardSigmoid", [x], [gate], alpha=1.0 / HARDSWISH_CAP, beta=0.5),
            helper.make_node("Mul", [x, gate], [out]),
        ]
        dropped.update(id(n) for n in chain[:-1])
    _replace_nodes(graph, replaced, dropped)
    return len(replaced)


def _conv_params(index: _GraphIndex, conv: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    weight = index.constant(conv.input[1])
    if weight is None or weight.ndim != 4:
        return None
    if len(conv.input) > 2 and conv.input[2]:
        bias = index.constant(conv.input[2])
        if bias is None:
            return None
    else:
        bias = np.zeros(weight.shape[0], dtype=weight.dtype)
    return weight, bias


def _per_channel(value: np.ndarray, channels: int) -> np.ndarray | None:
    """A constant broadcast along a conv output's channels: scalar, (C,1,1) or (1,C,1,1)."""
    if value.size == 1:
        return np.full(channels, float(value.reshape(-1)[0]), dtype=np.float64)
    if value.shape in ((channels, 1, 1), (1, channels, 1, 1)):
        return value.reshape(-1).astype(np.float64)
    return None


@dataclass
class _ConvFold:
    """A conv's new parameters and wiring after it absorbed the affine nodes `absorbed`."""

    weight: np.ndarray
    bias: np.ndarray
    source: str
    output: str
    absorbed: list[onnx.NodeProto]


def _affine_after(index: _GraphIndex, conv: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray) -> _ConvFold | None:
    """Conv -> (Mul c | Add c)+ becomes one conv: W' = W * s, b' = b * s + t."""
    channels = weight.shape[0]
    scale, shift = np.ones(channels), np.zeros(channels)
    chain: list[onnx.NodeProto] = []
    out = conv.output[0]
    while (node := index.sole_consumer(out)) is not None and node.op_type in ("Mul", "Add") and len(node.input) == 2:
        others = [name for name in node.input if name != out]
        value = index.constant(others[0]) if len(others) == 1 else None
        step = _per_channel(value, channels) if value is not None else None
        if step is None:
            break
        if node.op_type == "Mul":
            scale, shift = scale * step, shift * step
        else:
            shift = shift + step
        chain.append(node)
        out = node.output[0]
    if not chain:
        return None
    return _ConvFold((weight * scale.reshape(-1, 1, 1, 1)).astype(weight.dtype),
                     (bias * scale + shift).astype(weight.dtype), conv.input[0], out, chain)


def _unpadded(conv: onnx.NodeProto) -> bool:
    auto_pad = _attr(conv, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "VALID"):
        return False
    return not any(_attr(conv, "pads", []))


def _affine_before(index: _GraphIndex, conv: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray) -> _ConvFold | None:
    """(Mul c | Add c)+ -> Conv without padding becomes one conv: every input the conv
    sees is s*y + t, so conv(s*y + t) = (s*W) y + (b + t * sum(W))."""
    if not _unpadded(conv):
        return None
    scale, shift = 1.0, 0.0
    chain: list[onnx.NodeProto] = []
    source = conv.input[0]
    while (node := index.producer.get(source)) is not None and node.op_type in ("Mul", "Add"):
        split = index.split_scalar(node)
        if split is None or index.sole_consumer(source) is None or _ends_gelu(index, split[0]):
            break
        variable, value = split
        if node.op_type == "Mul":
            scale *= value
        else:
            shift += scale * value
        chain.append(node)
        source = variable
    if not chain:
        return None
    return _ConvFold((weight * scale).astype(weight.dtype),
                     (bias + shift * weight.sum(axis=(1, 2, 3), dtype=np.float64)).astype(weight.dtype),
                     source, conv.output[0], chain)


def _ends_gelu(index: _GraphIndex, name: str, depth: int = 3) -> bool:
    """Whether `name` comes out of an erf GELU (x * (1 + erf(x / sqrt 2)), then * 0.5).
    Folding that trailing 0.5 into the next conv would break the pattern ORT fuses into one
    Gelu kernel: measured on PP-OCRv6 (bench.op_profile), det 175 -> 194 ms and rec 110 ->
    118 ms per run with it folded, Erf, Mul and Div then running apart."""
    frontier = [name]
    for _ in range(depth):
        nodes = [index.producer[n] for n in frontier if n in index.producer]
        if any(node.op_type == "Erf" for node in nodes):
            return True
        frontier = [i for node in nodes for i in node.input]
    return False


def _fold_into_convs(model: onnx.ModelProto, fold: Callable[..., _ConvFold | None]) -> int:
    """Offer every conv with constant parameters to `fold`; where it folds, give the conv its
    new parameters and wiring and drop the absorbed nodes. Returns how many were dropped."""
    graph = model.graph
    index = _GraphIndex(graph)
    new_tensors: list[onnx.TensorProto] = []
    dropped: set[int] = set()
    for conv in [n for n in graph.node if n.op_type == "Conv"]:
        params = _conv_params(index, conv)
        folded = fold(index, conv, *params) if params is not None else None
        if folded is None:
            continue
        stem = f"{conv.name or conv.output[0]}/folded{len(new_tensors)}"
        new_tensors += [numpy_helper.from_array(folded.weight, f"{stem}/W"),
                        numpy_helper.from_array(folded.bias, f"{stem}/B")]
        del conv.input[:]
        conv.input.extend([folded.source, f"{stem}/W", f"{stem}/B"])
        conv.output[0] = folded.output
        dropped.update(id(n) for n in folded.absorbed)
    graph.initializer.extend(new_tensors)
    _replace_nodes(graph, {}, dropped)
    return len(dropped)


def _replace_nodes(graph: onnx.GraphProto, replaced: dict[int, list[onnx.NodeProto]], dropped: set[int]) -> None:
    """Rebuild the node list in order: replacements where their anchor stood, drops gone."""
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if id(node) in replaced:
            nodes.extend(replaced[id(node)])
        elif id(node) not in dropped:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)


def _drop_unused_constants(graph: onnx.GraphProto) -> None:
    """Constants and initializers only the removed nodes read, and their stale shapes."""
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    nodes = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] not in used)]
    del graph.node[:]
    graph.node.extend(nodes)
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    produced = {out for node in graph.node for out in node.output}
    infos = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(infos)


def fold_model(model: onnx.ModelProto) -> FoldReport:
    """Apply every rewrite to `model` in place; the report says what changed."""
    report = FoldReport(
        hardswish=_fold_hardswish(model),
        affine_into_conv=_fold_into_convs(model, _affine_after),
        affine_into_next_conv=_fold_into_convs(model, _affine_before),
    )
    _drop_unused_constants(model.graph)
    return report


def folded_model_bytes(path: str | Path) -> tuple[bytes, FoldReport]:
    """The model at `path`, rewritten, serialised for onnxruntime.InferenceSession."""
    model = onnx.load(str(path))
    report = fold_model(model)
    return model.SerializeToString(), report
