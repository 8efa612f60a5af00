"""`docmill run` checks everything it can before any OCR: a name clash between inputs, an
output that cannot take a write, an input bucket that does not exist, no images at all.
Each is one line and exit 2, and nothing is written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from docmill.cli import main

pytestmark = pytest.mark.models


def _page(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((120, 400, 3), 255, np.uint8)
    cv2.putText(img, "HELLO", (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 4)
    cv2.imwrite(str(path), img)


def _one_line_exit_2(argv: list[str], capsys, needle: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], (code, err)


def test_two_inputs_that_would_write_one_result_are_refused(tmp_path, capsys):
    _page(tmp_path / "A" / "page.jpg")
    _page(tmp_path / "B" / "page.jpg")
    out = tmp_path / "O"
    _one_line_exit_2(["run", str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(out), "--quiet"],
                     capsys, "would both write")
    assert not out.exists()


@pytest.mark.parametrize("make_out", [
    pytest.param(lambda tmp: "/proc/docmill-out", id="proc"),
    pytest.param(lambda tmp: (tmp / "a-file").write_text("x") and str(tmp / "a-file"), id="a file"),
    pytest.param(lambda tmp: str(tmp / "a-file2" / "under"), id="under a file"),
])
def test_an_output_that_cannot_take_a_write_is_found_before_any_work(tmp_path, capsys, make_out):
    _page(tmp_path / "in" / "page.jpg")
    (tmp_path / "a-file2").write_text("x")
    out = make_out(tmp_path)
    _one_line_exit_2(["run", str(tmp_path / "in"), "--out", out, "--quiet"], capsys, "cannot write results")


@pytest.mark.services
def test_a_missing_bucket_in_or_out_is_one_line(tmp_path, capsys, s3_endpoint, monkeypatch):
    monkeypatch.setenv("DOCMILL_S3_ENDPOINT_URL", s3_endpoint)
    _page(tmp_path / "in" / "page.jpg")
    _one_line_exit_2(["run", str(tmp_path / "in"), "--out", "s3://no-such-bucket-x/out/", "--quiet"],
                     capsys, "cannot write results")
    _one_line_exit_2(["run", "s3://no-such-bucket-x/in/", "--out", str(tmp_path / "out"), "--quiet"],
                     capsys, "no-such-bucket-x")
    assert not (tmp_path / "out").exists()


def test_a_folder_without_images_is_exit_2_naming_what_was_passed_over(tmp_path, capsys):
    for name in ("a.docx", "b.docx", "notes.txt"):
        (tmp_path / "docs" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "docs" / name).write_bytes(b"PK\x03\x04")
    _one_line_exit_2(["run", str(tmp_path / "docs"), "--out", str(tmp_path / "out"), "--quiet"],
                     capsys, "2 .docx, 1 .txt")


def test_an_include_that_would_read_this_runs_results_again_is_exit_2(tmp_path, capsys):
    """--out inside the input with --include '*': the next run would take this one's results
    for blobs as inputs. Narrower patterns, or --out elsewhere, are fine."""
    _page(tmp_path / "in" / "page.jpg")
    _one_line_exit_2(["run", str(tmp_path / "in"), "--out", str(tmp_path / "in" / "out"), "--include", "*",
                      "--quiet"], capsys, "lies inside the input")
    assert not (tmp_path / "in" / "out").exists()
    _one_line_exit_2(["run", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--include", " , ", "--quiet"],
                     capsys, "--include needs at least one pattern")


@pytest.mark.slow
def test_files_that_are_not_images_are_counted_by_suffix(tmp_path, capsys):
    _page(tmp_path / "in" / "page.jpg")
    (tmp_path / "in" / "letter.docx").write_bytes(b"PK\x03\x04")
    assert main(["run", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["images"] == 1 and summary["skipped"] == {".docx": 1}
    assert "passed over 1 .docx" in captured.err


def test_version_and_help(capsys):
    import docmill

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"docmill {docmill.__version__}"


def test_every_option_of_every_command_has_help():
    import argparse

    from docmill.cli import build_parser

    def walk(parser: argparse.ArgumentParser, path: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(child, f"{path} {name}")
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                yield path, action

    missing = [f"{path} {a.option_strings or a.dest}" for path, a in walk(build_parser(), "docmill") if not a.help]
    assert not missing
    assert build_parser().description.endswith(".")  # a whole sentence, not a cut-off docstring


def test_config_shows_effective_engine_values_and_no_test_hooks(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DOCMILL_ENGINE__DET_BOX_THRESH", "0.42")
    monkeypatch.delenv("DOCMILL_MODELS", raising=False)
    assert main(["config"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["models"], data["models_on_cuda"]) == ("pp-ocrv6-int8det", "pp-ocrv6")
    assert data["engine"]["det_box_thresh"] == 0.42
    assert None not in data["engine"].values() and isinstance(data["engine"]["det_limit_side_len"], int)
    assert data["engine_layers"][0] == "PaddleOCR defaults" and "DET_BOX_THRESH" in data["engine_layers"][-1].upper()
    assert not any("fault" in key for key in data)


def test_the_output_writers_are_imported_only_when_a_format_asks_for_them():
    """pikepdf and the writers cost every run's start-up; a run without --format never loads them."""
    import subprocess
    import sys

    code = "import sys, worker.local, worker.host; print(sorted(m for m in ('pikepdf', 'worker.deliverables') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"



def test_a_name_that_is_not_utf8_is_passed_over_by_name_and_the_rest_is_read(tmp_path, capsys):
    folder = tmp_path / "scans"
    _page(folder / "ok.png")
    (folder / os.fsdecode(b"\xff\xfe bad.png")).write_bytes((folder / "ok.png").read_bytes())  # cv2 cannot name it
    assert main(["run", str(folder), "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["skipped"] == {".png whose name no result can carry": 1}
    assert f"passing over {folder}/\\xff\\xfe bad.png: name '\\xff\\xfe bad.png' is not UTF-8" in captured.err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ok.png.json"]


@pytest.mark.parametrize("which", ["input", "out"])
def test_an_input_or_out_path_that_is_not_utf8_is_one_line_before_any_work(tmp_path, capsys, which):
    odd = tmp_path / os.fsdecode(b"\xffdir")
    odd.mkdir()
    _page(tmp_path / "page.png")
    args = [str(odd), "--out", str(tmp_path / "out")] if which == "input" else [str(tmp_path), "--out", str(odd)]
    _one_line_exit_2(["run", *args, "--device", "cpu"], capsys,
                     f"docmill: {tmp_path}/\\xffdir: this path is not UTF-8, so results cannot name it; rename it")
    assert not (tmp_path / "out").exists()


def test_a_pdf_whose_page_folder_would_be_itself_is_refused_before_any_work(tmp_path, capsys):
    from tests.pages import numbered_pdf

    folder = tmp_path / "scans"
    _page(folder / "photo.png")
    (folder / "book.pdf").write_bytes(numbered_pdf(2))
    _one_line_exit_2(["run", str(folder), "--out", str(folder), "--device", "cpu"], capsys,
                     f"{folder}/book.pdf: its page results go in {folder}/book.pdf/, but {folder}/book.pdf is a file")
    assert sorted(p.name for p in folder.iterdir()) == ["book.pdf", "photo.png"]
