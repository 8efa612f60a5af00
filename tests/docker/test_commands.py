"""Every docmill command the deployment runs is a command run here, outside Docker, with the
same entrypoint and flags: the images' ENTRYPOINT+CMD, HEALTHCHECK and build-time RUN, the
compose services' `command:` and healthchecks, and the k8s containers' args and probes.

All of them must parse with docmill's own parser. Then, against the live Redis and S3 of the
fixtures: every worker command runs with `--check` added (Celery itself is not started) and
with its own DOCMILL_DEVICE, every health check runs as written, and (slow) the compose chain
runs for real: samples, the converter's publish, the worker check on that set, the producer.
Only values change (bucket names get a unique prefix, container paths become temp folders).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from dataclasses import dataclass, field

import pytest

from tests.docker import DOCKERFILES, final_stage, instructions, k8s_documents, resolved_compose


@dataclass(frozen=True)
class Command:
    where: str
    argv: tuple[str, ...]  # after `docmill`
    env: dict[str, str] = field(default_factory=dict, hash=False)


def _docmill_argv(argv: list[str]) -> list[str]:
    """The arguments after `docmill` in an exec-form command (`CMD`, probes, compose tests)."""
    argv = argv[1:] if argv and argv[0] in ("CMD", "CMD-SHELL") else argv
    assert argv[0] == "docmill", argv
    return argv[1:]


def dockerfile_commands() -> list[Command]:
    found = []
    for path in DOCKERFILES:
        final = final_stage(path)
        entry = [ins.exec_form() for ins in final if ins.keyword == "ENTRYPOINT"][-1]
        cmd = [ins.exec_form() for ins in final if ins.keyword == "CMD"][-1]
        found.append(Command(f"{path.name} CMD", tuple(_docmill_argv(entry + cmd))))
        for ins in final:
            if ins.keyword == "HEALTHCHECK":
                found.append(Command(f"{path.name} HEALTHCHECK",
                                     tuple(_docmill_argv(json.loads(ins.args.split(" CMD ", 1)[1])))))
        found += [Command(f"{path.name} RUN", argv, env) for ins in instructions(path)
                  if ins.keyword == "RUN" for argv, env in _shell_docmill_calls(ins.args)]
    return found


def _shell_docmill_calls(script: str) -> list[tuple[tuple[str, ...], dict[str, str]]]:
    """`docmill ...` calls in command position of a RUN script, with their VAR=value prefixes;
    build args take the values the docs give (BAKE_MODELS=pp-ocrv6). The script is split
    into words the way the shell does (quotes kept together), then into simple commands at
    &&, ||, ;, | and the keywords that start one."""
    lexer = shlex.shlex(script.replace("${BAKE_MODELS}", "pp-ocrv6"), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands, words = [], []
    for word in lexer:
        if word in ("&&", "||", ";", "|", "then", "else", "do") or set(word) <= set(";&|"):
            commands.append(words)
            words = []
        elif not (word.startswith("--mount=") and not commands and not words):
            words.append(word)
    commands.append(words)
    calls = []
    for words in commands:
        env = {}
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        if words and words[0] == "docmill":
            calls.append((tuple(words[1:]), env))
    return calls


def compose_commands() -> list[Command]:
    found = []
    for name, service in resolved_compose()["services"].items():
        if not service.get("image", "").startswith("docmill-"):
            continue
        env = {k: str(v) for k, v in service.get("environment", {}).items()}
        found.append(Command(f"compose {name}", tuple(service["command"]), env))
        test = service.get("healthcheck", {}).get("test")
        if test:
            found.append(Command(f"compose {name} healthcheck", tuple(_docmill_argv(test)), env))
    return found


def k8s_commands() -> list[Command]:
    found = []
    for doc in k8s_documents():
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            env = {v["name"]: v["value"] for v in c.get("env", []) if "value" in v}
            found.append(Command(f"k8s {doc['metadata']['name']}", tuple(c["args"]), env))
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe in c:
                    found.append(Command(f"k8s {doc['metadata']['name']} {probe}",
                                         tuple(_docmill_argv(c[probe]["exec"]["command"])), env))
    return found


ALL = dockerfile_commands() + compose_commands() + k8s_commands()


def test_the_deployment_commands_are_all_found():
    subcommands = {c.argv[0] for c in ALL}
    assert subcommands == {"worker", "produce", "convert", "samples", "models"}
    assert sum("--check" in c.argv for c in ALL) >= 5  # image, 2 compose, 2 k8s probes


@pytest.mark.parametrize("command", ALL, ids=lambda c: c.where)
def test_parses_with_docmills_parser(command):
    from docmill.cli import build_parser

    try:
        build_parser().parse_args(list(command.argv))
    except SystemExit as exc:  # only --help may exit here, and with 0
        assert "--help" in command.argv and exc.code == 0, command


def _run(argv: list[str] | tuple[str, ...], env: dict[str, str], timeout: float = 120,
         cwd: str | None = None) -> subprocess.CompletedProcess:
    """`docmill ARGV`; `cwd` keeps what tools drop in the working folder out of the repo."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
    return subprocess.run([sys.executable, "-m", "docmill.cli", *argv], env={**base, **env},
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


@pytest.fixture
def live_env(redis_url, s3_endpoint, s3_client, s3_bucket) -> dict[str, str]:
    """The services a worker needs, with a published-looking set (LATEST) to HEAD."""
    s3_client.put_object(Bucket=s3_bucket, Key="sets/pp-ocrv6/LATEST", Body=b"0123456789abcdef")
    return {"DOCMILL_BROKER_URL": redis_url, "DOCMILL_S3_ENDPOINT_URL": s3_endpoint,
            "DOCMILL_MODELS": f"s3://{s3_bucket}/sets/pp-ocrv6"}


WORKER_RUNS = [c for c in ALL if c.argv[0] == "worker"]


@pytest.mark.services
@pytest.mark.parametrize("command", WORKER_RUNS, ids=lambda c: c.where)
def test_worker_commands_pass_their_check_with_their_own_device(command, live_env):
    from worker.engine.providers import cuda_works

    argv = list(command.argv) + ([] if "--check" in command.argv else ["--check"])
    device = command.env.get("DOCMILL_DEVICE", "auto")
    proc = _run(argv, {**live_env, "DOCMILL_DEVICE": device})
    lines = dict(line.split(None, 1) for line in proc.stdout.splitlines())
    assert lines["broker"].startswith("OK") and lines["storage"].startswith("OK"), proc.stdout
    if device == "cuda" and not cuda_works():
        assert proc.returncode == 1 and lines["providers"].startswith("FAIL --device cuda"), proc.stdout
    else:
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_producer_images_default_command_runs():
    (command,) = [c for c in ALL if c.where == "producer.Dockerfile CMD"]
    proc = _run(command.argv, {})
    assert proc.returncode == 0 and "--max-pending" in proc.stdout


def _values(argv: tuple[str, ...], prefix: str, paths: dict[str, str]) -> list[str]:
    """Only values change: s3://<bucket>/ gets a unique prefix, container paths a temp folder."""
    out = []
    for arg in argv:
        arg = re.sub(r"^s3://([a-z0-9-]+)", lambda m: f"s3://{prefix}-{m[1]}", arg)
        out.append(paths.get(arg, arg))
    return out


@pytest.mark.services
@pytest.mark.models
@pytest.mark.slow
def test_the_compose_chain_runs_for_real(redis_url, s3_endpoint, s3_client, tmp_path):
    """samples -> bucket upload (mc's part) -> the converter's publish -> worker --check ->
    producer. The secrets compose keeps in files are given here as the variables they become."""
    import redis

    by_service = {c.where.removeprefix("compose "): c for c in compose_commands()}
    prefix = f"c{uuid.uuid4().hex[:8]}"
    for bucket in ("models", "samples", "results"):
        s3_client.create_bucket(Bucket=f"{prefix}-{bucket}")
    paths = {"/home/docmill/samples": str(tmp_path / "samples")}
    env = {"DOCMILL_BROKER_URL": redis_url, "DOCMILL_S3_ENDPOINT_URL": s3_endpoint,
           "DOCMILL_CACHE_DIR": str(tmp_path / "cache")}

    done = _run(_values(by_service["samples"].argv, prefix, paths), env)
    assert done.returncode == 0, done.stderr
    for page in (tmp_path / "samples").glob("*.png"):
        s3_client.upload_file(str(page), f"{prefix}-samples", f"demo/{page.name}")

    done = _run(_values(by_service["converter"].argv, prefix, paths), env, timeout=900, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]

    worker = by_service["worker"]
    models = _values((worker.env["DOCMILL_MODELS"],), prefix, paths)[0]
    done = _run([*worker.argv, "--check"], {**env, "DOCMILL_MODELS": models, "DOCMILL_DEVICE": "cpu"})
    assert done.returncode == 0, done.stdout

    r = redis.Redis.from_url(redis_url)
    before = r.llen("docmill")
    done = _run(_values(by_service["producer"].argv, prefix, paths), env)
    assert done.returncode == 0, done.stderr[-3000:]
    job = done.stdout.strip().splitlines()[-1]
    try:
        assert r.llen("docmill") > before
        assert int(r.hget(f"docmill:job:{job}", "total")) == len(list((tmp_path / "samples").glob("*.png")))
    finally:
        r.delete("docmill", *r.keys(f"docmill:job:{job}*"))


@pytest.mark.services
@pytest.mark.models
def test_baked_set_serves_an_air_gapped_producer(redis_url, tmp_path):
    """The images' BAKE_MODELS step, run as written (into a temp folder), gives a set folder
    the producer pins by path: the air-gapped route, with no S3 read of models at all."""
    import redis

    (bake,) = {c.argv: c for c in ALL if c.where == "worker.Dockerfile RUN"}.values()
    baked = tmp_path / "opt-models"
    argv = [str(baked) if arg == "/opt/docmill/models" else arg for arg in bake.argv]
    done = _run(argv, {})  # the user's model cache: the preset is fetched once per machine
    assert done.returncode == 0, done.stderr[-2000:]
    (tmp_path / "in").mkdir()
    assert _run(["samples", str(tmp_path / "in")], {}).returncode == 0
    queue = f"q-{uuid.uuid4().hex[:8]}"
    done = _run(["produce", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--models",
                 str(baked / "pp-ocrv6"), "--queue", queue],
                {"DOCMILL_BROKER_URL": redis_url})
    assert done.returncode == 0, done.stderr[-2000:]
    job = done.stdout.strip().splitlines()[-1]
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert r.hget(f"docmill:job:{job}", "models_uri").startswith(str(baked / "pp-ocrv6"))
    finally:
        r.delete(queue, *r.keys(f"docmill:job:{job}*"))
