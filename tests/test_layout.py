"""The house rules, checked on the code itself: the contracts never import what depends on
them (not even lazily), importing them loads no worker, producer, converter, demo or bench
module, and nothing but an entry point imports the CLI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("docmill", "pages", "worker", "producer", "converter", "demo", "bench")
UPPER_FLOORS = ("pages", "worker", "producer", "converter", "demo", "bench")
CONTRACTS = ("settings", "result", "messages", "jobs", "storage", "modelset", "options", "errors",
             "inputs", "commandline")
TOP_FLOORS = {"docmill/cli.py", "docmill/api.py"}  # they load the other packages, lazily
ENTRY_POINTS = {"docmill/cli.py", "converter/__main__.py"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _sources(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def test_contracts_never_import_the_packages_that_depend_on_them():
    offenders = {}
    for path in _sources("docmill"):
        rel = path.relative_to(ROOT).as_posix()
        if rel in TOP_FLOORS:
            continue
        upward = {m for m in _imports(path) if m.split(".")[0] in UPPER_FLOORS}
        if upward:
            offenders[rel] = sorted(upward)
    assert not offenders


@pytest.mark.parametrize("module", ["docmill", *(f"docmill.{name}" for name in CONTRACTS)])
def test_importing_a_contract_loads_no_upper_floor(module):
    code = (f"import sys, {module}; print(' '.join(sorted(m for m in sys.modules "
            f"if m.split('.')[0] in {UPPER_FLOORS!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_only_entry_points_import_the_cli():
    importers = [p.relative_to(ROOT).as_posix() for p in _sources(*PACKAGES)
                 if "docmill.cli" in _imports(p)]
    assert set(importers) <= ENTRY_POINTS, importers


def test_bench_code_never_imports_tests():
    assert not [p for p in _sources("bench") if any(m.split(".")[0] == "tests" for m in _imports(p))]


def test_no_module_writes_raw_redis_keys_outside_the_job_store():
    """Job state lives behind docmill.jobs: nobody else reaches for its Redis client."""
    offenders = []
    for path in _sources(*PACKAGES):
        rel = path.relative_to(ROOT).as_posix()
        if rel != "docmill/jobs.py" and (".r." in path.read_text("utf-8") or "jobs.r\n" in path.read_text("utf-8")):
            offenders.append(rel)
    assert not offenders
