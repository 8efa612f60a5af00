"""The contracts package's own subcommands: `docmill config` and `docmill status`."""

from __future__ import annotations

from docmill.commandline import Subparsers, lazy


def register(sub: Subparsers) -> None:
    p = sub.add_parser("status", help="show a job's counts, images/s and ETA",
                       description="A job's state from Redis: totals, failures by code, images/s, ETA.")
    p.add_argument("job", help="the job id `docmill produce` printed")
    p.add_argument("--watch", action="store_true", help="refresh until the job is finished")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes with --watch (default 2)")
    p.set_defaults(handler=lazy("docmill.status", "cmd_status"))
    c = sub.add_parser("config", help="print the effective settings (secrets masked)",
                       description="Every setting as it takes effect, engine options included.")
    c.set_defaults(handler=lazy("docmill.config_view", "cmd_config"))
