"""The fault-test harness: a Redis of the test's own (restartable, optionally with a password
or TLS), a fault-injecting HTTP proxy in front of the S3 server, a published model set, and
helpers that start and stop `docmill worker` / `docmill produce` as real processes.

The classes are plain so other test folders (tests/worker, tests/security) can import them;
the fixtures below only serve tests/chaos.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.conftest import _free_port

CLI = [sys.executable, "-m", "docmill.cli"]
FAULT_KINDS = ("500", "503", "reset", "latency")


# --- Redis ------------------------------------------------------------------------------------


class RedisServer:
    """A redis-server on a free port of its own, so a test may stop, kill or restart it
    without touching the Redis other tests share. No save points and no AOF, as asked of a
    scratch server; `restart()` still keeps the data, through `SHUTDOWN SAVE` and the dump
    file, because a restart that wipes the queue is a lost broker, not a restart."""

    def __init__(self, workdir: Path, password: str | None = None, tls: dict[str, Path] | None = None):
        self.workdir = workdir
        self.port = _free_port()
        self.password = password
        self.tls = tls
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        scheme = "rediss" if self.tls else "redis"
        query = f"?ssl_cert_reqs=required&ssl_ca_certs={self.tls['ca']}" if self.tls else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0{query}"

    def argv(self) -> list[str]:
        args = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--dbfilename", "dump.rdb", "--logfile", "redis.log"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls["cert"]),
                     "--tls-key-file", str(self.tls["key"]), "--tls-ca-cert-file", str(self.tls["ca"]),
                     "--tls-auth-clients", "no"]
        else:
            args += ["--port", str(self.port)]
        return args

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(self.argv(), cwd=self.workdir, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except Exception:  # noqa: BLE001 - any failure means "not up yet"
                assert self.proc.poll() is None, self.log()
                time.sleep(0.05)
        pytest.fail(f"redis-server on {self.port} did not start:\n{self.log()}")

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=2)

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def restart(self, down_s: float = 1.0) -> float:
        """Save, stop, stay down `down_s`, start again on the same port; seconds it was down."""
        started = time.monotonic()
        try:
            self.client().shutdown(save=True)
        except Exception:  # noqa: BLE001 - redis-py reports the dropped connection as an error
            pass
        assert self.proc is not None
        self.proc.wait(timeout=10)
        time.sleep(down_s)
        self.start()
        return time.monotonic() - started

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


# --- S3 fault proxy ---------------------------------------------------------------------------


_SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")
_INTERNAL = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
             b"<Message>We encountered an internal error. Please try again.</Message></Error>")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class FaultProxy:
    """An HTTP proxy in front of the S3 server that breaks a share (`rate`) of requests, each
    with one of FAULT_KINDS chosen at random: a 500 InternalError, a 503 SlowDown, a reset
    connection (RST, nothing answered), or `latency_s` of delay before a normal answer.
    `injected` counts what it did; `forwarded` counts requests that reached the server."""

    def __init__(self, upstream: str, rate: float = 0.1, kinds: tuple[str, ...] = FAULT_KINDS,
                 latency_s: float = 0.3, seed: int = 0):
        self.upstream = upstream.removeprefix("http://")
        self.rate, self.kinds, self.latency_s = rate, kinds, latency_s
        self.injected: Counter = Counter()
        self.forwarded = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def choose(self) -> str | None:
        """The fault for the next request, or None; counted here, under the lock."""
        with self._lock:
            if self.rate <= 0 or self._random.random() >= self.rate:
                self.forwarded += 1
                return None
            kind = self._random.choice(self.kinds)
            self.injected[kind] += 1
            if kind == "latency":
                self.forwarded += 1
            return kind

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy.choose()
                if fault == "reset":
                    return self._reset()
                if fault in ("500", "503"):
                    return self._reply(int(fault), _INTERNAL if fault == "500" else _SLOWDOWN, {})
                if fault == "latency":
                    time.sleep(proxy.latency_s)
                status, headers, payload = self._forward(body)
                self._reply(status, payload, headers)

            def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=dict(self.headers))
                    resp = conn.getresponse()
                    return resp.status, dict(resp.getheaders()), resp.read()
                finally:
                    conn.close()

            def _reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                length = headers.get("Content-Length", headers.get("content-length", str(len(payload))))
                self.send_header("Content-Length", length if self.command == "HEAD" else str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _reset(self) -> None:
                """Close with SO_LINGER 0: the client sees ECONNRESET, not a clean end."""
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.rfile.close()
                self.wfile.close()
                self.connection.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle  # noqa: N815

            def log_message(self, *args: object) -> None:
                return

        return Handler


# --- model set, images, processes -------------------------------------------------------------


@dataclass
class Published:
    """A model set published into the S3 server: `uri` follows LATEST."""

    bucket: str
    uri: str
    version: str
    files: list[Path]  # the set's own files, as uploaded


def publish_model_set(s3_client: Any, preset: str = "pp-ocrv4-ch") -> Published:
    from converter.presets import ensure_model_set
    from docmill.modelset import ModelSet
    from docmill.settings import Settings

    model_set = ModelSet.load(ensure_model_set(preset, Settings(device="cpu")))
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    for path in model_set.files():
        s3_client.put_object(Bucket=bucket, Key=f"sets/{model_set.name}/{model_set.version}/{path.name}",
                             Body=path.read_bytes())
    s3_client.put_object(Bucket=bucket, Key=f"sets/{model_set.name}/LATEST", Body=model_set.version.encode())
    return Published(bucket, f"s3://{bucket}/sets/{model_set.name}", model_set.version, model_set.files())


def small_page(n: int) -> bytes:
    """A 48x224 PNG with one printed line: real text, a few milliseconds of OCR."""
    image = np.full((48, 224, 3), 255, np.uint8)
    cv2.putText(image, f"Item {n:04d}", (8, 34), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2, cv2.LINE_AA)
    return cv2.imencode(".png", image)[1].tobytes()


def put_pages(s3_client: Any, bucket: str, prefix: str, count: int) -> list[str]:
    keys = [f"{prefix}/p{i:04d}.png" for i in range(count)]
    for i, key in enumerate(keys):
        s3_client.put_object(Bucket=bucket, Key=key, Body=small_page(i))
    return keys


def base_env(broker: str, s3: str, cache: Path, **extra: str) -> dict[str, str]:
    """A child's environment: one ORT thread per process (two CPUs, several workers)."""
    return dict(os.environ, DOCMILL_BROKER_URL=broker, DOCMILL_S3_ENDPOINT_URL=s3,
                DOCMILL_CACHE_DIR=str(cache), DOCMILL_INTRA_OP_THREADS="1", DOCMILL_LOG_LEVEL="INFO",
                **extra)


@dataclass
class Worker:
    proc: subprocess.Popen
    log: Path
    metrics_port: int | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def metrics(self) -> dict[str, float]:
        """The worker's /metrics as {'name{labels}': value}."""
        assert self.metrics_port is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line and not line.startswith("#")}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.alive():
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def start_worker(env: dict[str, str], queue: str, log: Path, *extra: str, metrics: bool = False) -> Worker:
    port = _free_port() if metrics else None
    args = [*CLI, "worker", "--queue", queue, "--device", "cpu", "--concurrency", "4",
            "--max-delay-ms", "20", "--hostname", f"w{uuid.uuid4().hex[:6]}@%h", *extra]
    if port:
        args += ["--metrics-port", str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Worker(proc, log, port)


def produce(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """`docmill produce ...`; the job id (its last stdout line)."""
    out = subprocess.run([*CLI, "produce", *args], env=env, text=True, capture_output=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def wait_finished(store: Any, job: str, timeout: float, workers: list[Worker] = ()) -> float:
    """Seconds until the job is finished; fails with the workers' logs on a timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if store.get(job).finished:
            return time.monotonic() - started
        time.sleep(0.2)
    logs = "\n---\n".join(w.tail() for w in workers)
    pytest.fail(f"job not finished in {timeout}s: {store.get(job)}\n{logs}")


def read_results(s3_client: Any, bucket: str, prefix: str) -> dict[str, dict]:
    """Every object under prefix (summaries excluded), parsed and schema-checked."""
    from docmill.result import validate_result

    out = {}
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", ()):
            if "/_docmill/" in obj["Key"]:
                continue
            doc = json.loads(s3_client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            validate_result(doc)
            out[obj["Key"]] = doc
    return out


@dataclass
class Figures:
    """What a fault test measured, printed so `pytest -s` shows it and the README quotes it."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)

    def show(self) -> None:
        print(f"\nFIGURES {self.name}: {json.dumps(self.values, sort_keys=True)}")


# --- fixtures (tests/chaos only) --------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def published(s3_endpoint: str) -> Published:
    import boto3

    return publish_model_set(boto3.client("s3", endpoint_url=s3_endpoint))


@pytest.fixture
def buckets(s3_client: Any) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    names = {"in": f"in-{suffix}", "out": f"out-{suffix}"}
    for name in names.values():
        s3_client.create_bucket(Bucket=name)
    return names


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Every worker a test starts goes in here and is killed at the end, whatever happened."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop(signal.SIGKILL, timeout=10)
