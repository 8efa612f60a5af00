"""`make stack`: the whole distributed path on one machine, in the order the design card gives.

1. a Redis of the stack's own (redis-server on 127.0.0.1:$STACK_REDIS_PORT, 6390 by default,
   installed from Debian when missing; never a Redis someone else runs, such as the one the
   tests use on 6379) and a local S3-compatible server (moto's standalone server on
   127.0.0.1:9000, unless one already answers there);
2. the model job publishes pp-ocrv4-ch into s3://docmill-models/sets/ (`docmill convert` from
   the real Paddle weights when the Paddle stack is installed, else `docmill models import`);
3. one worker (`docmill worker`, log in out/stack/worker.log);
4. the demo pages (and ../shared's SROIE sample when present) uploaded to s3://docmill-in/;
5. a producer job, followed by `docmill status --watch` until every image has a result.
The worker, the S3 server and Redis keep running afterwards, each with a pid file in out/stack
($STACK_DIR); `make stack-down` (`stack.py down`) stops them. `stack.py redis` starts only Redis.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
STATE = Path(os.environ.get("STACK_DIR", ROOT / "out" / "stack"))
ENDPOINT = os.environ.get("DOCMILL_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
REDIS_PORT = int(os.environ.get("STACK_REDIS_PORT", "6390"))
BROKER = f"redis://127.0.0.1:{REDIS_PORT}/0"
# What `down` stops, in this order: the worker still talks to the other two until it is gone.
DAEMONS = {"worker": "the worker", "s3": "the S3 server", "redis": "Redis"}
STOP_TIMEOUT_S = 10.0
SHARED = ROOT.parent / "shared" / "data"
BUCKETS = ("docmill-models", "docmill-in", "docmill-out")


def say(msg: str) -> None:
    print(f"stack: {msg}", file=sys.stderr, flush=True)


def env() -> dict[str, str]:
    e = dict(os.environ, DOCMILL_S3_ENDPOINT_URL=ENDPOINT, DOCMILL_BROKER_URL=BROKER)
    e.setdefault("AWS_ACCESS_KEY_ID", "docmill")
    e.setdefault("AWS_SECRET_ACCESS_KEY", "docmill-secret")
    e.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return e


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
        return True
    except OSError as exc:
        return hasattr(exc, "code")  # an HTTP error status still means a server answered


def start_background(name: str, argv: list[str]) -> int:
    """Start a daemon in its own session (it outlives this script, and `down` can signal its
    whole process group), pid in out/stack/NAME.pid."""
    with open(STATE / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(argv, env=env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=STATE)
    (STATE / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def wait_until(ready: Callable[[], bool], what: str, log: str) -> None:
    for _ in range(100):
        if ready():
            return
        time.sleep(0.1)
    sys.exit(f"stack: {what} did not start; see {STATE / log}")


def pid_of(name: str) -> int | None:
    """The pid in out/stack/NAME.pid while that daemon still runs; a stale file is removed.

    Every daemon here leads a session of its own (start_background), so a pid that is reused
    by an ordinary process after our daemon died does not pass for it and is never signalled.
    """
    path = STATE / f"{name}.pid"
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return None
    if running_session_leader(pid):
        return pid
    path.unlink(missing_ok=True)
    return None


def running_session_leader(pid: int) -> bool:
    """Alive, not a zombie (whose /proc entry stays until its parent reaps it), and the
    leader of its own session."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and int(fields[3]) == pid


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def redis_pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(7).startswith(b"+PONG")
    except OSError:
        return False


def ensure_redis() -> None:
    """The stack's own Redis on REDIS_PORT: the one it started before, else a new one. A port
    held by anything else is refused rather than shared: reusing a stranger's Redis would mix
    the stack's queues into it, and `down` could not stop it."""
    STATE.mkdir(parents=True, exist_ok=True)
    pid, how = pid_of("redis"), "already running"
    if pid is None:
        if port_taken(REDIS_PORT):
            sys.exit(f"stack: 127.0.0.1:{REDIS_PORT} is taken by a process make stack did not start; "
                     "stop it or set STACK_REDIS_PORT to a free port")
        subprocess.run([str(ROOT / "scripts" / "ensure-tools.sh"), "redis-server:redis-server"], check=True)
        pid, how = start_background("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT),
                                              "--save", "", "--appendonly", "no", "--dir", str(STATE)]), "started"
    wait_until(lambda: redis_pings(REDIS_PORT), "Redis", "redis.log")
    say(f"Redis: {BROKER} (redis-server pid {pid}, {how}; log {STATE / 'redis.log'})")


def ensure_s3() -> None:
    if answers(ENDPOINT):
        say(f"S3-compatible server already at {ENDPOINT}")
        return
    port = ENDPOINT.rsplit(":", 1)[1]
    start_background("s3", [str(BIN / "python"), "-m", "moto.server", "-H", "127.0.0.1", "-p", port])
    wait_until(lambda: answers(ENDPOINT), "the S3 server", "s3.log")
    say(f"started moto's S3 server at {ENDPOINT}")


def stop(name: str, pid: int) -> bool:
    """SIGTERM to the daemon's process group (a worker's pool children too), then SIGKILL if
    it is still there after STOP_TIMEOUT_S; the pid file goes once the daemon is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while running_session_leader(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not running_session_leader(pid):
            (STATE / f"{name}.pid").unlink(missing_ok=True)
            return True
    return False


def down() -> int:
    """Stop the worker, the S3 server and Redis, each by its pid file; say what was stopped."""
    found = [(name, what, pid) for name, what in DAEMONS.items() if (pid := pid_of(name)) is not None]
    if not found:
        say(f"nothing to stop: no running daemon has a pid file in {STATE}")
    failed = 0
    for name, what, pid in found:
        if stop(name, pid):
            say(f"stopped {what} (pid {pid})")
        else:
            say(f"{what} (pid {pid}) survived SIGKILL; its pid file stays in {STATE}")
            failed += 1
    return 1 if failed else 0


def client():  # type: ignore[no-untyped-def]
    import boto3

    e = env()
    return boto3.client("s3", endpoint_url=ENDPOINT, aws_access_key_id=e["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"], region_name=e["AWS_DEFAULT_REGION"])


def docmill(*args: str, capture: bool = False) -> str:
    run = subprocess.run([str(BIN / "docmill"), *args], env=env(), check=True, text=True,
                         stdout=subprocess.PIPE if capture else None)
    return run.stdout or ""


def publish_models() -> str:
    dest = "s3://docmill-models/sets"
    has_paddle = subprocess.run([str(BIN / "python"), "-c", "import paddle, converter.convert_cli"],
                                capture_output=True).returncode == 0
    if has_paddle:
        say("converter job: pp-ocrv4-ch from the real Paddle weights")
        docmill("convert", "--preset", "pp-ocrv4-ch", "--publish", dest)
    else:
        say("no Paddle stack here: importing the converted pp-ocrv4-ch set instead")
        docmill("models", "import", "--preset", "pp-ocrv4-ch", "--publish", dest)
    return f"{dest}/pp-ocrv4-ch"


def upload_inputs() -> int:
    samples = STATE / "samples"
    docmill("samples", str(samples), capture=True)
    files = {f"demo/{p.name}": p for p in samples.iterdir() if p.suffix in (".png", ".jpg")}
    if (SHARED / "sroie_sample" / "images").is_dir():
        files |= {f"sroie/{p.name}": p for p in (SHARED / "sroie_sample" / "images").glob("*.jpg")}
    s3 = client()
    for key, path in files.items():
        s3.upload_file(str(path), "docmill-in", key)
    return len(files)


def up() -> int:
    shutil.rmtree(STATE / "samples", ignore_errors=True)
    ensure_redis()
    ensure_s3()
    s3 = client()
    for bucket in BUCKETS:
        s3.create_bucket(Bucket=bucket)
    models = publish_models()
    if pid_of("worker") is None:
        start_background("worker", [str(BIN / "docmill"), "worker", "--metrics-port", "9108"])
        say("started a worker (metrics on :9108/metrics)")
    say(f"uploaded {upload_inputs()} images to s3://docmill-in/")
    job = docmill("produce", "s3://docmill-in/", "--out", "s3://docmill-out/", "--models", models,
                  "--force", capture=True).strip().splitlines()[-1]
    docmill("status", job, "--watch")
    say(f"results: s3://docmill-out/ (endpoint {ENDPOINT}); summary: s3://docmill-out/_docmill/jobs/{job}.json")
    say("stop the worker, the S3 server and Redis with: make stack-down")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=("up", "down", "redis"), default="up",
                        help="up: the whole stack (default); down: stop it; redis: start only its Redis")
    command = parser.parse_args().command
    if command == "redis":
        ensure_redis()
        return 0
    return down() if command == "down" else up()


if __name__ == "__main__":
    sys.exit(main())
