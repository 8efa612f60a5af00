"""The Celery worker as a real process against real Redis and a real S3 HTTP server: tasks
sent as JSON through the broker come back as result objects, job counts and a summary."""

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
import redis

from docmill.jobs import UNREADABLE, JobStore, connect
from docmill.messages import ModelsRef, OcrTask, TaskItem
from docmill.result import validate_result
from tests import fixtures_images as fx

pytestmark = [pytest.mark.services, pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def published_models(engine_for, s3_endpoint):
    """The pp-ocrv4-ch set published into its own bucket, as the converter would."""
    import boto3

    _, model_set = engine_for("pp-ocrv4-ch")
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    for path in model_set.files():
        client.put_object(Bucket=bucket, Key=f"sets/{model_set.name}/{model_set.version}/{path.name}",
                          Body=path.read_bytes())
    return ModelsRef(uri=f"s3://{bucket}/sets/{model_set.name}/{model_set.version}", version=model_set.version)


@pytest.fixture
def worker_proc(s3_endpoint, redis_url, tmp_path):
    """`docmill worker` on a queue of its own; yields (queue, env); stopped with SIGTERM."""
    queue = f"q-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, DOCMILL_BROKER_URL=redis_url, DOCMILL_S3_ENDPOINT_URL=s3_endpoint,
               DOCMILL_CACHE_DIR=str(tmp_path / "cache"), DOCMILL_LOG_LEVEL="INFO")
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "docmill.cli", "worker", "--queue", queue,
                             "--concurrency", "4", "--device", "cpu", "--max-delay-ms", "50"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    yield queue, proc, tmp_path / "worker.log"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _send(redis_url: str, queue: str, task: OcrTask) -> None:
    from celery import Celery

    app = Celery(broker=redis_url)
    app.conf.update(task_serializer="json", accept_content=["json"])
    app.send_task("docmill.ocr", args=[task.to_payload()], queue=queue)


def _wait_finished(store: JobStore, job: str, proc, log, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if store.get(job).finished:
            return
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.5)
    pytest.fail(f"job not finished: {store.get(job)}\n{log.read_text(errors='replace')[-3000:]}")


def test_tasks_through_the_broker_give_results_counts_and_summary(
        published_models, worker_proc, s3_client, s3_bucket, redis_url, job_id, sample_pages):
    queue, proc, log = worker_proc
    images, _ = sample_pages
    store = JobStore(connect(redis_url))
    foreign = [f"not json {uuid.uuid4().hex}", json.dumps({"body": uuid.uuid4().hex})]  # first off the queue
    store.r.lpush(queue, *foreign)
    bodies = {f"in/{name}": cv2.imencode(".png", img)[1].tobytes() for name, img in images.items()}
    bodies["in/bad/zero.jpg"] = fx.zero_bytes()
    bodies["in/bad/truncated.jpg"] = fx.truncated_jpeg()
    items = []
    for key, body in bodies.items():
        etag = s3_client.put_object(Bucket=s3_bucket, Key=key, Body=body)["ETag"].strip('"')
        items.append(TaskItem(src=f"s3://{s3_bucket}/{key}", dst=f"s3://{s3_bucket}/out/{key[3:]}.json",
                              etag=etag, bytes=len(body)))
    out_prefix = f"s3://{s3_bucket}/out"
    store.create(job_id, f"s3://{s3_bucket}/in/", out_prefix, published_models.uri, published_models.version)
    for seq, start in enumerate(range(0, len(items), 3)):
        chunk = items[start:start + 3]
        _send(redis_url, queue, OcrTask(job=job_id, seq=seq, models=published_models, out_prefix=out_prefix,
                                        items=chunk))
        store.record_enqueued(job_id, items=len(chunk), tasks=1, skipped=0, cursor=chunk[-1].src)
    store.finish_listing(job_id)
    _wait_finished(store, job_id, proc, log)  # the worker outlived the messages no task could be made of

    state = store.get(job_id)
    assert (state.total, state.done, state.failed) == (len(items), len(items) - 2, 2)
    set_aside = redis.Redis.from_url(redis_url).lrange(UNREADABLE, 0, -1)  # bytes: others may not be UTF-8
    assert all(payload.encode() in set_aside for payload in foreign)
    for payload in foreign:
        store.r.lrem(UNREADABLE, 1, payload)
    assert f"set aside in {UNREADABLE}" in log.read_text(errors="replace")
    for item in items:
        key = item.dst.split("/", 3)[3]
        obj = s3_client.get_object(Bucket=s3_bucket, Key=key)
        doc = json.loads(obj["Body"].read())
        validate_result(doc)
        assert obj["ContentType"] == "application/json"
        assert obj["Metadata"]["source-etag"] == item.etag
        assert obj["Metadata"]["docmill-models"].endswith("@" + published_models.version)
    letter = json.loads(s3_client.get_object(Bucket=s3_bucket, Key="out/letter.png.json")["Body"].read())
    assert letter["lines"][0]["text"] == "Northwind Paper Company"
    summary = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=f"out/_docmill/jobs/{job_id}.json")["Body"].read())
    assert summary["done"] == len(items) - 2 and summary["failure_codes"] == {"decode_error": 2}
    assert set(summary["failures"]) == {f"s3://{s3_bucket}/in/bad/zero.jpg", f"s3://{s3_bucket}/in/bad/truncated.jpg"}


@pytest.mark.chaos
def test_poison_item_ends_as_worker_lost_and_the_job_completes(
        published_models, s3_endpoint, s3_client, s3_bucket, redis_url, job_id, sample_pages, tmp_path):
    """An item that kills its worker every time: after the redelivery cap it gets a
    `worker_lost` result, its task mates get real results, and the job finishes."""
    images, _ = sample_pages
    items = []
    for name in ("letter.png", "poison.png", "rotated.jpg"):
        body = cv2.imencode(".png", images["letter.png" if name == "poison.png" else name])[1].tobytes()
        etag = s3_client.put_object(Bucket=s3_bucket, Key=f"in/{name}", Body=body)["ETag"].strip('"')
        items.append(TaskItem(src=f"s3://{s3_bucket}/in/{name}", dst=f"s3://{s3_bucket}/out/{name}.json", etag=etag))
    store = JobStore(connect(redis_url))
    out_prefix = f"s3://{s3_bucket}/out"
    store.create(job_id, f"s3://{s3_bucket}/in/", out_prefix, published_models.uri, published_models.version)
    queue = f"q-{uuid.uuid4().hex[:8]}"
    _send(redis_url, queue, OcrTask(job=job_id, seq=0, models=published_models, out_prefix=out_prefix, items=items))
    store.record_enqueued(job_id, items=3, tasks=1, skipped=0, cursor=items[-1].src)
    store.finish_listing(job_id)
    # A dead worker's task comes back through heartbeats (lost after 4 s), not a short visibility
    # timeout: that also re-queued a task still running on a slow machine, and the second copy's
    # outcome cleared the first's count of deaths, so the poison item killed more workers.
    env = dict(os.environ, DOCMILL_BROKER_URL=redis_url, DOCMILL_S3_ENDPOINT_URL=s3_endpoint,
               DOCMILL_CACHE_DIR=str(tmp_path / "cache"), DOCMILL_HEARTBEAT_S="1", DOCMILL_WORKER_LOST_AFTER_S="4",
               DOCMILL_FAULT_CRASH_ON_SOURCE="poison.png")
    deaths = 0
    deadline = time.time() + 240
    while not store.get(job_id).finished and time.time() < deadline:
        proc = subprocess.Popen([sys.executable, "-m", "docmill.cli", "worker", "--queue", queue,
                                 "--device", "cpu", "--redelivery-cap", "2"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and not store.get(job_id).finished and time.time() < deadline:
            time.sleep(0.5)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        else:
            deaths += 1
    state = store.get(job_id)
    assert state.finished, state
    assert deaths == 3  # the batched try, then two isolated tries (the cap), then worker_lost
    assert (state.done, state.failed, state.failure_codes) == (2, 1, {"worker_lost": 1})
    poison = json.loads(s3_client.get_object(Bucket=s3_bucket, Key="out/poison.png.json")["Body"].read())
    validate_result(poison)
    assert poison["error"]["code"] == "worker_lost"
    good = json.loads(s3_client.get_object(Bucket=s3_bucket, Key="out/letter.png.json")["Body"].read())
    assert good["error"] is None and good["lines"]


def test_a_task_that_keeps_failing_ends_with_error_results(
        published_models, s3_endpoint, s3_client, s3_bucket, redis_url, job_id, sample_pages, tmp_path):
    """A model set that will not load fails the whole task: after DOCMILL_TASK_RETRIES retries
    its items get `engine_error` results and the job finishes, instead of the message being
    dropped and the job waiting forever."""
    version = "0000deadbeef0000"
    bad_models = ModelsRef(uri=f"s3://{s3_bucket}/sets/missing/{version}", version=version)
    body = cv2.imencode(".png", sample_pages[0]["letter.png"])[1].tobytes()
    s3_client.put_object(Bucket=s3_bucket, Key="in/a.png", Body=body)
    item = TaskItem(src=f"s3://{s3_bucket}/in/a.png", dst=f"s3://{s3_bucket}/out/a.png.json")
    store = JobStore(connect(redis_url))
    out_prefix = f"s3://{s3_bucket}/out"
    store.create(job_id, "in", out_prefix, bad_models.uri, version)
    queue = f"q-{uuid.uuid4().hex[:8]}"
    _send(redis_url, queue, OcrTask(job=job_id, seq=0, models=bad_models, out_prefix=out_prefix, items=[item]))
    store.record_enqueued(job_id, items=1, tasks=1, skipped=0, cursor=item.src)
    store.finish_listing(job_id)
    env = dict(os.environ, DOCMILL_BROKER_URL=redis_url, DOCMILL_S3_ENDPOINT_URL=s3_endpoint,
               DOCMILL_CACHE_DIR=str(tmp_path / "cache"), DOCMILL_TASK_RETRIES="1")
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "docmill.cli", "worker", "--queue", queue, "--device", "cpu"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_finished(store, job_id, proc, log, timeout=90)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    state = store.get(job_id)
    assert (state.done, state.failed, state.failure_codes) == (0, 1, {"engine_error": 1})
    doc = json.loads(s3_client.get_object(Bucket=s3_bucket, Key="out/a.png.json")["Body"].read())
    validate_result(doc)
    assert doc["error"]["code"] == "engine_error" and "failed repeatedly" in doc["error"]["message"]
