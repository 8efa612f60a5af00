"""Promise 4 with real processes: nothing runs that did not come as a docmill.task/v1 JSON
message (a pickle pushed straight into Redis is never deserialised), no write lands outside
the job's output prefix, secrets stay out of logs, `docmill config` and results, and Redis
AUTH and TLS (rediss://) work for workers and the producer."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from docmill.jobs import JobStore
from tests.chaos.conftest import (CLI, RedisServer, base_env, produce, publish_model_set, small_page, start_worker,
                                  wait_finished)

pytestmark = [pytest.mark.services, pytest.mark.models, pytest.mark.slow]

PASSWORD = "pw-" + uuid.uuid4().hex  # unique, so finding it anywhere is a leak
AWS_SECRET = "aws-secret-" + uuid.uuid4().hex


class Armed:
    """Unpickling this runs a shell command: the payload a pickle-accepting worker would run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def tls_files(folder: Path) -> dict[str, Path]:
    """A self-signed CA and a server certificate for 127.0.0.1, made with openssl."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {n: folder / f"{n}.pem" for n in ("ca", "ca-key", "cert", "key")}
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=docmill-test-ca",
        "-keyout", str(files["ca-key"]), "-out", str(files["ca"]))
    csr = folder / "server.csr"
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(files["key"]),
        "-out", str(csr))
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(files["ca"]), "-CAkey", str(files["ca-key"]),
        "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(files["cert"]))
    return files


@pytest.fixture(scope="module")
def rig(s3_endpoint, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A Redis that requires a password, a published set, buckets, and one worker whose AWS
    secret is a marker too."""
    import boto3

    tmp = tmp_path_factory.mktemp("security")
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    redis = RedisServer(tmp / "redis", password=PASSWORD).start()
    suffix = uuid.uuid4().hex[:6]
    buckets = {"in": f"sec-in-{suffix}", "out": f"sec-out-{suffix}"}
    for name in buckets.values():
        client.create_bucket(Bucket=name)
    env = base_env(redis.url, s3_endpoint, tmp / "cache", AWS_SECRET_ACCESS_KEY=AWS_SECRET)
    worker = start_worker(env, "docmill", tmp / "worker.log")
    yield {"client": client, "redis": redis, "published": publish_model_set(client), "buckets": buckets,
           "env": env, "worker": worker, "tmp": tmp}
    worker.stop()
    redis.stop()


def test_pickle_pushed_into_redis_is_never_deserialised(rig, tmp_path):
    from celery import Celery

    marker, control = tmp_path / "pwned", tmp_path / "control"
    # The payload is armed: unpickling it anywhere creates a file.
    subprocess.run([sys.executable, "-c", "import pickle,sys; pickle.loads(sys.stdin.buffer.read())"],
                   input=pickle.dumps(Armed(control)), check=True)
    assert control.exists()
    sender = Celery(broker=rig["redis"].url)
    sender.conf.update(task_serializer="pickle", accept_content=["pickle"])
    sender.send_task("docmill.ocr", args=[Armed(marker)], queue="docmill")
    deadline = time.monotonic() + 30
    refusal = "Refusing to deserialize untrusted content of type pickle (application/x-python-serialize)"
    while refusal not in rig["worker"].tail():
        assert time.monotonic() < deadline, rig["worker"].tail()
        time.sleep(0.1)
    raw = rig["redis"].client().lrange("docmill", 0, -1)
    assert raw == [] and not marker.exists()
    assert rig["worker"].alive()


def test_paths_cannot_escape_the_output_prefix_and_secrets_stay_out(rig, capfd):
    """Keys with spaces, unicode, '.', '..' and doubled or leading slashes: results land under
    the output prefix (unsafe keys are left out), nothing else in the bucket is touched, and
    neither the Redis password nor the AWS secret appears in logs, output or results."""
    client, buckets = rig["client"], rig["buckets"]
    keys = ["in/a b.png", "in/ünïcödé ページ.png", "in//lead.png", "in/./dot.png", "in/x/../../up.png", "in/ok.png"]
    for n, key in enumerate(keys):
        client.put_object(Bucket=buckets["in"], Key=key, Body=small_page(n))
    client.put_object(Bucket=buckets["out"], Key="up.png.json", Body=b"sentinel")
    out = subprocess.run([*CLI, "produce", f"s3://{buckets['in']}/in/", "--out", f"s3://{buckets['out']}/run/",
                          "--models", rig["published"].uri, "--job", "paths"], env=rig["env"], text=True,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    wait_finished(JobStore(rig["redis"].client()), "paths", 120, [rig["worker"]])
    written = sorted(o["Key"] for o in client.list_objects_v2(Bucket=buckets["out"])["Contents"])
    assert written == ["run/_docmill/jobs/paths.json", "run/a b.png.json", "run/dot.png.json", "run/lead.png.json",
                       "run/ok.png.json", "run/ünïcödé ページ.png.json", "up.png.json"]
    assert client.get_object(Bucket=buckets["out"], Key="up.png.json")["Body"].read() == b"sentinel"
    config = subprocess.run([*CLI, "config"], env=rig["env"], text=True, capture_output=True, timeout=60)
    bodies = [client.get_object(Bucket=buckets["out"], Key=k)["Body"].read().decode() for k in written]
    seen = "\n".join([out.stdout, out.stderr, config.stdout, config.stderr, rig["worker"].log.read_text(), *bodies])
    assert PASSWORD in rig["redis"].url and f":***@127.0.0.1:{rig['redis'].port}" in config.stdout
    assert PASSWORD not in seen and AWS_SECRET not in seen


def test_rediss_tls_with_auth(s3_endpoint, s3_client, tmp_path, workers):
    """Worker and producer over rediss:// (a self-signed CA they are told to trust) with a
    password: a job completes. Debian's redis-server is built with TLS."""
    server = RedisServer(tmp_path / "redis", password=PASSWORD, tls=tls_files(tmp_path / "tls")).start()
    try:
        published = publish_model_set(s3_client)
        suffix = uuid.uuid4().hex[:6]
        for name in (f"tls-in-{suffix}", f"tls-out-{suffix}"):
            s3_client.create_bucket(Bucket=name)
        for n in range(3):
            s3_client.put_object(Bucket=f"tls-in-{suffix}", Key=f"in/{n}.png", Body=small_page(n))
        env = base_env(server.url, s3_endpoint, tmp_path / "cache")
        workers.append(start_worker(env, "docmill", tmp_path / "worker.log"))
        job = produce(env, f"s3://tls-in-{suffix}/in/", "--out", f"s3://tls-out-{suffix}/run/",
                      "--models", published.uri)
        wait_finished(JobStore(server.client()), job, 120, workers)
        assert JobStore(server.client()).get(job).done == 3
        assert PASSWORD not in workers[0].log.read_text()
    finally:
        # Workers stop while their Redis is up: without it, a worker's shutdown first rides out
        # redis-py's retries (28.7 s of this test's teardown).
        for worker in workers:
            worker.stop()
        server.stop()


@pytest.fixture
def workers():  # type: ignore[no-untyped-def]
    started = []
    yield started
    for worker in started:
        worker.stop()
