"""Scoring counts reading order: a page whose lines come out in the wrong order (the
two-column page read row by row) must score below the same lines in the right order."""

from __future__ import annotations

import json
from itertools import chain, zip_longest
from pathlib import Path

from demo.pages import truth, write_samples
from demo.scoring import check_against_truth, compare_lines, edit_distance, in_order_matches


def _result(lines: list[str], error: dict | None = None) -> dict:
    return {"lines": [{"text": t, "score": 0.9, "box": [[0, 0], [9, 0], [9, 9], [0, 9]]} for t in lines],
            "error": error}


def _interleaved_columns() -> tuple[list[str], list[str]]:
    """The two-column page's truth, and the same lines read across both columns row by row."""
    expected = truth()["two_columns.png"]
    title, left, right = expected[:1], expected[1:9], expected[9:]
    rows = chain.from_iterable(zip_longest(left, right))
    return expected, title + [t for t in rows if t]


def test_interleaved_columns_score_below_the_right_order() -> None:
    expected, interleaved = _interleaved_columns()
    assert sorted(interleaved) == sorted(expected) and interleaved != expected
    right, wrong = compare_lines(expected, expected), compare_lines(expected, interleaved)
    assert right["exact_lines"] == len(expected) and right["sequence_score"] == 1.0
    assert right["char_edit_distance"] == 0
    assert wrong["exact_lines"] <= len(expected) - 6
    assert wrong["char_edit_distance"] > 0 and wrong["sequence_score"] < 0.8


def test_each_found_line_matches_at_most_one_expected_line() -> None:
    assert compare_lines(["Total", "Total"], ["Total"])["exact_lines"] == 1
    assert compare_lines(["Total"], ["Total", "Total"])["exact_lines"] == 1
    assert in_order_matches(["a", "b", "c"], ["c", "b", "a"]) == 1
    assert in_order_matches(["a", "b", "c", "d"], ["x", "a", "c", "y", "d"]) == 3


def test_spacing_counts_in_exact_lines_but_not_in_the_distance() -> None:
    got = compare_lines(["Total due 973.98", "VAT 20%"], ["Total  due 973.98", "VAT20%"])
    assert got == {"expected_lines": 2, "found_lines": 2, "exact_lines": 1,
                   "char_edit_distance": 0, "sequence_score": 1.0}
    assert compare_lines(["abc"], ["abd", "x"])["char_edit_distance"] == 3
    assert compare_lines([], [])["sequence_score"] == 1.0
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3


def test_perfect_results_check_clean_and_missing_ones_say_why(tmp_path: Path) -> None:
    write_samples(tmp_path / "pages")
    expected = truth()
    results = tmp_path / "results"
    results.mkdir()
    names = list(expected)
    (results / f"{names[0]}.json").write_text(json.dumps(_result(expected[names[0]])))
    (results / f"{names[1]}.json").write_text(
        json.dumps(_result([], {"code": "decode_error", "message": "bad"})))
    (results / f"{names[2]}.json").write_text(json.dumps(_result(expected[names[2]][::-1])))
    report = {r["image"]: r for r in check_against_truth(tmp_path / "pages", results)}
    n = len(expected[names[0]])
    assert report[names[0]] == {"image": names[0], "expected_lines": n, "found_lines": n,
                                "exact_lines": n, "char_edit_distance": 0, "sequence_score": 1.0,
                                "error": None}
    assert report[names[1]]["found_lines"] == 0 and report[names[1]]["error"].startswith("decode_error")
    assert report[names[2]]["exact_lines"] == 1 and report[names[2]]["sequence_score"] < 0.5
    assert report[names[3]]["error"] and report[names[3]]["sequence_score"] == 0.0
