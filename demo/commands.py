"""`docmill samples` and `docmill report`: the demo pages with known text, and the table that
checks a run's results against them."""

from __future__ import annotations

from docmill.commandline import Subparsers, lazy


def register(sub: Subparsers) -> None:
    """Add the demo subcommands to `docmill`."""
    samples = sub.add_parser("samples", help="write deterministic demo pages with known text")
    samples.add_argument("out", help="folder to write the pages and truth.json into")
    samples.set_defaults(handler=lazy("demo.pages", "cmd_samples"))

    report = sub.add_parser("report", help="summarise a folder of results as a table")
    report.add_argument("results", help="the --out folder of a run")
    report.add_argument("--truth", help="JSON {image name: [expected lines]} to score each image's "
                        "lines against, in reading order")
    report.set_defaults(handler=lazy("demo.report", "cmd_report"))
