"""`docmill report OUT`: a table of the results under a folder (image, lines, first line, ms),
and with --truth, how many expected lines each image reproduced exactly."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from docmill.settings import Settings


def load_results(root: Path) -> dict[str, dict]:
    """Results keyed by image path relative to `root` (the `.json` suffix removed)."""
    out = {}
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("_docmill/"):
            continue
        doc = json.loads(path.read_text("utf-8"))
        if doc.get("schema") == "docmill.result/v1":
            out[rel[: -len(".json")]] = doc
    return out


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.table import Table

    results = load_results(Path(args.results))
    truth = json.loads(Path(args.truth).read_text("utf-8")) if args.truth else {}
    table = Table("image", "lines", "first line", "ms", *(["exact / expected"] if truth else []))
    for image, doc in results.items():
        texts = [line["text"] for line in doc["lines"]]
        first = doc["error"]["code"] if doc["error"] else (texts[0] if texts else "")
        row = [image, str(len(texts)), first[:48], f"{doc['timings_ms']['total']:.0f}"]
        expected = truth.get(Path(image).name)
        if truth:
            row.append(f"{sum(t in texts for t in expected)} / {len(expected)}" if expected else "")
        table.add_row(*row)
    Console().print(table)
    return 0
