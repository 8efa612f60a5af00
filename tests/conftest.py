"""Shared fixtures. `s3_endpoint` runs moto's standalone S3 server as a real HTTP endpoint, so
storage code is tested through boto3's full stack (signing, retries, pagination, XML), not
through an in-process fake."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

S3_START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    """Poll `url` until the server answers HTTP; fail with its log if it dies or hangs."""
    deadline = time.monotonic() + S3_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"moto server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it is serving
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"moto server did not answer within {S3_START_TIMEOUT_S}s:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto S3 server subprocess, with fake AWS credentials in the environment for
    the rest of the session (the user's own AWS config is hidden from boto3)."""
    pytest.importorskip("moto.server", reason="moto[server] (the `test` extra) is not installed")
    workdir = tmp_path_factory.mktemp("moto")
    log = workdir / "server.log"
    url = f"http://127.0.0.1:{_free_port()}"
    port = url.rsplit(":", 1)[1]
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
                     "AWS_ENDPOINT_URL_S3"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", str(workdir / "aws-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(workdir / "aws-credentials"))
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", port],
                                    stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
        try:
            _wait_until_up(url, proc, log)
            yield url
        finally:
            stop_process(proc)


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def s3_client(s3_endpoint: str):  # type: ignore[no-untyped-def]
    """A plain boto3 client on the test server, for arranging and checking objects
    independently of the code under test."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def s3_bucket(s3_client) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty bucket on the test server."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis `make test` guarantees (scripts/ensure-redis.sh), DB 15 to stay out of the way."""
    import redis

    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url).ping()
    except redis.exceptions.ConnectionError:
        pytest.fail("no Redis on 127.0.0.1:6379: run scripts/ensure-redis.sh (make test does)")
    return url


@pytest.fixture
def job_id() -> str:
    """A fresh job id; its keys are removed after the test."""
    return f"test-{uuid.uuid4().hex[:12]}"


SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared is absent")
    return SHARED


@pytest.fixture(scope="session")
def engine_for():
    """engine_for(preset) -> (OcrEngine, ModelSet), built once per preset per session."""
    from converter.presets import ensure_model_set
    from docmill.modelset import ModelSet
    from docmill.settings import Settings
    from worker.engine.pipeline import OcrEngine

    built: dict = {}

    def get(preset: str):
        if preset not in built:
            settings = Settings(device="cpu")
            model_set = ModelSet.load(ensure_model_set(preset, settings))
            built[preset] = (OcrEngine.load(model_set, settings), model_set)
        return built[preset]

    return get


@pytest.fixture(scope="session")
def sample_pages(tmp_path_factory):
    """The demo pages (rendered text with known lines) as BGR images, with their truth."""
    import json

    import cv2

    from demo.pages import write_samples

    folder = tmp_path_factory.mktemp("samples")
    write_samples(folder)
    truth = json.loads((folder / "truth.json").read_text("utf-8"))
    return {name: cv2.imread(str(folder / name)) for name in truth}, truth


@pytest.fixture(scope="session")
def vertical_pages():
    """The drawn vertical Chinese and Japanese pages (demo/vertical.py) by name: BGR pixels and
    columns in reading order."""
    from demo.vertical import FONT, pages

    if not FONT.is_file():
        pytest.fail(f"{FONT} is missing: `make test` installs fonts-droid-fallback (scripts/ensure-tools.sh)")
    return pages()
