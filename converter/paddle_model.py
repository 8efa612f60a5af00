"""A Paddle inference model on local disk: which format it is in, what its inference.yml says,
and the checks that refuse it before any conversion work starts.

Two formats exist. Legacy (paddle < 3): `inference.pdmodel` (a protobuf ProgramDesc) and
`inference.pdiparams`. PIR (paddle >= 3): `inference.json` and `inference.pdiparams`, usually
with an `inference.yml` that names the pre- and post-processing. Both are read with paddle
itself, because loading the program with its parameters is the only check that catches a
truncated or mismatched parameter file.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

MODEL_PREFIX = "inference"
LEGACY_FILE = f"{MODEL_PREFIX}.pdmodel"
PIR_FILE = f"{MODEL_PREFIX}.json"
PARAMS_FILE = f"{MODEL_PREFIX}.pdiparams"
YML_FILE = f"{MODEL_PREFIX}.yml"
INSTALL_ADVICE = "pip install 'docmill[convert]'"
CONVERT_STACK = ("paddle", "paddle2onnx", "onnxslim", "yaml")

# PaddleOCR's seed documents list these recognisers as not convertible to ONNX (attention
# decoders with loops paddle2onnx cannot express). inference.yml names them through the
# post-processing class it exports, or (training configs) through Architecture.algorithm.
UNCONVERTIBLE_DECODERS = {"NRTRLabelDecode": "NRTR", "SARLabelDecode": "SAR",
                          "AttnLabelDecode": "RARE", "SRNLabelDecode": "SRN"}
UNCONVERTIBLE_ALGORITHMS = frozenset(UNCONVERTIBLE_DECODERS.values())

Format = Literal["legacy", "pir"]
_PADDLE_ERROR = re.compile(r"\((InvalidArgument|Unimplemented|NotFound|PreconditionNotMet|OutOfRange|"
                           r"Unavailable|Fatal|External|PermissionDenied|ResourceExhausted)\) ")


class Refused(Exception):
    """An input the converter will not start on; one line saying why and what to do."""


@dataclass(frozen=True)
class TensorShape:
    name: str
    shape: tuple[int, ...]  # -1 for a dynamic dimension, as paddle writes it


@dataclass(frozen=True)
class PaddleModel:
    """A checked Paddle inference model folder."""

    folder: Path
    format: Format
    yml: dict[str, Any] | None
    inputs: tuple[TensorShape, ...]
    outputs: tuple[TensorShape, ...]

    @property
    def model_file(self) -> Path:
        return self.folder / (LEGACY_FILE if self.format == "legacy" else PIR_FILE)

    @property
    def params_file(self) -> Path:
        return self.folder / PARAMS_FILE

    @property
    def prefix(self) -> Path:
        return self.folder / MODEL_PREFIX

    def yml_dictionary(self) -> list[str] | None:
        """`PostProcess.character_dict` of inference.yml, when it carries one."""
        entries = ((self.yml or {}).get("PostProcess") or {}).get("character_dict")
        if entries is None:
            return None
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise Refused(f"{self.folder / YML_FILE}: PostProcess.character_dict is not a list of text entries")
        return entries


def require_convert_stack() -> None:
    """The Paddle stack is an optional extra (paddlepaddle alone is ~720 MB installed), so
    say how to get it instead of failing on an import deep inside a step."""
    for module in CONVERT_STACK:
        try:
            with quiet_paddle():
                importlib.import_module(module)
        except ImportError as exc:
            raise Refused(f"the converter needs {module}, which is not installed ({exc}); "
                          f"run: {INSTALL_ADVICE}") from exc


@contextlib.contextmanager
def quiet_paddle() -> Iterator[None]:
    """paddle writes glog lines and import-time warnings (ccache, ...) to stderr; the
    converter's stderr is its progress report, so keep them out of it."""
    os.environ.setdefault("GLOG_minloglevel", "3")
    os.environ.setdefault("FLAGS_call_stack_level", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def error_line(exc: BaseException) -> str:
    """One line for an exception. Paddle's messages open with a framework banner ("In user
    code:", a C++ stack), so prefer its `(ErrorType) message` line when there is one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    tagged = [line for line in lines if _PADDLE_ERROR.search(line)]
    return (tagged or lines or [exc.__class__.__name__])[0]


def import_paddle() -> ModuleType:
    with quiet_paddle():
        import paddle
    return paddle


def detect_format(folder: Path) -> Format:
    """Which of the two formats `folder` holds; refuse a folder holding neither or a part."""
    if not folder.is_dir():
        raise Refused(f"{folder}: not a folder holding a Paddle inference model")
    has_legacy, has_pir = (folder / LEGACY_FILE).is_file(), (folder / PIR_FILE).is_file()
    if has_legacy == has_pir:
        found = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        what = "both" if has_legacy else "neither"
        raise Refused(f"{folder}: holds {what} of {LEGACY_FILE} and {PIR_FILE} (found: {found})")
    if not (folder / PARAMS_FILE).is_file() or (folder / PARAMS_FILE).stat().st_size == 0:
        raise Refused(f"{folder}: {PARAMS_FILE} is missing or empty; copy the whole inference model folder")
    return "legacy" if has_legacy else "pir"


def read_yml(folder: Path) -> dict[str, Any] | None:
    """inference.yml as a dict, or None when absent (legacy exports have none)."""
    import yaml

    path = folder / YML_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise Refused(f"{path}: not readable YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise Refused(f"{path}: expected a mapping at the top level")
    return data


def refuse_unconvertible(yml: dict[str, Any] | None, folder: Path) -> None:
    """Refuse NRTR, SAR, RARE and SRN recognisers, as named by inference.yml. Only the
    post-processing and the architecture count: the PP-OCRv5 rec yml mentions NRTR in its
    training-time label encoder although the exported model is plain CTC."""
    if yml is None:
        return
    decoder = str((yml.get("PostProcess") or {}).get("name", ""))
    algorithm = str((yml.get("Architecture") or {}).get("algorithm", ""))
    name = UNCONVERTIBLE_DECODERS.get(decoder) or (algorithm if algorithm in UNCONVERTIBLE_ALGORITHMS else None)
    if name:
        raise Refused(f"{folder}: a {name} recogniser (inference.yml); PaddleOCR documents {name} "
                      "as not convertible to ONNX; use a CTC recogniser (e.g. PP-OCRv4/v5 rec)")


def load_model(folder: Path) -> PaddleModel:
    """Detect, read inference.yml, refuse unconvertible architectures, then load program and
    parameters with paddle to learn the input and output shapes (and to refuse corrupt files)."""
    folder = Path(folder).resolve()  # paddle2onnx runs in another working directory
    model_format = detect_format(folder)
    yml = read_yml(folder)
    refuse_unconvertible(yml, folder)
    inputs, outputs = _program_shapes(folder / MODEL_PREFIX, model_format)
    return PaddleModel(folder, model_format, yml, inputs, outputs)


def _program_shapes(prefix: Path, model_format: Format) -> tuple[tuple[TensorShape, ...], tuple[TensorShape, ...]]:
    paddle = import_paddle()
    paddle.enable_static()
    executor = paddle.static.Executor(paddle.CPUPlace())
    try:
        with paddle.static.scope_guard(paddle.static.Scope()):
            if model_format == "legacy":
                with paddle.pir_utils.OldIrGuard():
                    return _legacy_shapes(paddle.static.load_inference_model(str(prefix), executor))
            return _pir_shapes(paddle.static.load_inference_model(str(prefix), executor))
    except Exception as exc:  # noqa: BLE001 - paddle raises many types for a bad file
        raise Refused(f"{prefix.parent}: paddle cannot load this model ({error_line(exc)}); "
                      "the files are corrupt, truncated or do not belong together") from exc
    finally:
        paddle.disable_static()


def _legacy_shapes(loaded: list[Any]) -> tuple[tuple[TensorShape, ...], tuple[TensorShape, ...]]:
    program, feed_names, fetch_vars = loaded
    block = program.global_block()
    inputs = tuple(TensorShape(name, tuple(block.var(name).shape)) for name in feed_names)
    return inputs, tuple(TensorShape(v.name, tuple(v.shape)) for v in fetch_vars)


def _pir_shapes(loaded: list[Any]) -> tuple[tuple[TensorShape, ...], tuple[TensorShape, ...]]:
    program, feed_names, fetch_values = loaded
    data_ops = {op.attrs()["name"]: op.attrs()["shape"] for op in program.global_block().ops
                if op.name() == "pd_op.data"}
    inputs = tuple(TensorShape(name, tuple(data_ops[name])) for name in feed_names)
    outputs = tuple(TensorShape(f"output_{i}", tuple(v.shape)) for i, v in enumerate(fetch_values))
    return inputs, outputs


def rec_classes(model: PaddleModel) -> int | None:
    """The rec model's class count (last output dimension), when the program states it."""
    last = model.outputs[0].shape[-1] if model.outputs and model.outputs[0].shape else -1
    return last if last > 0 else None


def check_dictionary_size(model: PaddleModel, entries: int) -> None:
    """CTC rec models output dictionary + 2 classes (blank first, space last); a dictionary
    off by one decodes every character wrong without any error, so refuse it up front."""
    classes = rec_classes(model)
    if classes is not None and entries + 2 != classes:
        raise Refused(f"the dictionary has {entries} entries but the rec model {model.folder} outputs "
                      f"{classes} classes (expected {entries} + 2: blank first, space last); "
                      "use the dictionary this rec model was trained with")
