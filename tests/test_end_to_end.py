"""The distributed path end to end, all real processes: `docmill produce` -> Redis ->
`docmill worker` -> S3 results, `docmill status`, the job summary, and a second producer run
that skips everything already done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import cv2
import pytest

from docmill.result import validate_result
from tests import fixtures_images as fx

pytestmark = [pytest.mark.services, pytest.mark.models, pytest.mark.slow]

BAD = {"bad/zero.jpg": fx.zero_bytes(), "bad/truncated.jpg": fx.truncated_jpeg(),
       "bad/huge.png": fx.png_huge_header()}


def _docmill(env, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "docmill.cli", *args], env=env, text=True,
                         capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.fixture
def stack(engine_for, s3_endpoint, s3_client, redis_url, tmp_path):
    """A published model set, buckets, and one running worker on a queue of its own."""
    _, model_set = engine_for("pp-ocrv4-ch")
    suffix = uuid.uuid4().hex[:8]
    buckets = {name: f"{name}-{suffix}" for name in ("models", "in", "out")}
    for bucket in buckets.values():
        s3_client.create_bucket(Bucket=bucket)
    queue = f"q-{suffix}"
    env = dict(os.environ, DOCMILL_BROKER_URL=redis_url, DOCMILL_S3_ENDPOINT_URL=s3_endpoint,
               DOCMILL_CACHE_DIR=str(tmp_path / "cache"))
    for path in model_set.files():
        s3_client.put_object(Bucket=buckets["models"], Key=f"sets/{model_set.name}/{model_set.version}/{path.name}",
                             Body=path.read_bytes())
    s3_client.put_object(Bucket=buckets["models"], Key=f"sets/{model_set.name}/LATEST", Body=model_set.version.encode())
    env["DOCMILL_MODELS"] = f"s3://{buckets['models']}/sets/{model_set.name}"
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "docmill.cli", "worker", "--queue", queue, "--device", "cpu",
                               "--concurrency", "4"], env=env, stdout=log, stderr=subprocess.STDOUT)
    yield {"env": env, "queue": queue, "buckets": buckets, "models": f"s3://{buckets['models']}/sets/{model_set.name}",
           "version": model_set.version, "worker": worker, "log": tmp_path / "worker.log"}
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    log.close()


def test_forty_images_three_bad_then_skip_existing(stack, s3_client, sample_pages):
    images, _ = sample_pages
    pages = list(images.values())
    bucket_in, bucket_out = stack["buckets"]["in"], stack["buckets"]["out"]
    keys = []
    for i in range(37):  # small crops of the demo pages: real text, quick to OCR
        page = pages[i % len(pages)]
        top = 100 + (i // len(pages)) * 180
        crop = page[top:top + 240, 80:900]
        key = f"pages/p{i:02d}.png"
        s3_client.put_object(Bucket=bucket_in, Key=key, Body=cv2.imencode(".png", crop)[1].tobytes())
        keys.append(key)
    for key, body in BAD.items():
        s3_client.put_object(Bucket=bucket_in, Key=key, Body=body)
        keys.append(key)
    common = ["--out", f"s3://{bucket_out}/run/", "--models", stack["models"], "--queue", stack["queue"], "--chunk", "5"]
    job = _docmill(stack["env"], "produce", f"s3://{bucket_in}/", *common).strip().splitlines()[-1]

    deadline = time.time() + 240
    while True:
        state = json.loads(_docmill(stack["env"], "status", job, "--json"))
        if state["finished"]:
            break
        assert stack["worker"].poll() is None, stack["log"].read_text(errors="replace")[-3000:]
        assert time.time() < deadline, state
        time.sleep(0.5)
    assert (state["total"], state["done"], state["failed"], state["skipped"], state["pending"]) == (40, 37, 3, 0, 0)

    codes = {}
    for key in keys:
        doc = json.loads(s3_client.get_object(Bucket=bucket_out, Key=f"run/{key}.json")["Body"].read())
        validate_result(doc)
        assert doc["models"]["version"] == stack["version"]
        codes[key] = doc["error"]["code"] if doc["error"] else None
    assert [k for k, c in codes.items() if c is None] == keys[:37]
    assert {k: codes[k] for k in BAD} == {"bad/zero.jpg": "decode_error", "bad/truncated.jpg": "decode_error",
                                          "bad/huge.png": "too_large"}
    summary = json.loads(s3_client.get_object(Bucket=bucket_out, Key=f"run/_docmill/jobs/{job}.json")["Body"].read())
    assert (summary["total"], summary["done"], summary["failed"]) == (40, 37, 3)
    assert summary["failure_codes"] == {"decode_error": 2, "too_large": 1}
    assert summary["models"]["version"] == stack["version"]

    assert f"model set {stack['models']} verified in" in stack["log"].read_text(errors="replace")

    again = _docmill(stack["env"], "produce", f"s3://{bucket_in}/", *common, "--skip-existing").strip().splitlines()[-1]
    second = json.loads(_docmill(stack["env"], "status", again, "--json"))
    assert second["finished"] and (second["skipped"], second["done"], second["failed"]) == (40, 0, 0)
