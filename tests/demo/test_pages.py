"""The demo pages must be byte-identical on every run (the demo and its truth are committed to
nothing, so a regeneration must not drift) and truth.json must describe exactly those pages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from demo import pages
from demo.commands import register
from demo.pages import write_samples


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
            assert img.size == pages.PAGE_SIZE
    assert truth == pages.truth()


def test_cmd_samples_prints_the_written_paths(tmp_path: Path, capsys) -> None:
    assert pages.cmd_samples(argparse.Namespace(out=str(tmp_path)), None) == 0
    printed = capsys.readouterr().out.split()
    assert printed[-1] == str(tmp_path / "truth.json") and all(Path(p).is_file() for p in printed)


def test_register_adds_samples_and_report_with_help_on_every_argument() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"samples", "report"}
    for command in sub.choices.values():
        assert all(a.help for a in command._actions)
    args = parser.parse_args(["report", "out", "--truth", "t.json"])
    assert (args.results, args.truth) == ("out", "t.json") and callable(args.handler)
