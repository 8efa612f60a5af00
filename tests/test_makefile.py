"""The Makefile's installs: `make run` and the other worker targets install no Paddle stack (a
1.8 GB venv for a converter the worker never runs); `make test` does, as it covers the converter.

What is checked is what make would run (`make -n -B TARGET` in a copy of the Makefile, so
nothing is installed), and for run and test that install is resolved by pip's dry run against
the package index, so a dependency that pulls Paddle in indirectly fails the test too.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PADDLE = {"paddlepaddle", "paddle2onnx"}
WORKER_TARGETS = ("run", "stack", "bench", "soak")
TEST_TARGETS = ("test", "chaos", "deploy-lint")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Makefile and what pip builds docmill's metadata from, in a folder of their own: no
    install, and no egg-info written into the working tree."""
    folder = tmp_path_factory.mktemp("project")
    for name in ("Makefile", "pyproject.toml", "README.md"):
        (folder / name).write_bytes((ROOT / name).read_bytes())
    return folder


def venv_installs(project: Path, target: str) -> list[str]:
    """The requirement of each `pip install -e REQ` into the project's venv that building
    `target` from scratch runs (e.g. ".", ".[test]")."""
    dry_run = subprocess.run(["make", "-n", "-B", target], cwd=project, capture_output=True, text=True,
                             check=True).stdout
    installs = []
    for line in dry_run.splitlines():
        if line.startswith(".venv/bin/python -m pip install"):
            args = shlex.split(line.split(" 2>&1 ")[0])  # without the QUIET_PIP filter
            if "-e" in args:
                installs.append(args[args.index("-e") + 1])
    assert installs, f"`make -n -B {target}` installs no docmill:\n{dry_run}"
    return installs


def declared_requirements(project: Path, requirement: str) -> set[str]:
    """Names of docmill's own dependencies plus those of the extras `requirement` names."""
    extras = Requirement(f"docmill{requirement.removeprefix('.')}").extras
    declared = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    specs = declared["dependencies"] + [s for extra in extras for s in declared["optional-dependencies"][extra]]
    return {canonicalize_name(Requirement(s).name) for s in specs}


def resolved(project: Path, requirement: str) -> frozenset[str]:
    """Every distribution pip would install for `-e requirement` into an empty environment,
    resolved in a copy of `project` of its own (pip builds metadata there)."""
    folder = project / f"resolve{requirement.removeprefix('.')}"
    shutil.copytree(project, folder, ignore=shutil.ignore_patterns("resolve*"))
    report = folder / "pip-report.json"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
                          "--report", str(report), "-e", requirement],
                         cwd=folder, capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    return frozenset(canonicalize_name(item["metadata"]["name"])
                     for item in json.loads(report.read_text())["install"])


@pytest.fixture(scope="module")
def resolutions(project: Path) -> dict[str, list[frozenset[str]]]:
    """pip's dry runs for `make run`'s and `make test`'s installs, all at once: each takes
    15-30 s, about half of it waiting on the index."""
    installs = {target: venv_installs(project, target) for target in ("run", "test")}
    with ThreadPoolExecutor() as pool:
        futures = {target: [pool.submit(resolved, project, r) for r in requirements]
                   for target, requirements in installs.items()}
        return {target: [future.result() for future in pending] for target, pending in futures.items()}


@pytest.mark.parametrize("target", WORKER_TARGETS)
def test_worker_targets_declare_no_paddle(project: Path, target: str) -> None:
    for requirement in venv_installs(project, target):
        assert requirement.startswith(".")
        assert not PADDLE & declared_requirements(project, requirement), (target, requirement)


@pytest.mark.parametrize("target", TEST_TARGETS)
def test_test_targets_declare_the_converter(project: Path, target: str) -> None:
    assert any(PADDLE <= declared_requirements(project, r) for r in venv_installs(project, target))


def test_run_install_resolves_to_no_paddle(resolutions: dict[str, list[frozenset[str]]]) -> None:
    for installed in resolutions["run"]:
        assert "docmill" in installed and "onnxruntime-gpu" in installed
        assert not PADDLE & installed


def test_test_install_resolves_to_paddle(resolutions: dict[str, list[frozenset[str]]]) -> None:
    installed = set().union(*resolutions["test"])
    assert PADDLE <= installed and "pytest" in installed


def test_each_install_has_its_own_stamp(tmp_path: Path) -> None:
    """With a fake venv python that logs its arguments: `make install` after `make
    install-test` runs its own install (which uninstalls nothing), neither runs again until
    pyproject.toml changes, and then each runs once more. Each compiles the modules
    (compileall redoes only what is stale)."""
    for name in ("Makefile", "pyproject.toml"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/sh\necho "$*" >> "$(dirname "$0")/../../calls.log"\n')
    python.chmod(0o755)
    log = tmp_path / "calls.log"

    def make(*targets: str) -> list[str]:
        """The pip calls `make` made; every install also compiles the project's modules."""
        before = log.read_text().splitlines() if log.exists() else []
        subprocess.run(["make", *targets], cwd=tmp_path, check=True, capture_output=True)
        calls = (log.read_text().splitlines() if log.exists() else [])[len(before):]
        assert calls[-1].startswith("-m compileall -q docmill worker pages")
        return [call for call in calls if "compileall" not in call]

    past = time.time() - 100
    os.utime(tmp_path / "pyproject.toml", (past, past))
    assert make("install-test") == ["-m pip install -q --upgrade pip", "-m pip install -q -e .[test,convert]"]
    assert make("install") == ["-m pip install -q -e ."]
    assert make("install", "install-test") == []
    for stamp in (tmp_path / ".venv").glob(".installed-*"):  # file times are coarse: step clear of them
        os.utime(stamp, (past + 10, past + 10))
    os.utime(tmp_path / "pyproject.toml", (past + 20, past + 20))  # edited after the installs
    assert make("install") == ["-m pip install -q -e ."]
    assert make("install-test") == ["-m pip install -q -e .[test,convert]"]
