"""A producer killed mid-listing (SIGKILL, a real subprocess) and resumed: every object ends
up on the queue exactly once, in tasks numbered without a gap or a repeat."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from docmill.cli import main
from docmill.jobs import JobStore
from tests.producer.conftest import drain, put_objects

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("env")]

CLI = [sys.executable, "-c", "import sys; from docmill.cli import main; sys.exit(main())"]


def _wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_killed_producer_resumes_without_enqueuing_twice(capsys, s3_client, s3_bucket, models_uri, queue,
                                                         redis_client, job_id):
    keys = [f"in/{i:03d}.jpg" for i in range(200)]
    put_objects(s3_client, s3_bucket, keys)
    store = JobStore(redis_client)
    proc = subprocess.Popen([*CLI, "produce", f"s3://{s3_bucket}/in/", "--out", f"s3://{s3_bucket}/out",
                             "--models", models_uri, "--job", job_id, "--queue", queue, "--chunk", "5",
                             "--max-pending", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Four tasks fill the queue past --max-pending: the producer now waits, mid-listing.
        _wait_for(lambda: store.exists(job_id) and store.get(job_id).tasks_enqueued == 4)
        first = drain(redis_client, queue)  # a worker took them...
        _wait_for(lambda: store.get(job_id).tasks_enqueued == 8)  # ...so four more went out
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = store.get(job_id)
    assert not state.listing_done and state.cursor == "039.jpg"

    # Another flag value on resume does not change the job's chunking.
    assert main(["produce", "--resume", job_id, "--chunk", "7", "--max-pending", "1000"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == job_id
    queued = first + drain(redis_client, queue)
    assert [q.task.seq for q in queued] == list(range(40))
    srcs = [item.src for q in queued for item in q.task.items]
    assert srcs == [f"s3://{s3_bucket}/{k}" for k in keys]
    assert {q.envelope["headers"]["id"] for q in queued} == {f"{job_id}:{n}" for n in range(40)}
    state = store.get(job_id)
    assert (state.total, state.tasks_enqueued, state.listing_done) == (200, 40, True)


def test_resuming_a_completed_listing_enqueues_nothing(capsys, s3_client, s3_bucket, models_uri, queue,
                                                       redis_client, job_id):
    put_objects(s3_client, s3_bucket, ["in/a.jpg", "in/b.jpg"])
    args = [f"s3://{s3_bucket}/in/", "--out", f"s3://{s3_bucket}/out", "--models", models_uri]
    assert main(["produce", *args, "--job", job_id, "--queue", queue]) == 0
    assert len(drain(redis_client, queue)) == 1
    assert main(["produce", "--resume", job_id]) == 0
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1] == job_id and "listing already complete" in err
    assert drain(redis_client, queue) == [] and JobStore(redis_client).get(job_id).total == 2


@pytest.mark.parametrize("argv, message", [
    (["--resume", "{job}-missing"], "no job"),
    (["s3://elsewhere/in/", "--resume", "{job}"], "lists s3://"),
])
def test_resume_errors(capsys, s3_client, s3_bucket, models_uri, queue, job_id, argv, message):
    put_objects(s3_client, s3_bucket, ["in/a.jpg"])
    assert main(["produce", f"s3://{s3_bucket}/in/", "--out", f"s3://{s3_bucket}/out", "--models", models_uri,
                 "--job", job_id, "--queue", queue]) == 0
    capsys.readouterr()
    assert main(["produce", *[a.replace("{job}", job_id) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
