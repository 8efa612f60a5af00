"""`docmill convert` (also `python -m converter`) and `docmill convert model`.

A one-shot job: fetch each Paddle model (sha256 recorded) -> unpack in a scratch folder ->
detect its format -> paddle2onnx -> optional input-shape fix -> onnxslim -> onnx full check ->
onnxruntime load -> parity against Paddle Inference; then the same build and publish code as
`docmill models import`. Every input is checked before the first conversion starts, and a
failing gate stops the job before anything is published.

Progress and the final table go to stderr; stdout carries only the result (the set's folder,
or for `convert model` the summary), so scripts can capture it.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path

import numpy as np

from docmill.errors import EXIT_FAILED, UsageError
from docmill.modelset import STAGES, ModelSet, ModelSetError, SourceProvenance
from docmill.settings import Settings
from docmill.storage import StorageError

from converter.convert_presets import CONVERT_PRESETS, ConvertRecipe
from converter.modelset_build import Source, build_model_set, load_dictionary, stderr_progress
from converter.limits import DEFAULT_REAL_TOLERANCE, MAX_OPSET, MIN_OPSET
from converter.models_cli import check_publish, publish_set, recipe_from_args
from converter.onnx_info import read_onnx_info
from converter.paddle2onnx_step import (ConversionFailed, OnnxFile, check_loads,
                                        dygraph_to_onnx, embed_dictionary, paddle_to_onnx, slim,
                                        written_opset)
from converter.paddle_model import (PaddleModel, Refused, check_dictionary_size, error_line, load_model,
                                    require_convert_stack)
from converter.parity import ParityReport, SamplePage, check_parity, real_inputs, sample_page
from converter.sources import SourceError, fetch, fetch_tree

CONVERTED_DIR = "converted"  # under cache_dir: apart from imported sets of the same name
TOOLS = ("paddlepaddle", "paddle2onnx")

InputShapes = dict[str, list[int]]


@dataclass(frozen=True)
class ConvertOptions:
    opset: int
    slim: bool
    tolerance: float
    real_tolerance: float
    input_shapes: dict[str, InputShapes]  # stage (or "model") -> input name -> dims


@dataclass(frozen=True)
class PreparedModel:
    """A fetched model that passed every check that can run before conversion."""

    stage: str
    source: str
    provenance: SourceProvenance
    model: PaddleModel


@dataclass(frozen=True)
class ConvertedModel:
    stage: str
    source: str
    onnx: OnnxFile
    parity: ParityReport
    seconds: float


# --- docmill convert ---------------------------------------------------------------------------

def cmd_convert(args: argparse.Namespace, settings: Settings) -> int:
    """Convert a preset or a custom set, gate it, build it and (with --publish) publish it."""
    recipe = recipe_from_args(args, CONVERT_PRESETS, ConvertRecipe)
    options = _options_from_args(args, set(STAGES))
    check_publish(None if args.dry_run else args.publish, settings)
    try:
        require_convert_stack()
        with tempfile.TemporaryDirectory(prefix="docmill-convert-") as scratch:
            result = _convert_set(recipe, options, settings, Path(scratch), args)
    except Refused as exc:
        raise UsageError(str(exc)) from exc
    except (SourceError, ConversionFailed, ModelSetError, StorageError) as exc:
        print(f"docmill: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(result)
    return 0


def _convert_set(recipe: ConvertRecipe, options: ConvertOptions, settings: Settings, scratch: Path,
                 args: argparse.Namespace) -> str:
    downloads = settings.cache_dir / "downloads"
    prepared = {stage: _prepare(recipe, stage, downloads, scratch, settings) for stage in STAGES}
    dictionary, dict_provenance = _dictionary(recipe, prepared["rec"].model, downloads, scratch, settings)
    check_dictionary_size(prepared["rec"].model, len(dictionary))
    stderr_progress(f"{recipe.name}: every input checked; converting")
    page = sample_page()
    converted = {stage: _convert_stage(item, options, scratch / stage, page,
                                       dictionary if stage == "rec" else None)
                 for stage, item in prepared.items()}
    print_table(list(converted.values()))
    out_root = scratch / "dry-run" if args.dry_run else settings.cache_dir / CONVERTED_DIR
    folder = build_model_set(
        recipe.name, *(converted[stage].onnx.path for stage in STAGES), dictionary,
        {**{stage: item.provenance for stage, item in prepared.items()}, "dict": dict_provenance},
        recipe.defaults, out_root,
        parity={stage: item.parity.as_manifest() for stage, item in converted.items()},
        tools=converter_versions(options.slim))
    int8_folder = _quantized(folder, out_root, scratch, settings, args) if args.quantize else None
    if args.dry_run:
        stderr_progress(f"{recipe.name}: dry run; version {folder.name} checked, nothing published")
        return f"{recipe.name}/{folder.name}"
    if args.publish:
        for built in (folder, int8_folder):
            if built is not None:
                publish_set(built, args.publish, settings)
    return "\n".join(str(f) for f in (folder, int8_folder) if f is not None)


def _quantized(folder: Path, out_root: Path, scratch: Path, settings: Settings,
               args: argparse.Namespace) -> Path:
    """The int8 copy, built and gated before anything is published; a failed gate stops
    the whole command, so a set that reads differently never ships."""
    from converter.quantize import GateFailed, gated_int8_set

    fp32 = ModelSet.load(folder)
    try:
        return gated_int8_set(fp32, settings, out_root, scratch / "int8",
                              extra_images=Path(args.gate_images) if args.gate_images else None,
                              max_cer=args.max_cer, progress=stderr_progress)
    except GateFailed as exc:
        raise ConversionFailed(str(exc)) from exc


def _prepare(recipe: ConvertRecipe, stage: str, downloads: Path, scratch: Path,
             settings: Settings) -> PreparedModel:
    source: Source = getattr(recipe, stage)
    stderr_progress(f"{recipe.name}: {stage}: fetching {source.uri}")
    try:
        fetched = fetch_tree(source.uri, downloads, scratch / "sources", source.sha256, settings)
    except SourceError as exc:
        raise _with_advice(exc, source, recipe) from exc
    stderr_progress(f"{recipe.name}: {stage}: sha256 {fetched.provenance.sha256} ({fetched.path})")
    model = load_model(fetched.path)
    stderr_progress(f"{recipe.name}: {stage}: {model.format} format, input "
                    f"{list(model.inputs[0].shape)}, output {list(model.outputs[0].shape)}")
    return PreparedModel(stage, source.uri, fetched.provenance, model)


def _with_advice(exc: SourceError, source: Source, recipe: ConvertRecipe) -> SourceError:
    """A preset's official host that cannot be reached gets the preset's own advice: which
    registry package holds the same weights."""
    if recipe.offline_advice and source.uri.startswith(("http://", "https://")) and "download failed" in str(exc):
        reason = str(exc).split(";", 1)[0]
        return SourceError(f"{reason}; {recipe.offline_advice}")
    return exc


def _dictionary(recipe: ConvertRecipe, rec: PaddleModel, downloads: Path, scratch: Path,
                settings: Settings) -> tuple[list[str], SourceProvenance | None]:
    """From --dict (a text file or an ONNX file's `character` metadata), else from the rec
    model's inference.yml; refuse when neither gives one."""
    if recipe.dictionary is not None:
        fetched = fetch(recipe.dictionary.uri, downloads, scratch / "sources", recipe.dictionary.sha256,
                        settings)
        try:
            return load_dictionary(fetched.path), fetched.provenance
        except (ModelSetError, UnicodeDecodeError) as exc:
            raise Refused(f"dictionary {recipe.dictionary.uri}: {exc}") from exc
    entries = rec.yml_dictionary()
    if entries is None:
        raise Refused(f"no dictionary: {rec.folder} has no inference.yml PostProcess.character_dict; "
                      "give --dict FILE (a text file, or an ONNX file with `character` metadata)")
    return entries, None


def _convert_stage(item: PreparedModel, options: ConvertOptions, scratch: Path, page: SamplePage,
                   dictionary: list[str] | None) -> ConvertedModel:
    started = time.monotonic()
    onnx_file = convert_paddle_model(item.model, item.stage, options, scratch, dictionary)
    stderr_progress(f"{item.stage}: parity against Paddle Inference")
    parity = gate_parity(item.model, onnx_file.path, item.stage, options,
                         real_inputs(item.stage, page))
    return ConvertedModel(item.stage, item.source, onnx_file, parity, time.monotonic() - started)


# --- steps shared by both commands -------------------------------------------------------------

def convert_paddle_model(model: PaddleModel, stage: str, options: ConvertOptions, scratch: Path,
                         dictionary: list[str] | None) -> OnnxFile:
    """paddle2onnx (with the input-shape fix), onnxslim, the dictionary, then both load gates."""
    scratch.mkdir(parents=True, exist_ok=True)
    stderr_progress(f"{stage}: paddle2onnx (opset {options.opset} or above)")
    raw = paddle_to_onnx(model, scratch / f"{stage}.onnx", options.opset, scratch / "paddle2onnx",
                         options.input_shapes.get(stage))
    return finish_onnx(raw, stage, options, scratch, dictionary)


def finish_onnx(raw: Path, stage: str, options: ConvertOptions, scratch: Path,
                dictionary: list[str] | None) -> OnnxFile:
    opset = written_opset(raw)
    stderr_progress(f"{stage}: wrote opset {opset}, {raw.stat().st_size} bytes")
    final = raw
    if options.slim:
        stderr_progress(f"{stage}: onnxslim")
        final = slim(raw, scratch / f"{stage}.slim.onnx")
    if dictionary is not None:
        embed_dictionary(final, dictionary)
    stderr_progress(f"{stage}: onnx.checker full check and onnxruntime load")
    check_loads(final)
    return OnnxFile(final, written_opset(final), raw.stat().st_size, final.stat().st_size)


def gate_parity(model: PaddleModel, onnx_path: Path, stage: str, options: ConvertOptions,
                real: list[tuple[str, np.ndarray]]) -> ParityReport:
    """Run parity on the shapes the ONNX file accepts; fail the job above the tolerance."""
    declared = _declared_shape(model, onnx_path)
    fitting = [(label, array) for label, array in real if _fits(array.shape, declared)]
    try:
        report = check_parity(model, onnx_path, stage, options.tolerance, fitting, options.real_tolerance,
                              declared)
    except Exception as exc:  # noqa: BLE001 - paddle and onnxruntime raise their own types
        raise ConversionFailed(f"{stage}: parity could not run on shapes {list(declared)} "
                               f"({error_line(exc)})") from exc
    failure = report.first_failure()
    if failure is not None:
        raise ConversionFailed(f"{stage}: parity failed on {failure.input} {list(failure.shape)}: max abs "
                               f"difference {failure.max_abs_diff:.3g} > tolerance {failure.tolerance:g}")
    stderr_progress(f"{stage}: parity max abs difference {report.max_abs_diff:.3g} "
                    f"over {len(report.cases)} inputs")
    return report


def _declared_shape(model: PaddleModel, onnx_path: Path) -> tuple[int, ...]:
    """The first input's shape with every size either side fixes (an --input-shape fix lives
    only in the ONNX file); -1 where both leave it dynamic."""
    onnx_dims = [dim if isinstance(dim, int) and dim > 0 else -1
                 for dim in read_onnx_info(onnx_path).inputs[0].shape]
    paddle_dims = model.inputs[0].shape
    if len(onnx_dims) != len(paddle_dims):
        return tuple(onnx_dims)
    return tuple(o if o > 0 else p for o, p in zip(onnx_dims, paddle_dims))


def _fits(shape: tuple[int, ...], declared: tuple[int, ...]) -> bool:
    return len(shape) == len(declared) and all(d < 0 or d == s for s, d in zip(shape, declared))


def converter_versions(slimmed: bool) -> dict[str, str]:
    """The tools that made the files, recorded in the manifest beside onnx and onnxruntime."""
    tools = {tool: installed_version(tool) for tool in TOOLS}
    return tools | ({"onnxslim": installed_version("onnxslim")} if slimmed else {})


def print_table(rows: list[ConvertedModel]) -> None:
    """model, source, opset, bytes before/after slim, parity max diff, seconds."""
    header = ["MODEL", "SOURCE", "OPSET", "BYTES", "SLIMMED", "PARITY", "SECONDS"]
    cells = [[r.stage, r.source, str(r.onnx.opset), str(r.onnx.bytes_converted), str(r.onnx.bytes_final),
              f"{r.parity.max_abs_diff:.2e}", f"{r.seconds:.1f}"] for r in rows]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    for row in [header, *cells]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), file=sys.stderr)


# --- options -----------------------------------------------------------------------------------

def _options_from_args(args: argparse.Namespace, stages: set[str]) -> ConvertOptions:
    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        raise UsageError(f"--opset {args.opset}: paddle2onnx writes opsets {MIN_OPSET} to {MAX_OPSET}")
    for flag in ("tolerance", "real_tolerance"):
        value = getattr(args, flag, None)
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise UsageError(f"--{flag.replace('_', '-')} must be a positive number")
    return ConvertOptions(args.opset, not args.no_slim, args.tolerance,
                          getattr(args, "real_tolerance", DEFAULT_REAL_TOLERANCE),
                          parse_input_shapes(args.input_shape, stages))


def parse_input_shapes(values: list[str], stages: set[str]) -> dict[str, InputShapes]:
    """`STAGE:NAME=[dims]` (or `NAME=[dims]` when there is one model) -> {stage: {name: dims}}."""
    shapes: dict[str, InputShapes] = {}
    for value in values:
        target, _, dims_text = value.partition("=")
        stage, _, name = target.rpartition(":") if len(stages) > 1 else ("model", "", target)
        if stage not in stages or not name:
            raise UsageError(f"--input-shape {value!r}: expected "
                             f"{'STAGE:' if len(stages) > 1 else ''}NAME=[dims], STAGE one of {sorted(stages)}")
        shapes.setdefault(stage, {})[name] = _parse_dims(dims_text, f"--input-shape {value!r}")
    return shapes


def _parse_dims(text: str, what: str, allow_none: bool = False) -> list:
    try:
        dims = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        dims = None
    valid = isinstance(dims, (list, tuple)) and dims and all(
        (d is None and allow_none) or (isinstance(d, int) and (d > 0 or d == -1)) for d in dims)
    if not valid:
        raise UsageError(f"{what}: dims must look like [1,3,48,320]"
                         f"{' (None for a dynamic size)' if allow_none else ' (-1 for a dynamic size)'}")
    return list(dims)


# --- docmill convert model ---------------------------------------------------------------------

def cmd_convert_model(args: argparse.Namespace, settings: Settings) -> int:
    """Convert any one Paddle inference model (or a dygraph model) with the same gates and
    print a summary: opset, inputs, outputs, parity."""
    _check_model_args(args)
    options = _options_from_args(args, {"model"})
    out = Path(args.out)
    try:
        require_convert_stack()
        with tempfile.TemporaryDirectory(prefix="docmill-convert-") as scratch:
            converted = _convert_one(args, options, Path(scratch))
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(converted.onnx.path, out.with_name(f".{out.name}.tmp"))
            os.replace(out.with_name(f".{out.name}.tmp"), out)
    except Refused as exc:
        raise UsageError(str(exc)) from exc
    except (ConversionFailed, OSError) as exc:
        print(f"docmill: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print_table([converted])
    print_summary(out, converted)
    return 0


def _check_model_args(args: argparse.Namespace) -> None:
    if bool(args.paddle) == bool(args.dygraph):
        raise UsageError("give exactly one of --paddle DIR and --dygraph MODULE:FACTORY")
    if args.dygraph and (":" not in args.dygraph or not args.input_spec):
        raise UsageError("--dygraph needs MODULE:FACTORY and --input-spec, e.g. \"[None,1,28,28]\"")
    if args.input_spec and not args.dygraph:
        raise UsageError("--input-spec goes with --dygraph")
    if not args.out.endswith(".onnx"):
        raise UsageError(f"--out {args.out}: name the .onnx file to write")


def _convert_one(args: argparse.Namespace, options: ConvertOptions, scratch: Path) -> ConvertedModel:
    started = time.monotonic()
    if args.dygraph:
        spec = _parse_dims(args.input_spec, "--input-spec", allow_none=True)
        stderr_progress(f"model: exporting {args.dygraph} with paddle.onnx.export")
        raw = scratch / "model.onnx"
        model = load_model(dygraph_to_onnx(args.dygraph, spec, raw, options.opset, scratch / "export"))
        source = args.dygraph
        onnx_file = finish_onnx(raw, "model", options, scratch, model.yml_dictionary())
    else:
        model = load_model(Path(args.paddle))
        source = args.paddle
        stderr_progress(f"model: {model.format} format, input {list(model.inputs[0].shape)}")
        onnx_file = convert_paddle_model(model, "model", options, scratch, model.yml_dictionary())
    parity = gate_parity(model, onnx_file.path, "model", options, [])
    return ConvertedModel("model", source, onnx_file, parity, time.monotonic() - started)


def print_summary(out: Path, converted: ConvertedModel) -> None:
    info = read_onnx_info(out)
    print(f"wrote {out}: opset {info.opset}, {out.stat().st_size} bytes")
    for kind, tensors in (("input", info.inputs), ("output", info.outputs)):
        for tensor in tensors:
            print(f"  {kind} {tensor.name} {tensor.type} {tensor.shape}")
    for case in converted.parity.cases:
        print(f"  parity {case.input} {list(case.shape)}: max abs difference {case.max_abs_diff:.2e} "
              f"(tolerance {case.tolerance:g})")
