"""worker.task in-process, against the real Redis job state and local storage: counting once
per task whatever the redeliveries, the redelivery cap, giving up a task, and storage
failures (permanent ones fail their items at once; others make the task retry)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import cv2
import numpy as np
import pikepdf
import pytest

from docmill.documents import output_uri, page_result_uri
from docmill.jobs import JobStore, connect
from docmill.messages import ModelsRef, OcrTask, TaskItem
from docmill.settings import Settings
from worker.host import WorkerHost
from worker.middleware.retries import TransientError
from worker.task import fail_task, run_task
from tests.pages import page_image, tiff

pytestmark = [pytest.mark.services, pytest.mark.models, pytest.mark.slow]


@pytest.fixture
def rig(engine_for, redis_url, tmp_path):
    _, model_set = engine_for("pp-ocrv4-ch")
    jobs = JobStore(connect(redis_url))
    host = WorkerHost(Settings(device="cpu", cache_dir=tmp_path / "cache"), jobs, device="cpu",
                      max_delay_ms=5, redelivery_cap=2)
    job = f"t-{uuid.uuid4().hex[:10]}"
    jobs.create(job, str(tmp_path / "in"), str(tmp_path / "out"), str(model_set.root), model_set.version)
    yield host, jobs, job, ModelsRef(uri=str(model_set.root), version=model_set.version), tmp_path
    host.close()
    jobs.r.delete(*jobs.r.scan_iter(f"docmill:job:{job}*"))


def _images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        img = np.full((100, 420, 3), 255, np.uint8)
        cv2.putText(img, f"LINE {i}", (20, 70), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 3)
        cv2.imwrite(str(folder / name), img)


def _task(job: str, seq: int, models: ModelsRef, root: Path, names: list[str], out: str = "out") -> OcrTask:
    items = [TaskItem(src=str(root / "in" / n), dst=str(root / out / f"{n}.json")) for n in names]
    return OcrTask(job=job, seq=seq, models=models, out_prefix=str(root / out), items=items)


def _enqueued(jobs: JobStore, job: str, n: int) -> None:
    jobs.record_enqueued(job, items=n, tasks=1, skipped=0, cursor="x")
    jobs.finish_listing(job)


def test_a_redelivered_task_is_counted_once_and_finishes_the_job(rig):
    host, jobs, job, models, root = rig
    names = ["a.png", "b.png", "c.png"]
    _images(root / "in", names)
    _enqueued(jobs, job, 3)
    task = _task(job, 0, models, root, names)
    assert run_task(host, task) == {"done": 3, "failed": 0}
    assert run_task(host, task) == {"done": 3, "failed": 0}  # a redelivery: items run alone
    state = jobs.get(job)
    assert (state.done, state.failed, state.finished) == (3, 0, True)
    for name in names:
        doc = json.loads((root / "out" / f"{name}.json").read_text())
        assert doc["lines"] and doc["lines"][0]["text"].startswith("LINE")
    assert (root / "out" / "_docmill" / "jobs" / f"{job}.json").is_file()


def test_an_item_workers_keep_dying_on_is_given_up_as_worker_lost(rig):
    host, jobs, job, models, root = rig
    names = ["good.png", "poison.png"]
    _images(root / "in", names)
    _enqueued(jobs, job, 2)
    task = _task(job, 0, models, root, names)
    jobs.count_delivery(job, 0)  # the first delivery, whose worker died
    poison = str(root / "in" / "poison.png")
    for _ in range(host.redelivery.cap):  # each death left the poison item's start counted
        jobs.count_item_start(job, poison)
    assert run_task(host, task) == {"done": 1, "failed": 1}
    lost = json.loads((root / "out" / "poison.png.json").read_text())
    assert lost["error"]["code"] == "worker_lost"
    assert json.loads((root / "out" / "good.png.json").read_text())["lines"]
    assert jobs.get(job).failure_codes == {"worker_lost": 1}


def test_a_task_given_up_writes_engine_error_results(rig):
    host, jobs, job, models, root = rig
    _enqueued(jobs, job, 2)
    task = _task(job, 0, models, root, ["x.png", "y.png"])
    assert fail_task(host, task, "the model set would not load") == {"done": 0, "failed": 2}
    doc = json.loads((root / "out" / "x.png.json").read_text())
    assert doc["error"]["code"] == "engine_error" and "would not load" in doc["error"]["message"]
    assert jobs.get(job).finished


def test_an_output_that_can_never_be_written_fails_its_items_without_a_retry(rig):
    host, jobs, job, models, root = rig
    _images(root / "in", ["a.png"])
    (root / "blocked").write_text("a file where the output folder should be")
    _enqueued(jobs, job, 1)
    task = _task(job, 0, models, root, ["a.png"], out="blocked")
    assert run_task(host, task, final_try=False) == {"done": 0, "failed": 1}
    state = jobs.get(job)
    assert state.failure_codes == {"write_error": 1} and state.finished


def test_storage_trouble_a_retry_may_cure_retries_the_task_then_records_it(rig):
    host, jobs, job, models, root = rig
    _images(root / "in", ["a.png"])
    (root / "in" / "folder.png").mkdir()  # reading it fails with an OSError that is not permanent
    _enqueued(jobs, job, 2)
    task = _task(job, 0, models, root, ["a.png", "folder.png"])
    with pytest.raises(TransientError):
        run_task(host, task, final_try=False)
    assert jobs.get(job).done == 0  # nothing counted before the retry
    retry = _task(job, 0, models, root, ["a.png", "folder.png"])
    jobs.r.hdel(jobs.key(job) + ":attempts", "task:0")  # Celery's retry is a new delivery of the same task
    assert run_task(host, retry, final_try=True) == {"done": 1, "failed": 1}
    assert jobs.get(job).failure_codes == {"read_error": 1}


def _again(jobs: JobStore, job: str, root: Path, models: ModelsRef) -> str:
    """A second job over the same folders, as after a first job that stopped part way."""
    again = f"{job}-again"
    jobs.create(again, str(root / "in"), str(root / "out"), models.uri, models.version)
    return again


def _scan_task(job: str, models: ModelsRef, root: Path, skip_existing: bool, name: str = "scan.tif",
               pages: tuple[int, int] = (1, 4), page_count: int = 4) -> OcrTask:
    item = TaskItem(src=str(root / "in" / name), dst=str(root / "out" / f"{name}.json"), etag="e1",
                    pages=pages, page_count=page_count)
    return OcrTask(job=job, seq=0, models=models, out_prefix=str(root / "out"), skip_existing=skip_existing,
                   items=[item])


def test_a_skip_existing_task_keeps_the_current_pages_of_its_range(rig):
    """A document's page range run again by a --skip-existing job reads only the page whose
    result is gone: the others are kept as written (not written again), and the job counts
    every page as done, three of them kept."""
    host, jobs, job, models, root = rig
    (root / "in").mkdir(parents=True)
    pages = [page_image(f"PAGE {n}", size=(420, 140), seed=n) for n in range(1, 5)]
    (root / "in" / "scan.tif").write_bytes(tiff(pages))
    dst = str(root / "out" / "scan.tif.json")
    for name in (job, again := _again(jobs, job, root, models)):
        jobs.register_document(name, dst, 4)
        _enqueued(jobs, name, 1)
    run_task(host, _scan_task(job, models, root, skip_existing=False))
    results = [Path(page_result_uri(dst, n, 4)) for n in range(1, 5)]
    Path(dst).unlink()  # as if the first job had stopped before its third page
    results[2].unlink()
    before = {n: (p.stat().st_mtime_ns, p.read_bytes()) for n, p in enumerate(results) if n != 2}

    run_task(host, _scan_task(again, models, root, skip_existing=True))
    assert {n: (p.stat().st_mtime_ns, p.read_bytes()) for n, p in enumerate(results) if n != 2} == before
    assert json.loads(results[2].read_text())["lines"]
    whole = json.loads(Path(dst).read_text())
    assert [page["index"] for page in whole["pages"]] == [1, 2, 3, 4]
    state = jobs.get(again)
    assert (state.done, state.pages_done, state.kept, state.finished) == (1, 4, 3, True)


def test_pages_past_9999_are_named_in_page_order_and_a_rerun_of_their_range_keeps_them(rig):
    """A 10,001-page PDF's pages get five-digit names, all of them (page 9,999 too), so its
    folder lists in page order; a --skip-existing rerun of the range finds and keeps them."""
    host, jobs, job, models, root = rig
    (root / "in").mkdir(parents=True)
    pdf = pikepdf.new()
    for _ in range(10_001):
        pdf.add_blank_page(page_size=(300, 150))
    pdf.save(root / "in" / "long.pdf")
    for name in (job, again := _again(jobs, job, root, models)):
        jobs.register_document(name, str(root / "out" / "long.pdf.json"), 10_001)
        _enqueued(jobs, name, 1)
    span = {"name": "long.pdf", "pages": (9_999, 10_001), "page_count": 10_001}
    run_task(host, _scan_task(job, models, root, skip_existing=False, **span))
    assert sorted(p.name for p in (root / "out" / "long.pdf").iterdir()) == [
        "page-09999.json", "page-10000.json", "page-10001.json"]
    run_task(host, _scan_task(again, models, root, skip_existing=True, **span))
    assert (jobs.get(again).pages_done, jobs.get(again).kept) == (3, 3)


def test_a_formats_only_image_keeps_its_result_and_gets_its_file(rig):
    """An image enqueued `formats_only` (its result current but for the --format file) is not
    read again: its result stays as written and the file is made from it."""
    host, jobs, job, models, root = rig
    _images(root / "in", ["a.png"])
    _enqueued(jobs, job, 1)
    run_task(host, _task(job, 0, models, root, ["a.png"]))
    result = root / "out" / "a.png.json"
    before = (result.stat().st_mtime_ns, result.read_bytes())

    again = _again(jobs, job, root, models)
    _enqueued(jobs, again, 1)
    item = TaskItem(src=str(root / "in" / "a.png"), dst=str(result), formats_only=True)
    task = OcrTask(job=again, seq=0, models=models, out_prefix=str(root / "out"), formats=["txt"],
                   skip_existing=True, items=[item])
    assert run_task(host, task) == {"done": 1, "failed": 0}
    assert (result.stat().st_mtime_ns, result.read_bytes()) == before
    assert Path(output_uri(str(result), "txt")).read_text().startswith("LINE 0")
    state = jobs.get(again)
    assert (state.kept, state.finished) == (1, True)
