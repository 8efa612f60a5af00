"""How a package adds its subcommands to `docmill`: a `register(sub)` function per package
(`<package>/commands.py`) that adds argparse parsers whose handlers load lazily.

Registering must stay cheap: it imports argparse and this module only, so `docmill --help`
never loads ONNXRuntime, Celery or Paddle.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Callable

from docmill.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]
Subparsers = argparse._SubParsersAction


def lazy(module: str, func: str) -> Handler:
    """A handler that imports `module` only when its command runs."""

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        return getattr(importlib.import_module(module), func)(args, settings)

    return handler
