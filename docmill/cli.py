"""The `docmill` entry point: builds the parser from each package's own commands, reads the
settings once, and turns a UsageError or a bad command line into one line and exit 2.
Nothing else imports it."""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

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


class OneLineParser(argparse.ArgumentParser):
    """argparse, answering a bad command line as docmill answers every usage error: one line
    saying what to do and exit 2, instead of argparse's usage block above its message. The
    line names the option nearest to a misspelt one, and where the rest is (`--help`).
    Subcommands' parsers are of this class too (argparse makes them so)."""

    def add_subparsers(self, **kwargs: Any) -> Any:
        self._commands = super().add_subparsers(**kwargs)
        return self._commands

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        """argparse's, with arguments no parser knew reported by the command that was given
        them, so the nearest option is looked for among its own."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            given = self._given(parsed)
            given.error(f"unrecognized arguments: {' '.join(extras)}{given._nearest(extras)}")
        return parsed

    def _given(self, parsed: argparse.Namespace) -> OneLineParser:
        """The innermost command's parser that `parsed` went through (`docmill models fp16`'s)."""
        commands = getattr(self, "_commands", None)
        chosen = commands.choices.get(getattr(parsed, commands.dest, None)) if commands else None
        return chosen._given(parsed) if isinstance(chosen, OneLineParser) else self

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message}; `{self.prog} --help` lists what it takes", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)

    def _nearest(self, extras: list[str]) -> str:
        """' (did you mean --X?)' for this command's option nearest to the first unknown
        option in `extras`, else ''. Only unknown options get a guess: for a bad choice
        argparse lists the choices, and the nearest by spelling can mislead (`--device gpu`
        is nearest to cpu)."""
        unknown = next((word.split("=")[0] for word in extras if word.startswith("-")), "")
        known = [option for action in self._actions for option in action.option_strings]
        close = difflib.get_close_matches(unknown, known, n=1) if unknown else []
        return f" (did you mean {close[0]}?)" if close else ""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="docmill", description=DESCRIPTION, epilog=EPILOG)
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
