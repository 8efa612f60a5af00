"""A bad command line is one line saying what to do and exit 2, before any work, from the
command it was given to: the option nearest to a misspelt one, and where the rest is."""

from __future__ import annotations

from pathlib import Path

import pytest

from docmill.cli import main


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1, (stop.value.code, err)
    return err[0]


def test_a_misspelt_option_names_the_nearest_of_its_commands_own(tmp_path: Path, capsys) -> None:
    line = _refused(["run", str(tmp_path), "--out", str(tmp_path / "out"), "--formt", "pdf"], capsys)
    assert line == ("docmill run: unrecognized arguments: --formt pdf (did you mean --format?); "
                    "`docmill run --help` lists what it takes")
    assert not (tmp_path / "out").exists()


def test_an_option_of_a_nested_command_is_looked_for_in_that_command(capsys) -> None:
    line = _refused(["models", "fp16", "pp-ocrv6", "--publsh", "x"], capsys)
    assert line.startswith("docmill models fp16: unrecognized arguments: --publsh x")
    assert "did you mean --publish?" in line


def test_an_unknown_option_with_nothing_near_gets_no_guess(capsys) -> None:
    line = _refused(["run", "in", "--out", "out", "--zzz"], capsys)
    assert "did you mean" not in line and line.endswith("`docmill run --help` lists what it takes")


@pytest.mark.parametrize("argv, needle", [
    (["run"], "the following arguments are required: INPUT, --out"),
    (["run", "in", "--out", "out", "--device", "gpu"], "invalid choice: 'gpu'"),
    (["rnu"], "invalid choice: 'rnu'"),
])
def test_missing_arguments_and_bad_choices_are_one_line_without_a_guess(argv, needle, capsys) -> None:
    line = _refused(argv, capsys)
    assert needle in line and "did you mean" not in line  # gpu is spelt nearest to cpu, not cuda
