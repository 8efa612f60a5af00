"""The `docmill` entry point: builds the parser from each package's own commands, reads the
settings once, and turns a UsageError into one line and exit 2. Nothing else imports it."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from pydantic import ValidationError

from docmill import __version__
from docmill.errors import EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from docmill.settings import Settings, describe_settings_error, misspelt_variables

DESCRIPTION = ("docmill: streaming batch OCR with PaddleOCR models on ONNXRuntime. "
               "Run it in-process (`docmill run`), or as a producer and Celery workers over "
               "Redis and S3-compatible storage (`docmill produce`, `docmill worker`).")
EPILOG = "Start with: docmill run IMAGES... --out DIR. Settings: DOCMILL_* variables (docmill config)."
# Each package owns its subcommands; the order here is the order of `docmill --help`.
COMMAND_MODULES = ("worker.commands", "producer.commands", "docmill.commands", "converter.commands",
                   "demo.commands")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docmill", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"docmill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


# numpy's OpenBLAS starts a thread per core when numpy is first imported, and each spins a
# while: 0.15 s of CPU at every start on 2 cores, more on a GPU host's many. docmill's only
# BLAS calls are on 3 x 3 matrices, so it takes one thread, unless the operator says otherwise.
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "1")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault(*BLAS_THREADS)  # before the commands' modules import numpy
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"docmill: invalid setting {describe_settings_error(exc)}", file=sys.stderr)
        return EXIT_USAGE
    for line in misspelt_variables(os.environ):
        print(f"docmill: {line}", file=sys.stderr)
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        return args.handler(args, settings)
    except UsageError as exc:
        print(f"docmill: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
