"""Shared readers for the deployment files: Dockerfile instructions, the compose file as
docker-compose resolves it, the k8s manifests, and the docmill commands all of them run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
TEST_DOCKERFILES = sorted((DOCKER / "test").glob("*.Dockerfile"))  # make deploy-test's stand-ins
K8S = sorted((DOCKER / "k8s").glob("*.yaml"))
COMPOSE = DOCKER / "compose.yaml"
COMPOSE_TEST = DOCKER / "compose.test.yaml"
# Secrets are files in DOCMILL_SECRETS; the test override also needs the inputs folder.
COMPOSE_ENV = {"DOCMILL_SECRETS": "/etc/docmill/secrets", "DEPLOY_TEST_INPUTS": "/srv/deploy-test/inputs"}
SECRET_NAMES = ("DOCMILL_BROKER_URL", "REDIS_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """JSON (exec) form arguments; a shell-form one is a test failure by design here."""
        return json.loads(self.args)


def instructions(path: Path) -> list[Instruction]:
    """Dockerfile instructions: comment lines dropped (Docker drops them inside continuations
    too), then backslash continuations joined."""
    kept = [line for line in path.read_text().splitlines() if not line.strip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(kept))
    found = []
    for text in filter(None, (line.strip() for line in joined.splitlines())):
        keyword, _, rest = text.partition(" ")
        found.append(Instruction(keyword.upper(), " ".join(rest.split())))
    return found


def final_stage(path: Path) -> list[Instruction]:
    """The instructions after the last FROM: what the shipped image is."""
    items = instructions(path)
    last = max(i for i, ins in enumerate(items) if ins.keyword == "FROM")
    return items[last:]


def docker_compose() -> str:
    """The engine-free compose implementation: Debian's docker-compose, installed on first use
    (as `make deploy-lint` does). Skips only where apt itself is unavailable."""
    found = shutil.which("docker-compose")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("docker-compose is not installed and apt-get (as root) is unavailable to "
                    "install Debian's docker-compose package")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "docker-compose"]):
        subprocess.run(argv, check=True, capture_output=True, timeout=600,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    found = shutil.which("docker-compose")
    assert found, "apt-get installed docker-compose but it is not on PATH"
    return found


def compose_config(*extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`docker-compose -f docker/compose.yaml [extra] config` with only `env` as variables."""
    base = {k: v for k, v in os.environ.items()
            if k not in COMPOSE_ENV and not k.startswith(("MINIO", "DOCMILL_", "DEPLOY_TEST_"))}
    return subprocess.run([docker_compose(), "-f", str(COMPOSE), *extra, "config"],
                          env={**base, **(env if env is not None else COMPOSE_ENV)},
                          capture_output=True, text=True, timeout=120)


def resolved_compose(*extra: str) -> dict:
    proc = compose_config(*extra)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def resolved_test_compose() -> dict:
    """compose.yaml with make deploy-test's override on top, as deploy-test runs it."""
    return resolved_compose("-f", str(COMPOSE_TEST))


def k8s_documents() -> list[dict]:
    docs = []
    for path in K8S:
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs
