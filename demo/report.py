"""`docmill report OUT`: a table of the results under a folder (image, lines, first line, ms),
and with --truth, how well each image reproduced its expected lines *in reading order*
(demo.scoring: exact lines in order / expected, and the order-aware sequence score), so a
page whose columns come out interleaved no longer looks perfect."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from demo.scoring import compare_lines, result_lines
from docmill.errors import UsageError
from docmill.settings import Settings

RESULT_SCHEMA = "docmill.result/v1"


def load_results(root: Path) -> dict[str, dict]:
    """Results keyed by image path relative to `root` (the `.json` suffix removed); other
    JSON files (truth.json, the run's own _docmill/ records) are not results, but a file that
    is not JSON at all is reported rather than skipped, as it may be a truncated result."""
    out = {}
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("_docmill/"):
            continue
        try:
            doc = json.loads(path.read_text("utf-8"))
        except ValueError as exc:
            raise UsageError(f"report: {path} is not valid JSON") from exc
        if isinstance(doc, dict) and doc.get("schema") == RESULT_SCHEMA:
            out[rel[: -len(".json")]] = doc
    return out


def _load_truth(path: str | None) -> dict[str, list[str]]:
    """--truth as {image name: [expected lines]}; a bad file is a usage error, not a traceback."""
    if not path:
        return {}
    try:
        truth = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"report: cannot read --truth {path}: {exc.__class__.__name__}") from exc
    if not isinstance(truth, dict):
        raise UsageError(f"report: --truth {path} is not a JSON object {{image name: [lines]}}")
    return truth


def _row(image: str, doc: dict, truth: dict[str, list[str]]) -> list[str]:
    found, error = result_lines(doc)
    first = doc["error"]["code"] if error else (found[0] if found else "")
    row = [image, str(len(found)), first[:48], f"{doc['timings_ms']['total']:.0f}"]
    if truth:
        expected = truth.get(Path(image).name)
        if expected is None:
            return row + ["", ""]
        score = compare_lines(expected, found)
        row += [f"{score['exact_lines']} / {len(expected)}", f"{score['sequence_score']:.3f}"]
    return row


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.table import Table

    root = Path(args.results)
    if not root.is_dir():
        raise UsageError(f"report: no such folder: {root}")
    truth = _load_truth(args.truth)
    results = load_results(root)
    if not results:
        raise UsageError(f"report: no {RESULT_SCHEMA} results under {root}")
    scored = ["exact in order / expected", "sequence score"] if truth else []
    table = Table("image", "lines", "first line", "ms", *scored)
    for image, doc in results.items():
        table.add_row(*_row(image, doc, truth))
    Console().print(table)
    return 0
