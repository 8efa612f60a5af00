"""`docmill worker --check` as the container health check runs it: a real process against the
real Redis and S3 server of the fixtures, and against dead ones. Each check is one line, the
exit code is 0 only when all pass, and no password ever reaches the output."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.services

SECRET = "hunter2-do-not-print"


def _dead_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_check(*flags: str, **env: str) -> tuple[int, list[str]]:
    """`docmill worker --check FLAGS` with DOCMILL_* set from `env`; (exit code, stdout lines)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
    full_env.update({f"DOCMILL_{k.upper()}": v for k, v in env.items()})
    proc = subprocess.run([sys.executable, "-m", "docmill.cli", "worker", "--check", *flags],
                          env=full_env, capture_output=True, text=True, timeout=60)
    assert SECRET not in proc.stdout + proc.stderr
    return proc.returncode, proc.stdout.splitlines()


def verdicts(lines: list[str]) -> dict[str, str]:
    """{check name: the rest of its line}, asserting one line per check."""
    found = {line.split()[0]: line for line in lines}
    assert sorted(found) == ["broker", "providers", "storage"] and len(lines) == 3, lines
    return found


@pytest.fixture
def published_set(s3_client, s3_bucket) -> str:
    """A set URI whose LATEST exists, which is all the check may look at (a HEAD)."""
    s3_client.put_object(Bucket=s3_bucket, Key="sets/pp-ocrv4-ch/LATEST", Body=b"0123456789abcdef")
    return f"s3://{s3_bucket}/sets/pp-ocrv4-ch"


def test_all_live_services_pass(redis_url, s3_endpoint, published_set):
    code, lines = run_check("--device", "cpu", broker_url=redis_url, s3_endpoint_url=s3_endpoint,
                            models=published_set)
    found = verdicts(lines)
    assert code == 0, lines
    assert all(" OK " in line for line in lines), lines
    assert "answers PING" in found["broker"]
    assert "LATEST found" in found["storage"]
    assert "CPUExecutionProvider" in found["providers"]


def test_version_folder_is_found_by_its_manifest(redis_url, s3_endpoint, s3_client, s3_bucket):
    s3_client.put_object(Bucket=s3_bucket, Key="sets/x/0123/manifest.json", Body=b"{}")
    code, lines = run_check("--device", "cpu", broker_url=redis_url, s3_endpoint_url=s3_endpoint,
                            models=f"s3://{s3_bucket}/sets/x/0123")
    assert code == 0 and "manifest.json found" in verdicts(lines)["storage"]


def test_dead_redis_fails_with_advice_and_a_masked_password(s3_endpoint, published_set):
    url = f"redis://:{SECRET}@127.0.0.1:{_dead_port()}/0"
    code, lines = run_check("--device", "cpu", broker_url=url, s3_endpoint_url=s3_endpoint,
                            models=published_set)
    broker = verdicts(lines)["broker"]
    assert code != 0
    assert broker.startswith("broker    FAIL redis://:***@127.0.0.1:")
    assert "is Redis running" in broker


def test_wrong_redis_password_is_told_apart(redis_url, s3_endpoint, published_set):
    url = redis_url.replace("redis://", f"redis://:{SECRET}@")  # the test Redis has no password
    code, lines = run_check("--device", "cpu", broker_url=url, s3_endpoint_url=s3_endpoint,
                            models=published_set)
    assert code != 0
    assert "refused the credentials" in verdicts(lines)["broker"]


def test_dead_s3_endpoint_fails(redis_url, s3_endpoint):
    dead = f"http://127.0.0.1:{_dead_port()}"
    code, lines = run_check("--device", "cpu", broker_url=redis_url, s3_endpoint_url=dead,
                            models="s3://models/sets/pp-ocrv4-ch")
    found = verdicts(lines)
    assert code != 0
    assert found["storage"].startswith("storage   FAIL cannot connect to endpoint http://127.0.0.1:")
    assert " OK " in found["broker"]


def test_unpublished_set_says_how_to_publish(redis_url, s3_endpoint, s3_bucket):
    code, lines = run_check("--device", "cpu", broker_url=redis_url, s3_endpoint_url=s3_endpoint,
                            models=f"s3://{s3_bucket}/sets/pp-ocrv4-ch")
    storage = verdicts(lines)["storage"]
    assert code != 0
    assert "no LATEST nor manifest.json" in storage and "docmill convert" in storage


def test_endpoint_without_an_s3_model_set_is_listed(redis_url, s3_endpoint, s3_bucket):
    code, lines = run_check("--device", "cpu", broker_url=redis_url, s3_endpoint_url=s3_endpoint,
                            models="pp-ocrv4-ch")
    assert code == 0
    assert "buckets visible" in verdicts(lines)["storage"]


def test_cuda_where_it_does_not_load_fails(redis_url, s3_endpoint, published_set):
    from worker.engine.providers import cuda_works

    if cuda_works():
        pytest.skip("CUDA loads on this machine: --device cuda rightly passes here")
    code, lines = run_check("--device", "cuda", broker_url=redis_url, s3_endpoint_url=s3_endpoint,
                            models=published_set)
    providers = verdicts(lines)["providers"]
    assert code != 0
    assert providers.startswith("providers FAIL --device cuda: CUDA is not available here")


def test_device_comes_from_settings_when_no_flag(redis_url, s3_endpoint, published_set):
    code, lines = run_check(broker_url=redis_url, s3_endpoint_url=s3_endpoint, models=published_set,
                            device="cpu")
    assert code == 0 and "device cpu:" in verdicts(lines)["providers"]


def test_with_gpus_the_check_says_which_gpus_the_processes_take(redis_url, s3_endpoint, published_set, capsys):
    """The line `--gpus ... --check` adds, from the children's GPUs (the driver's count is
    worker/gpus.py's, tested in test_gpus.py; no host here has one)."""
    from docmill.settings import Settings
    from worker.check import run_checks

    settings = Settings(broker_url=redis_url, s3_endpoint_url=s3_endpoint, models=published_set)
    assert run_checks(settings, "cpu", ["4", "4", "GPU-b", "GPU-b"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].split() == ["gpus", "OK", "4", "processes,", "on", "GPUs", "4,", "GPU-b"]
