"""Recognised lines against known lines, where reading order counts: lines that come out in
the wrong order (a two-column page read row by row, columns interleaved) are a wrong reading,
so every number compares sequences, never sets.

- exact_lines: expected lines reproduced verbatim (whitespace normalised) *in order*: the
  longest common subsequence of the two line sequences. Each found line matches at most one
  expected line, and a line found out of order does not count.
- char_edit_distance: Levenshtein distance between the two texts in reading order, lines
  joined by a newline, all other whitespace removed (as ../shared/bench/score.py's
  cer_nospace: spacing is not scored, order is).
- sequence_score: 1 - char_edit_distance / the longer text's length, in [0, 1]; 1 is the
  same text in the same order. Unlike exact_lines it gives partial credit to a line with one
  wrong character; like it, it falls when lines are missing, extra or out of order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TRUTH_FILE = "truth.json"


def edit_distance(a: str, b: str) -> int:
    """Unit-cost Levenshtein distance, one DP row at a time."""
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def in_order_matches(expected: Sequence[str], found: Sequence[str]) -> int:
    """Longest common subsequence length: matches that keep both sides' order, each line
    used at most once."""
    row = [0] * (len(found) + 1)
    for line in expected:
        diag = 0
        for j, other in enumerate(found, 1):
            diag, row[j] = row[j], diag + 1 if line == other else max(row[j], row[j - 1])
    return row[-1]


def _normalise(line: str) -> str:
    return " ".join(line.split())


def _page_text(lines: Sequence[str]) -> str:
    return "\n".join("".join(line.split()) for line in lines)


def compare_lines(expected: list[str], found: list[str]) -> dict[str, Any]:
    """{expected_lines, found_lines, exact_lines, char_edit_distance, sequence_score}; see the
    module docstring for what each counts."""
    want, got = _page_text(expected), _page_text(found)
    distance = edit_distance(want, got)
    return {"expected_lines": len(expected), "found_lines": len(found),
            "exact_lines": in_order_matches([_normalise(t) for t in expected],
                                            [_normalise(t) for t in found]),
            "char_edit_distance": distance,
            "sequence_score": round(1 - distance / max(len(want), len(got), 1), 4)}


def result_lines(doc: dict[str, Any]) -> tuple[list[str], str | None]:
    """A docmill.result/v1 document's line texts in reading order, or no lines and why."""
    if doc.get("error"):
        return [], f"{doc['error'].get('code')}: {doc['error'].get('message')}"
    return [line["text"] for line in doc.get("lines", [])], None


def check_against_truth(out_dir: Path, results_dir: Path) -> list[dict[str, Any]]:
    """Per sample page: {image, **compare_lines, error}, reading `results_dir/<file>.json`
    (docmill.result/v1) against `out_dir/truth.json`. A missing or failed result counts as no
    lines found, with `error` saying why."""
    expected_by_image = json.loads((Path(out_dir) / TRUTH_FILE).read_text("utf-8"))
    report = []
    for image, expected in expected_by_image.items():
        found, error = _found_lines(Path(results_dir) / f"{image}.json")
        report.append({"image": image, **compare_lines(expected, found), "error": error})
    return report


def _found_lines(path: Path) -> tuple[list[str], str | None]:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        return [], f"{path.name}: {exc.__class__.__name__}"
    return result_lines(doc)
