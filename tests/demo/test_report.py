"""`docmill report`: scores each image's lines in reading order, and a bad folder or truth
file is one line and exit 2 (a UsageError), never an empty table with exit 0."""

from __future__ import annotations

import argparse
import json
from itertools import chain, zip_longest
from pathlib import Path

import pytest

from demo.pages import truth
from demo.report import cmd_report
from docmill.errors import UsageError


def _write_result(folder: Path, image: str, lines: list[str]) -> None:
    doc = {"schema": "docmill.result/v1", "error": None, "timings_ms": {"total": 12.0},
           "lines": [{"text": t, "score": 0.9, "box": [[0, 0], [9, 0], [9, 9], [0, 9]]} for t in lines]}
    (folder / f"{image}.json").write_text(json.dumps(doc), "utf-8")


def _report(results: Path, truth_path: Path | None, capsys, monkeypatch) -> list[list[str]]:
    """The printed table's data rows (the header is drawn with heavy "┃"), split into cells."""
    monkeypatch.setenv("COLUMNS", "200")
    args = argparse.Namespace(results=str(results), truth=str(truth_path) if truth_path else None)
    assert cmd_report(args, None) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    return [[cell.strip() for cell in row.strip("│").split("│")] for row in rows]


def test_interleaved_columns_score_below_a_correct_reading(tmp_path, capsys, monkeypatch) -> None:
    expected = truth()["two_columns.png"]
    title, left, right = expected[:1], expected[1:9], expected[9:]
    interleaved = title + [t for t in chain.from_iterable(zip_longest(left, right)) if t]
    (tmp_path / "ok").mkdir()
    (tmp_path / "mixed").mkdir()
    _write_result(tmp_path / "ok", "two_columns.png", expected)
    _write_result(tmp_path / "mixed", "two_columns.png", interleaved)
    truth_path = tmp_path / "truth.json"
    truth_path.write_text(json.dumps({"two_columns.png": expected}), "utf-8")
    [ok] = _report(tmp_path / "ok", truth_path, capsys, monkeypatch)
    [mixed] = _report(tmp_path / "mixed", truth_path, capsys, monkeypatch)
    n = len(expected)
    assert ok[-2:] == [f"{n} / {n}", "1.000"]
    exact = int(mixed[-2].split(" / ")[0])
    assert exact < n - 5 and float(mixed[-1]) < 0.8


def test_a_duplicate_found_line_is_counted_once(tmp_path, capsys, monkeypatch) -> None:
    _write_result(tmp_path, "a.png", ["Total", "Subtotal"])
    truth_path = tmp_path / "t.json"
    truth_path.write_text(json.dumps({"a.png": ["Total", "Total", "Subtotal"]}), "utf-8")
    [row] = _report(tmp_path, truth_path, capsys, monkeypatch)
    assert row[0] == "a.png" and row[-2] == "2 / 3"


def test_without_truth_the_table_lists_results_only(tmp_path, capsys, monkeypatch) -> None:
    _write_result(tmp_path, "a.png", ["first", "second"])
    (tmp_path / "truth.json").write_text("{}", "utf-8")
    assert _report(tmp_path, None, capsys, monkeypatch) == [["a.png", "2", "first", "12"]]


@pytest.mark.parametrize("case", ["missing folder", "no results", "missing truth", "bad truth"])
def test_bad_input_is_a_usage_error(case: str, tmp_path: Path) -> None:
    results, truth_path = tmp_path / "out", None
    if case != "missing folder":
        results.mkdir()
        (results / "notes.json").write_text('{"schema": "other"}', "utf-8")
    if case in ("missing truth", "bad truth"):
        _write_result(results, "a.png", ["x"])
        truth_path = tmp_path / "truth.json"
    if case == "bad truth":
        truth_path.write_text('["not", "a", "mapping"]', "utf-8")
    with pytest.raises(UsageError) as err:
        cmd_report(argparse.Namespace(results=str(results), truth=truth_path and str(truth_path)), None)
    assert "\n" not in str(err.value) and str(err.value).startswith("report: ")
