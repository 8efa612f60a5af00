"""paddle2onnx, the optional input-shape fix, onnxslim and the two load gates.

paddle2onnx runs in a child process started in a scratch folder: it leaves temporary files in
its working directory, keeps paddle's global static-graph state, swallows its own errors (it
logs them and writes no file) and can abort the whole process from C++. A child confines all
of that; the parent only reads the file it wrote.

Legacy models (`inference.pdmodel`) are first translated to PIR with paddle's own translator.
Then, in every program, each `*_interp` op's `scale` attribute is retyped from float64 to
float32: paddle2onnx 2.0.1 expects float32 there ("the 0th elementwise MUST be
ir::FloatAttribute"), as the official PP-OCRv5 PIR files have it. Without it no legacy det
model (FPN upsampling) converts, nor a model paddle 3.3.1 itself saves with nn.Upsample.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort

from converter.paddle_model import MODEL_PREFIX, PARAMS_FILE, PIR_FILE, PaddleModel, error_line, quiet_paddle

CHILD_TIMEOUT_S = 600
_CHILD_ERROR_MARK = "converter-error: "
_P2O_FAILURE = "Failed to convert PaddlePaddle model"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ConversionFailed(Exception):
    """A step that ran and failed; one line, and nothing is published."""


@dataclass(frozen=True)
class OnnxFile:
    """A converted model and what the final table reports about it."""

    path: Path
    opset: int
    bytes_converted: int  # as paddle2onnx (and the shape fix) wrote it
    bytes_final: int  # after onnxslim, or the same when slimming is off


def child_env(scratch: Path) -> dict[str, str]:
    """Quiet paddle, keep its temp files in the scratch folder, never let polygraphy pip-install
    onnx_graphsurgeon at run time, and keep the caller's import path (for --dygraph modules)."""
    path = os.pathsep.join(p for p in [os.getcwd(), os.environ.get("PYTHONPATH", "")] if p)
    return {**os.environ, "TMPDIR": str(scratch), "GLOG_minloglevel": "3",
            "POLYGRAPHY_AUTOINSTALL_DEPS": "0", "PYTHONPATH": path, "FLAGS_call_stack_level": "0"}


def run_child(job: dict[str, Any], scratch: Path) -> None:
    """Run one job of this module's `main` in a child process inside `scratch`."""
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([sys.executable, "-m", "converter.paddle2onnx_step", json.dumps(job)],
                              cwd=scratch, env=child_env(scratch), capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ConversionFailed(f"{job['kind']} did not finish within {CHILD_TIMEOUT_S}s") from exc
    if done.returncode != 0:
        raise ConversionFailed(f"{job['kind']} failed: {_child_error(done.stdout + done.stderr, done.returncode)}")


def _child_error(output: str, returncode: int) -> str:
    """paddle2onnx's own error line says most (it logs and returns), then the child's marked
    line, then whatever came last (a crash)."""
    lines = [_ANSI.sub("", line).strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if _P2O_FAILURE in line:
            return line[line.index(_P2O_FAILURE):]
    marked = [line[len(_CHILD_ERROR_MARK):] for line in lines if line.startswith(_CHILD_ERROR_MARK)]
    if marked:
        return marked[-1]
    return lines[-1] if lines else f"exit status {returncode}"


def paddle_to_onnx(model: PaddleModel, out: Path, opset: int, scratch: Path,
                   input_shapes: dict[str, list[int]] | None = None) -> Path:
    """Convert with dynamic batch/height/width as the program declares them (paddle writes -1
    for those and paddle2onnx keeps them symbolic); with `input_shapes`, fix those inputs the
    way the seed does with `paddle2onnx.optimize --input_shape_dict`."""
    run_child({"kind": "paddle2onnx", "format": model.format, "prefix": str(model.prefix),
               "out": str(out), "opset": opset, "input_shapes": input_shapes or {}}, scratch)
    return out


def dygraph_to_onnx(factory: str, input_spec: list[int | None], out: Path, opset: int,
                    scratch: Path) -> Path:
    """Export a dygraph model with paddle's own ONNX export (paddle.onnx.export), and save it
    as a Paddle inference model in `scratch/paddle/` as well, which parity then runs."""
    run_child({"kind": "dygraph export", "factory": factory, "input_spec": input_spec,
               "out": str(out), "opset": opset, "paddle_dir": str(scratch / "paddle")}, scratch)
    return scratch / "paddle"


def slim(src: Path, dst: Path) -> Path:
    """onnxslim folds constants and drops the glue paddle2onnx emits; measured on PP-OCR it
    keeps outputs within 1e-6, and parity checks the slimmed file anyway."""
    import onnxslim

    try:
        onnx.save(onnxslim.slim(str(src)), str(dst))
    except Exception as exc:  # noqa: BLE001 - onnxslim surfaces onnx and graph errors alike
        raise ConversionFailed(f"{src.name}: onnxslim failed ({error_line(exc)}); "
                               "--no-slim skips it, the load gates still run") from exc
    return dst


def embed_dictionary(path: Path, entries: list[str]) -> None:
    """PaddleOCR's ONNX exports carry the rec dictionary as metadata `character`, one entry
    per line; readers (and docmill models import) take it from there."""
    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != "character"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key="character", value="\n".join(entries))
    onnx.save(model, str(path))


def check_loads(path: Path) -> ort.InferenceSession:
    """The two gates a file must pass before anyone runs it: onnx's full check (with shape
    inference) and an onnxruntime session. Both are needed: paddle2onnx 2.1.0 writes rec
    models that pass the default checker yet onnxruntime refuses to load."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises checker, shape-inference and IO errors
        raise ConversionFailed(f"{path.name}: fails onnx.checker full check ({error_line(exc)})") from exc
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ConversionFailed(f"{path.name}: onnxruntime cannot load it ({error_line(exc)})") from exc


def written_opset(path: Path) -> int:
    """The opset the file declares: paddle2onnx raises the requested one where an op needs it
    (hard_swish -> 14), so the request is only a minimum."""
    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))




# --- the child side ----------------------------------------------------------------------------

def _export_paddle(job: dict[str, Any]) -> None:
    import paddle2onnx

    prefix = Path(job["prefix"])
    params = prefix.with_name(PARAMS_FILE)
    pir_folder = Path.cwd() / "pir"
    if job["format"] == "legacy":
        model_file, params = _legacy_to_pir(prefix, pir_folder), pir_folder / PARAMS_FILE
    else:
        model_file = _retyped_copy(prefix.with_suffix(".json"), pir_folder)
    out = Path(job["out"])
    paddle2onnx.export(str(model_file), str(params), str(out), opset_version=job["opset"],
                       auto_upgrade_opset=True, enable_onnx_checker=True)
    if not out.is_file():
        raise ConversionFailed("paddle2onnx wrote no file (its log above says why)")
    if job["input_shapes"]:
        _fix_input_shapes(out, job["input_shapes"])


def _legacy_to_pir(prefix: Path, folder: Path) -> Path:
    """Translate a legacy program to PIR (paddle's translator) and save it with its
    parameters into `folder`; return the retyped json (see the module docstring)."""
    import paddle
    from paddle2onnx.convert import load_parameter, save_program

    paddle.enable_static()
    executor = paddle.static.Executor(paddle.CPUPlace())
    with paddle.pir_utils.OldIrGuard():
        program, _, _ = paddle.static.load_inference_model(str(prefix), executor)
    pir_program = paddle.pir.translate_to_pir(program.desc)
    load_parameter(pir_program)
    save_program(pir_program, str(folder / MODEL_PREFIX))
    return _retyped_copy(folder / PIR_FILE, folder)


def _retyped_copy(json_file: Path, folder: Path) -> Path:
    """`folder/inference.json` with the interp scales retyped. paddle 3's own jit.save writes
    float64 scales too (nn.Upsample), so PIR files need this as much as translated ones."""
    graph = json.loads(json_file.read_text("utf-8"))
    retype_interp_scale(graph)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / PIR_FILE
    target.write_text(json.dumps(graph), "utf-8")
    return target


def retype_interp_scale(node: Any) -> int:
    """Retype every float64 `scale` entry of `*_interp` ops in a PIR json graph to float32;
    return how many entries changed."""
    changed = 0
    if isinstance(node, dict):
        if str(node.get("#", "")).endswith("_interp"):
            for attr in node.get("A", []):
                if attr.get("N") == "scale":
                    for entry in attr["AT"].get("D", []):
                        if entry.get("#") == "0.a_f64":
                            entry["#"] = "0.a_f32"
                            changed += 1
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return 0
    return changed + sum(retype_interp_scale(child) for child in children)


def _fix_input_shapes(path: Path, shapes: dict[str, list[int]]) -> None:
    import paddle2onnx.paddle2onnx_cpp2py_export as c_p2o

    c_p2o.optimize(str(path), str(path), shapes)


def _export_dygraph(job: dict[str, Any]) -> None:
    """Build the layer from MODULE:FACTORY, save it as an inference model (for parity) and
    export it with paddle.onnx.export."""
    import importlib

    import paddle

    module_name, _, factory_name = job["factory"].partition(":")
    layer = getattr(importlib.import_module(module_name), factory_name)()
    layer.eval()
    spec = [paddle.static.InputSpec(shape=job["input_spec"], dtype="float32", name="x")]
    paddle.jit.save(layer, str(Path(job["paddle_dir"]) / MODEL_PREFIX), input_spec=spec)
    out = Path(job["out"])
    paddle.onnx.export(layer, str(out.with_suffix("")), input_spec=spec, opset_version=job["opset"])
    if not out.is_file():
        raise ConversionFailed("paddle.onnx.export wrote no file (its log above says why)")


def main(argv: list[str]) -> int:
    """Child entry point: one JSON job; a failure ends in one marked line for the parent."""
    job = json.loads(argv[0])
    try:
        with quiet_paddle():
            if job["kind"] == "paddle2onnx":
                _export_paddle(job)
            else:
                _export_dygraph(job)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        print(f"{_CHILD_ERROR_MARK}{error_line(exc)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
