"""What a command tells its caller when it stops: exit codes and the one-line usage error.

A contract every package's commands share, kept apart from the CLI module so that nothing
but the entry point imports `docmill.cli`.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the work ran and some of it failed (e.g. --fail-on-error)
EXIT_USAGE = 2  # a bad flag, input or setting: one line, no work done
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad flag or input: printed as one line (`docmill: ...`), exit code 2, before any work."""
