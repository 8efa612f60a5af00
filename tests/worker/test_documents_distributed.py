"""Documents through the distributed path: `docmill produce` splits each document into
page-range tasks, two `docmill worker` processes share them, every page gets its result and
each document one result, written once (S3 versioning counts the writes), and the job state
counts documents and pages."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from docmill.documents import page_result_uri, validate_document
from docmill.jobs import JobStore
from docmill.result import validate_result
from tests.chaos.conftest import (Published, RedisServer, base_env, produce, publish_model_set, small_page,
                                  start_worker, wait_finished)
from tests.pages import encrypted, numbered_pdf, numbered_scan_pdf, page_image, text_pdf, tiff

pytestmark = [pytest.mark.models, pytest.mark.slow]

QUEUE = "documents"
PAGES = 30
SCANS = 100
PER_TASK = 8


@pytest.fixture(scope="module")
def rig(s3_endpoint: str, tmp_path_factory) -> Any:
    import boto3

    tmp = tmp_path_factory.mktemp("docs")
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    redis = RedisServer(tmp / "redis").start()
    published: Published = publish_model_set(client)
    buckets = {"in": f"in-{uuid.uuid4().hex[:8]}", "out": f"out-{uuid.uuid4().hex[:8]}"}
    for bucket in buckets.values():
        client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=buckets["out"], VersioningConfiguration={"Status": "Enabled"})
    env = base_env(redis.url, s3_endpoint, tmp / "cache")
    workers = [start_worker(env, QUEUE, tmp / f"worker{i}.log") for i in range(2)]
    yield {"client": client, "redis": redis, "published": published, "buckets": buckets, "env": env,
           "workers": workers}
    for worker in workers:
        worker.stop()
    redis.stop()


@pytest.fixture(scope="module")
def job(rig: Any) -> tuple[str, JobStore]:
    files = {"long.pdf": numbered_pdf(PAGES), "frames.tif": tiff([page_image(f"FRAME {i}") for i in range(3)]),
             "locked.pdf": encrypted(text_pdf([["secret"]])), "photo.png": small_page(7),
             "scans.pdf": numbered_scan_pdf(SCANS)}
    for key, body in files.items():
        rig["client"].put_object(Bucket=rig["buckets"]["in"], Key=f"in/{key}", Body=body)
    job_id = produce(rig["env"], f"s3://{rig['buckets']['in']}/in/", "--out", f"s3://{rig['buckets']['out']}/out",
                     "--models", rig["published"].uri, "--queue", QUEUE, "--pages-per-task", str(PER_TASK),
                     "--format", "json,txt,hocr,alto,pdf")
    store = JobStore(rig["redis"].client())
    wait_finished(store, job_id, 300, rig["workers"])
    return job_id, store


def read(rig: Any, key: str) -> dict:
    body = rig["client"].get_object(Bucket=rig["buckets"]["out"], Key=key)["Body"].read()
    return json.loads(body)


def writes(rig: Any, key: str) -> int:
    listing = rig["client"].list_object_versions(Bucket=rig["buckets"]["out"], Prefix=key)
    return sum(1 for v in listing.get("Versions", ()) if v["Key"] == key)


def test_a_split_document_gets_every_page_and_one_document_result(rig, job):
    whole = read(rig, "out/long.pdf.json")
    validate_document(whole)
    assert (whole["kind"], whole["page_count"], whole["error"]) == ("pdf", PAGES, None)
    assert [p["index"] for p in whole["pages"]] == list(range(1, PAGES + 1))
    assert all(p["status"] == "ok" and p["lines"] == 1 for p in whole["pages"])
    for number in range(1, PAGES + 1):
        result = read(rig, page_result_uri("out/long.pdf.json", number, PAGES))
        validate_result(result)
        assert result["page"]["index"] == number and result["page"]["count"] == PAGES
        assert result["lines"][0]["text"].replace(" ", "").endswith(f"{number:04d}"), result["lines"]
    assert writes(rig, "out/long.pdf.json") == 1


def test_the_job_counts_documents_and_pages(rig, job):
    job_id, store = job
    state = store.get(job_id)
    assert (state.total, state.done, state.failed) == (5, 4, 1)  # locked.pdf cannot be read
    pages = PAGES + 3 + SCANS
    assert (state.documents, state.documents_done, state.pages, state.pages_done, state.pages_failed) == (
        3, 3, pages, pages, 0)
    assert state.tasks_enqueued == 1 + -(-PAGES // PER_TASK) + 1 + -(-SCANS // PER_TASK)
    summary = read(rig, f"out/_docmill/jobs/{job_id}.json")
    assert summary["pages"] == pages and summary["failure_codes"] == {"encrypted": 1}


def test_whole_items_beside_split_ones(rig, job):
    locked = read(rig, "out/locked.pdf.json")
    validate_document(locked)
    assert locked["error"]["code"] == "encrypted" and locked["pages"] == []
    frames = read(rig, "out/frames.tif.json")
    assert frames["kind"] == "tiff" and [p["status"] for p in frames["pages"]] == ["ok"] * 3
    photo = read(rig, "out/photo.png.json")
    validate_result(photo)
    assert photo["lines"][0]["text"].replace(" ", "") == "Item0007"


def test_status_shows_documents_and_pages(rig, job, capsys):
    from docmill.cli import main

    job_id, _ = job
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DOCMILL_BROKER_URL", rig["redis"].url)
        assert main(["status", job_id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (data["documents"], data["pages"], data["pages_done"]) == (3, PAGES + 3 + SCANS, PAGES + 3 + SCANS)
    assert data["pages_per_s"] > 0


def test_the_assembled_searchable_pdf_matches_its_page_results(rig, job, tmp_path):
    """Written once, by the worker that finished the last page: as many pages as the scan,
    each page's text layer the text of its page result."""
    import subprocess

    assert writes(rig, "out/scans.pdf.pdf") == 1
    (tmp_path / "scans.pdf").write_bytes(rig["client"].get_object(
        Bucket=rig["buckets"]["out"], Key="out/scans.pdf.pdf")["Body"].read())
    info = subprocess.run(["pdfinfo", str(tmp_path / "scans.pdf")], capture_output=True, text=True, check=True)
    assert int(re.search(r"^Pages:\s+(\d+)$", info.stdout, re.M).group(1)) == SCANS
    texts = []
    for number in range(1, SCANS + 1):
        page = read(rig, page_result_uri("out/scans.pdf.json", number, SCANS))
        extracted = subprocess.run(["pdftotext", "-f", str(number), "-l", str(number), str(tmp_path / "scans.pdf"),
                                    "-"], capture_output=True, text=True, check=True).stdout
        assert extracted.split() == " ".join(line["text"] for line in page["lines"]).split(), number
        texts.append("\n".join(line["text"] for line in page["lines"]))
    assert read_text(rig, "out/scans.pdf.txt").split() == "\n".join(texts).split()
    hocr = read_text(rig, "out/scans.pdf.hocr")
    assert hocr.count("class='ocr_page'") + hocr.count('class="ocr_page"') == SCANS
    assert read_text(rig, "out/scans.pdf.alto.xml").count("<Page ") == SCANS


def test_no_format_files_for_a_document_that_cannot_be_read(rig, job):
    listing = rig["client"].list_objects_v2(Bucket=rig["buckets"]["out"], Prefix="out/locked.pdf")
    assert [o["Key"] for o in listing.get("Contents", ())] == ["out/locked.pdf.json"]


def read_text(rig: Any, key: str) -> str:
    return rig["client"].get_object(Bucket=rig["buckets"]["out"], Key=key)["Body"].read().decode()


def test_worker_logs_hold_no_tracebacks(rig, job):
    for worker in rig["workers"]:
        assert "Traceback" not in Path(worker.log).read_text(errors="replace"), worker.tail()
