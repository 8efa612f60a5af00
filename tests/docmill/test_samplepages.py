"""The demo pages must be byte-identical on every run (the demo and its truth are committed to
nothing, so a regeneration must not drift) and truth.json must describe exactly those pages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from docmill import samplepages
from docmill.samplepages import check_against_truth, compare_lines, edit_distance, write_samples


def _result(lines: list[str], error: dict | None = None) -> dict:
    return {"lines": [{"text": t, "score": 0.9, "box": [[0, 0], [9, 0], [9, 9], [0, 9]]} for t in lines],
            "error": error}


def test_two_runs_write_the_same_bytes(tmp_path: Path) -> None:
    first = write_samples(tmp_path / "a")
    second = write_samples(tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_truth_names_every_page_with_its_lines(tmp_path: Path) -> None:
    written = write_samples(tmp_path)
    truth = json.loads((tmp_path / "truth.json").read_text("utf-8"))
    images = [p for p in written if p.name != "truth.json"]
    assert len(images) >= 4 and sorted(truth) == sorted(p.name for p in images)
    for path in images:
        lines = truth[path.name]
        assert lines and all(isinstance(t, str) and t == t.strip() and t for t in lines)
        with Image.open(path) as img:
            assert img.size == samplepages.PAGE_SIZE
    assert truth == samplepages.truth()


def test_perfect_results_check_clean_and_missing_ones_say_why(tmp_path: Path) -> None:
    write_samples(tmp_path / "pages")
    truth = samplepages.truth()
    results = tmp_path / "results"
    results.mkdir()
    names = list(truth)
    (results / f"{names[0]}.json").write_text(json.dumps(_result(list(reversed(truth[names[0]])))))
    (results / f"{names[1]}.json").write_text(
        json.dumps(_result([], {"code": "decode_error", "message": "bad"})))
    report = {r["image"]: r for r in check_against_truth(tmp_path / "pages", results)}
    assert report[names[0]] == {"image": names[0], "expected_lines": len(truth[names[0]]),
                                "found_lines": len(truth[names[0]]), "exact_lines": len(truth[names[0]]),
                                "char_edit_distance": 0, "error": None}
    assert report[names[1]]["found_lines"] == 0 and report[names[1]]["error"].startswith("decode_error")
    assert report[names[2]]["error"] and report[names[2]]["char_edit_distance"] > 0


def test_compare_ignores_spacing_in_distance_but_not_in_exact_lines() -> None:
    got = compare_lines(["Total due 973.98", "VAT 20%"], ["VAT20%", "Total  due 973.98"])
    assert got == {"expected_lines": 2, "found_lines": 2, "exact_lines": 1, "char_edit_distance": 0}
    assert compare_lines(["abc"], ["abd", "x"])["char_edit_distance"] == 3
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3


def test_cmd_samples_prints_the_written_paths(tmp_path: Path, capsys) -> None:
    assert samplepages.cmd_samples(argparse.Namespace(out=str(tmp_path)), None) == 0
    printed = capsys.readouterr().out.split()
    assert printed[-1] == str(tmp_path / "truth.json") and all(Path(p).is_file() for p in printed)
