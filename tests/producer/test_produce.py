"""`docmill produce` against the real Redis and the moto S3 server: what lands on the queue
(read back from Redis as Celery wrote it), the job state, skipping, and backpressure."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from docmill import jobs
from docmill.cli import main
from docmill.jobs import JobStore
from docmill.storage import result_uri
from tests.producer.conftest import SET_NAME, SET_VERSION, drain, put_objects

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("env")]


def produce(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["produce", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_tasks_chunks_dst_and_job_state(capsys, s3_client, s3_bucket, models_uri, queue, redis_client, job_id):
    keys = [f"in/p/{i:03d}.jpg" for i in range(23)] + ["in/p/sub/x.PNG", "in/p/notes.txt", "in/other.jpg"]
    put_objects(s3_client, s3_bucket, keys)
    out_prefix = f"s3://{s3_bucket}/out/run1"
    rc, out, err = produce(capsys, f"s3://{s3_bucket}/in/p/", "--out", out_prefix, "--models", models_uri,
                           "--job", job_id, "--chunk", "10", "--queue", queue)
    assert rc == 0, err
    assert out.strip().splitlines()[-1] == job_id
    assert f"job {job_id}: 24 listed, 24 enqueued in 3 tasks, 0 skipped (" in " ".join(err.split())  # rich wraps it

    queued = drain(redis_client, queue)
    assert [q.task.seq for q in queued] == [0, 1, 2]
    assert [len(q.task.items) for q in queued] == [10, 10, 4]
    for q in queued:
        assert q.envelope["content-type"] == "application/json"
        assert q.envelope["headers"]["task"] == "docmill.ocr"
        assert q.envelope["headers"]["id"] == f"{job_id}:{q.task.seq}"
        assert q.task.job == job_id and q.task.out_prefix == out_prefix
        assert q.task.models.uri == f"{models_uri}/{SET_VERSION}" and q.task.models.version == SET_VERSION
    items = [item for q in queued for item in q.task.items]
    listed = sorted(k for k in keys if k.startswith("in/p/") and not k.endswith(".txt"))
    assert [i.src for i in items] == [f"s3://{s3_bucket}/{k}" for k in listed]
    assert [i.dst for i in items] == [result_uri(out_prefix, k.removeprefix("in/p/")) for k in listed]
    assert items[-1].dst == f"{out_prefix}/sub/x.PNG.json"
    assert [i.etag for i in items] == [hashlib.md5(k.encode()).hexdigest() for k in listed]
    assert [i.bytes for i in items] == [len(k) for k in listed]

    state = JobStore(redis_client).get(job_id)
    assert (state.total, state.skipped, state.tasks_enqueued, state.pending) == (24, 0, 3, 24)
    assert state.listing_done and not state.finished and state.cursor == "sub/x.PNG"


def test_include_patterns(capsys, s3_client, s3_bucket, models_uri, queue, redis_client, job_id):
    put_objects(s3_client, s3_bucket, ["in/a.tif", "in/b.TIF", "in/c.jpg", "in/scans/d.png", "in/e.png"])
    rc, _, err = produce(capsys, f"s3://{s3_bucket}/in", "--out", f"s3://{s3_bucket}/out", "--models",
                         models_uri, "--job", job_id, "--queue", queue, "--include", "*.tif, scans/*.png")
    assert rc == 0, err
    srcs = [i.src.rsplit("/in/", 1)[1] for q in drain(redis_client, queue) for i in q.task.items]
    assert srcs == ["a.tif", "b.TIF", "scans/d.png"]


def test_hash_named_blobs_are_what_their_bytes_are(capsys, s3_client, s3_bucket, models_uri, queue, redis_client,
                                                    job_id):
    """--include '*' over blobs with no suffix: a PDF among them is split into page ranges like
    any PDF, an image and a text file stay whole items (the worker reports what the text is)."""
    from tests.pages import encoded, numbered_pdf, page_image

    blobs = {"in/3fa9c2": numbered_pdf(5), "in/77aa01": encoded(page_image("BLOB"), "JPEG"), "in/notes": b"hello"}
    for key, body in blobs.items():
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=body)
    rc, _, err = produce(capsys, f"s3://{s3_bucket}/in", "--out", f"s3://{s3_bucket}/out", "--models", models_uri,
                         "--job", job_id, "--queue", queue, "--include", "*", "--pages-per-task", "2")
    assert rc == 0, err
    items = [(i.src.rsplit("/in/", 1)[1], i.pages) for q in drain(redis_client, queue) for i in q.task.items]
    assert sorted(items, key=str) == sorted([("3fa9c2", (1, 2)), ("3fa9c2", (3, 4)), ("3fa9c2", (5, 5)),
                                             ("77aa01", None), ("notes", None)], key=str)
    assert JobStore(redis_client).get(job_id).documents == 1
    assert "3 listed, 3 enqueued (1 document split into 5 pages) in " in " ".join(err.split())  # rich wraps it


def test_an_include_that_would_read_results_again_is_refused_before_any_work(capsys, s3_bucket, models_uri,
                                                                             queue, job_id):
    rc, _, err = produce(capsys, f"s3://{s3_bucket}/in", "--out", f"s3://{s3_bucket}/in/out", "--models",
                         models_uri, "--job", job_id, "--queue", queue, "--include", "*")
    assert rc == 2 and "lies inside the input" in err and len(err.strip().splitlines()) == 1


def _put_result(s3_client, bucket: str, key: str, etag: str, models: str) -> None:  # type: ignore[no-untyped-def]
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"{}", ContentType="application/json",
                         Metadata={"source-etag": etag, "docmill-models": models})


def test_skip_existing_compares_source_etag_and_model_version(capsys, s3_client, s3_bucket, models_uri,
                                                              queue, redis_client, job_id):
    keys = [f"in/{n}.jpg" for n in "abcde"]
    put_objects(s3_client, s3_bucket, keys)
    md5 = {k: hashlib.md5(k.encode()).hexdigest() for k in keys}
    current = f"{SET_NAME}@{SET_VERSION}"
    _put_result(s3_client, s3_bucket, "out/a.jpg.json", md5["in/a.jpg"], current)  # current: skip
    _put_result(s3_client, s3_bucket, "out/b.jpg.json", md5["in/b.jpg"], current)  # current: skip
    _put_result(s3_client, s3_bucket, "out/c.jpg.json", "0" * 32, current)  # source changed
    _put_result(s3_client, s3_bucket, "out/d.jpg.json", md5["in/d.jpg"], f"{SET_NAME}@older")  # old models
    args = [f"s3://{s3_bucket}/in/", "--out", f"s3://{s3_bucket}/out/", "--models", models_uri,
            "--queue", queue, "--chunk", "2"]

    rc, _, err = produce(capsys, *args, "--job", job_id)
    assert rc == 0, err
    queued = drain(redis_client, queue)
    assert [[i.src[-5:] for i in q.task.items] for q in queued] == [["c.jpg", "d.jpg"], ["e.jpg"]]
    assert [q.task.seq for q in queued] == [0, 1]  # the all-skipped first chunk takes no number
    state = JobStore(redis_client).get(job_id)
    assert (state.total, state.skipped, state.pending, state.tasks_enqueued) == (5, 2, 3, 2)

    rc, _, err = produce(capsys, *args, "--job", job_id + "-f", "--force")
    redis_client.delete(*redis_client.keys(f"docmill:job:{job_id}-f*"))
    assert rc == 0, err
    assert sum(len(q.task.items) for q in drain(redis_client, queue)) == 5


def test_a_current_result_that_lacks_a_format_is_sent_to_be_kept(capsys, s3_client, s3_bucket, models_uri,
                                                                  queue, redis_client, job_id):
    """A job that adds --format txt enqueues the images whose results are current but lack the
    file as `formats_only` (the worker keeps the result), and the others as plain items; every
    task carries --skip-existing, and --force sends neither mark."""
    keys = [f"in/{n}.jpg" for n in "ab"]
    put_objects(s3_client, s3_bucket, keys)
    md5 = {k: hashlib.md5(k.encode()).hexdigest() for k in keys}
    _put_result(s3_client, s3_bucket, "out/a.jpg.json", md5["in/a.jpg"], f"{SET_NAME}@{SET_VERSION}")
    args = [f"s3://{s3_bucket}/in/", "--out", f"s3://{s3_bucket}/out/", "--models", models_uri,
            "--queue", queue, "--format", "txt"]

    rc, _, err = produce(capsys, *args, "--job", job_id)
    assert rc == 0, err
    [queued] = drain(redis_client, queue)
    assert queued.task.skip_existing
    assert [(i.src[-5:], i.formats_only) for i in queued.task.items] == [("a.jpg", True), ("b.jpg", False)]

    rc, _, err = produce(capsys, *args, "--job", job_id + "-f", "--force")
    redis_client.delete(*redis_client.keys(f"docmill:job:{job_id}-f*"))
    assert rc == 0, err
    [forced] = drain(redis_client, queue)
    assert not forced.task.skip_existing and not any(i.formats_only for i in forced.task.items)


def test_all_skipped_job_finishes_at_once_with_summary(capsys, s3_client, s3_bucket, models_uri, queue,
                                                       redis_client, job_id):
    put_objects(s3_client, s3_bucket, ["in/a.jpg", "in/b.jpg"])
    for key in ("a.jpg", "b.jpg"):
        _put_result(s3_client, s3_bucket, f"out/{key}.json", hashlib.md5(f"in/{key}".encode()).hexdigest(),
                    f"{SET_NAME}@{SET_VERSION}")
    rc, out, err = produce(capsys, f"s3://{s3_bucket}/in/", "--out", f"s3://{s3_bucket}/out",
                           "--models", models_uri, "--job", job_id, "--queue", queue)
    assert rc == 0, err
    assert out.strip().splitlines()[-1] == job_id
    assert drain(redis_client, queue) == []
    summary = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=f"out/_docmill/jobs/{job_id}.json")["Body"].read())
    assert (summary["total"], summary["skipped"], summary["done"], summary["failed"]) == (2, 2, 0, 0)
    assert summary["models"] == {"uri": f"{models_uri}/{SET_VERSION}", "version": SET_VERSION}

    assert main(["status", job_id, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["finished"] is True and status["pending"] == 0


def test_backpressure_waits_for_the_queue_to_drain(capsys, s3_client, s3_bucket, models_uri, queue,
                                                   redis_client, job_id):
    put_objects(s3_client, s3_bucket, [f"in/{i:02d}.jpg" for i in range(12)])
    result: list[int] = []
    producer = threading.Thread(target=lambda: result.append(main([
        "produce", f"s3://{s3_bucket}/in/", "--out", f"s3://{s3_bucket}/out", "--models", models_uri,
        "--job", job_id, "--queue", queue, "--chunk", "1", "--max-pending", "2"])))
    producer.start()
    depths, popped = [], 0
    deadline = time.monotonic() + 60
    while producer.is_alive() and time.monotonic() < deadline:
        depths.append(redis_client.llen(queue))
        if depths[-1] >= 3:  # the producer must now be waiting: nothing more may arrive
            time.sleep(0.3)
            assert redis_client.llen(queue) == 3
            if popped + 3 < 12:  # with objects left to send it must still be there, waiting
                assert producer.is_alive()
            popped += redis_client.rpop(queue) is not None
        time.sleep(0.02)
    producer.join(5)
    assert result == [0]
    assert max(depths) == 3 and popped >= 9
    assert popped + redis_client.llen(queue) == 12


@pytest.mark.parametrize("argv, message", [
    (["--chunk", "0"], "--chunk must be between 1 and 1000"),
    (["--max-pending", "0"], "--max-pending must be 1 or more"),
    (["--job", "../x"], "--job '../x'"),
    (["--models", "s3://{bucket}/nothing-here"], "not a published model set"),
    (["--models", "pp-ocrv4-ch"], "needs its model set in shared storage"),
    (["--out", "s3://no-such-bucket-y/out/"], "cannot write results there"),
    (["--queue", "a,b"], "a job goes to one queue"),
    (["--queue", ""], "a queue name is empty"),
])
def test_usage_errors_are_one_line(capsys, s3_bucket, models_uri, queue, redis_client, argv, message):
    argv = [a.replace("{bucket}", s3_bucket) for a in argv]
    base = [f"s3://{s3_bucket}/in/", "--out", f"s3://{s3_bucket}/out", "--queue", queue]
    if "--models" not in argv:
        base += ["--models", models_uri]
    rc, out, err = produce(capsys, *base, *argv)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err
    assert redis_client.llen(queue) == 0


def test_existing_job_id_is_refused(capsys, s3_client, s3_bucket, models_uri, queue, job_id):
    put_objects(s3_client, s3_bucket, ["in/a.jpg"])
    args = [f"s3://{s3_bucket}/in/", "--out", f"s3://{s3_bucket}/out", "--models", models_uri,
            "--queue", queue, "--job", job_id]
    assert produce(capsys, *args)[0] == 0
    rc, _, err = produce(capsys, *args)
    assert rc == 2 and f"use --resume {job_id}" in err


def test_unreachable_broker_is_one_line_with_the_password_masked(capsys, monkeypatch, s3_bucket, models_uri):
    monkeypatch.setattr(jobs, "REDIS_RETRIES", 2)  # the message, not the half-minute of retries before it
    monkeypatch.setenv("DOCMILL_BROKER_URL", "redis://user:hunter2@127.0.0.1:1/0")
    rc, _, err = produce(capsys, f"s3://{s3_bucket}/in/", "--out", f"s3://{s3_bucket}/out",
                         "--models", models_uri)
    assert rc == 2 and "redis://user:***@127.0.0.1:1/0" in err and "hunter2" not in err


def test_results_of_an_earlier_run_in_an_out_inside_the_input_are_passed_over_and_counted(
        capsys, s3_client, s3_bucket, models_uri, queue, redis_client, job_id):
    put_objects(s3_client, s3_bucket, ["in/a.jpg", "in/out/a.jpg.pdf", "in/out/a.jpg.png", "in/out/doc.pdf/page-0001.png",
                                       "in/out/mine.png", "in/out2/b.jpg", "in/outside.png"])
    rc, _, err = produce(capsys, f"s3://{s3_bucket}/in", "--out", f"s3://{s3_bucket}/in/out", "--models", models_uri,
                         "--job", job_id, "--queue", queue)
    assert rc == 0, err
    srcs = [i.src.rsplit("/in/", 1)[1] for q in drain(redis_client, queue) for i in q.task.items]
    assert srcs == ["a.jpg", "out/mine.png", "out2/b.jpg", "outside.png"]
    assert "0 skipped, left out 3 of docmill's own results in --out" in " ".join(err.split())
