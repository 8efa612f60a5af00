"""What a model set's manifest records about an ONNX file, read with the `onnx` package: the
opset a runtime must support, the tensors the engine feeds and reads, and the metadata in which
PP-OCR rec models carry their dictionary (`character`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from docmill.modelset import TensorInfo, parse_dictionary

if TYPE_CHECKING:
    import onnx

DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class OnnxInfo:
    opset: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    metadata: dict[str, str]

    @property
    def character(self) -> list[str] | None:
        """The dictionary embedded by PaddleOCR exports (newline-separated), if any."""
        text = self.metadata.get("character")
        return None if text is None else parse_dictionary(text)


def read_onnx_info(path: Path) -> OnnxInfo:
    """Read the graph header only (weights stored outside the file are not loaded). onnx is
    imported here, not with the module: `docmill run` reaches this module through the
    presets and never reads a graph (45 ms of every start-up)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    opsets = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not opsets:
        raise ValueError(f"{path}: no opset for the default ONNX domain")
    initializers = {init.name for init in model.graph.initializer}
    return OnnxInfo(
        opset=opsets[0],
        inputs=[_tensor_info(v) for v in model.graph.input if v.name not in initializers],
        outputs=[_tensor_info(v) for v in model.graph.output],
        metadata={p.key: p.value for p in model.metadata_props},
    )


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    from onnx import TensorProto

    tensor = value.type.tensor_type
    return TensorInfo(name=value.name, shape=[_dim(d) for d in tensor.shape.dim],
                      type=TensorProto.DataType.Name(tensor.elem_type))


def _dim(dim: onnx.TensorShapeProto.Dimension) -> int | str | None:
    """An int for a fixed size (PaddleOCR exports write -1 for 'any'), the name of a symbolic
    size, or None when the file leaves the size unstated."""
    if dim.HasField("dim_value"):
        return dim.dim_value
    if dim.HasField("dim_param"):
        return dim.dim_param
    return None
