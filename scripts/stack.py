"""`make stack`: the whole distributed path on one machine, in the order the design card gives.

1. Redis (the running one, or started by scripts/ensure-redis.sh) and a local S3-compatible
   server (moto's standalone server on 127.0.0.1:9000, unless one already answers there);
2. the model job publishes pp-ocrv4-ch into s3://docmill-models/sets/ (`docmill convert` from
   the real Paddle weights when the Paddle stack is installed, else `docmill models import`);
3. one worker (`docmill worker`, log in out/stack/worker.log);
4. the demo pages (and ../shared's SROIE sample when present) uploaded to s3://docmill-in/;
5. a producer job, followed by `docmill status --watch` until every image has a result.
The worker and the S3 server keep running afterwards; `make stack-down` stops them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
STATE = ROOT / "out" / "stack"
ENDPOINT = os.environ.get("DOCMILL_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
SHARED = ROOT.parent / "shared" / "data"
BUCKETS = ("docmill-models", "docmill-in", "docmill-out")


def say(msg: str) -> None:
    print(f"stack: {msg}", file=sys.stderr, flush=True)


def env() -> dict[str, str]:
    e = dict(os.environ, DOCMILL_S3_ENDPOINT_URL=ENDPOINT)
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


def start_background(name: str, argv: list[str]) -> None:
    """Start a daemon in its own session (it outlives this script), pid in out/stack/."""
    log = open(STATE / f"{name}.log", "ab")
    proc = subprocess.Popen(argv, env=env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=STATE)
    (STATE / f"{name}.pid").write_text(str(proc.pid))


def ensure_s3() -> None:
    if answers(ENDPOINT):
        say(f"S3-compatible server already at {ENDPOINT}")
        return
    port = ENDPOINT.rsplit(":", 1)[1]
    start_background("s3", [str(BIN / "python"), "-m", "moto.server", "-H", "127.0.0.1", "-p", port])
    for _ in range(100):
        if answers(ENDPOINT):
            say(f"started moto's S3 server at {ENDPOINT}")
            return
        time.sleep(0.1)
    sys.exit(f"stack: the S3 server did not start; see {STATE / 's3.log'}")


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


def main() -> int:
    shutil.rmtree(STATE / "samples", ignore_errors=True)
    STATE.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(ROOT / "scripts" / "ensure-redis.sh")], check=True)
    ensure_s3()
    s3 = client()
    for bucket in BUCKETS:
        s3.create_bucket(Bucket=bucket)
    models = publish_models()
    if not (STATE / "worker.pid").exists() or not Path(f"/proc/{(STATE / 'worker.pid').read_text()}").exists():
        start_background("worker", [str(BIN / "docmill"), "worker", "--metrics-port", "9108"])
        say("started a worker (metrics on :9108/metrics)")
    say(f"uploaded {upload_inputs()} images to s3://docmill-in/")
    job = docmill("produce", "s3://docmill-in/", "--out", "s3://docmill-out/", "--models", models,
                  "--force", capture=True).strip().splitlines()[-1]
    docmill("status", job, "--watch")
    say(f"results: s3://docmill-out/ (endpoint {ENDPOINT}); summary: s3://docmill-out/_docmill/jobs/{job}.json")
    say("stop the worker and the S3 server with: make stack-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
