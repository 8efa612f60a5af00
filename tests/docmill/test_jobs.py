"""Job state against a real Redis: counts, redelivery dedupe, one finisher, status fields."""

import pytest

from docmill.jobs import JobNotFound, JobStore, connect

pytestmark = pytest.mark.services


@pytest.fixture
def store(redis_url, job_id):
    client = connect(redis_url)
    yield JobStore(client)
    for key in client.scan_iter(f"docmill:job:{job_id}*"):
        client.delete(key)


def test_counts_and_single_finisher(store, job_id):
    store.create(job_id, "s3://in/p/", "s3://out/p/", "s3://m/set", "v1")
    store.record_enqueued(job_id, items=3, tasks=1, skipped=1, cursor="p/c.jpg")
    store.record_enqueued(job_id, items=2, tasks=1, skipped=0, cursor="p/e.jpg")
    assert store.record_task(job_id, 0, {"s3://in/p/b.jpg": "decode_error"}, done=2) == 1
    assert store.record_task(job_id, 0, {"s3://in/p/b.jpg": "decode_error"}, done=2) == 0  # redelivered
    assert store.finish_listing(job_id) is False
    assert store.record_task(job_id, 1, {}, done=2) == 2  # the last task completes the job
    state = store.get(job_id)
    assert (state.total, state.done, state.failed, state.skipped, state.pending) == (6, 4, 1, 1, 0)
    assert state.finished and state.cursor == "p/e.jpg"
    assert state.failure_codes == {"decode_error": 1}
    summary = store.summary(job_id)
    assert summary["failures"] == {"s3://in/p/b.jpg": "decode_error"}
    assert summary["models"] == {"uri": "s3://m/set", "version": "v1"}


def test_not_finished_until_listing_done(store, job_id):
    store.create(job_id, "in/", "out/", "m", "v")
    store.record_enqueued(job_id, items=1, tasks=1, skipped=0, cursor="a")
    assert store.record_task(job_id, 0, {}, done=1) == 1
    assert not store.get(job_id).finished
    assert store.finish_listing(job_id) is True
    assert store.get(job_id).finished


def test_duplicate_job_and_unknown_job(store, job_id):
    store.create(job_id, "in/", "out/", "m", "v")
    with pytest.raises(ValueError, match="already exists"):
        store.create(job_id, "in/", "out/", "m", "v")
    with pytest.raises(JobNotFound):
        store.get(job_id + "-missing")


def test_only_the_task_that_records_a_documents_last_page_is_told_to_write_it(store, job_id):
    """Whatever the order the range tasks are counted in, exactly one call learns that it
    completed the document; a redelivered task is counted nowhere and completes nothing; the
    document is counted once, and only then does the job finish."""
    from docmill.jobs import TaskPages

    store.create(job_id, "s3://in/", "s3://out/", "s3://m/set", "v1")
    store.register_document(job_id, "s3://out/a.pdf.json", 4)
    store.register_document(job_id, "s3://out/a.pdf.json", 4)  # a resumed producer: no double count
    store.record_enqueued(job_id, items=1, tasks=2, skipped=0, cursor="a.pdf")
    store.finish_listing(job_id)

    def pages(*numbers: int) -> TaskPages:
        return TaskPages(done=len(numbers), summaries={"s3://out/a.pdf.json": {n: f'{{"index": {n}}}' for n in numbers}})

    assert store.record_task_pages(job_id, 1, {}, done=0, failed=0, pages=pages(3, 4)) == (1, [])
    assert store.record_task_pages(job_id, 0, {}, done=0, failed=0, pages=pages(1, 2)) == (1, ["s3://out/a.pdf.json"])
    assert store.record_task_pages(job_id, 0, {}, done=0, failed=0, pages=pages(1, 2)) == (0, [])
    assert store.documents_to_finish(job_id, ["s3://out/a.pdf.json"]) == ["s3://out/a.pdf.json"]
    assert sorted(store.document_pages(job_id, "s3://out/a.pdf.json")) == [1, 2, 3, 4]
    state = store.get(job_id)
    assert (state.documents, state.pages, state.pages_done, state.finished) == (1, 4, 4, False)
    assert store.record_document(job_id, "s3://out/a.pdf.json", "s3://in/a.pdf", None) == 2
    assert store.record_document(job_id, "s3://out/a.pdf.json", "s3://in/a.pdf", None) == 0
    assert store.documents_to_finish(job_id, ["s3://out/a.pdf.json"]) == []
    state = store.get(job_id)
    assert (state.done, state.documents_done, state.finished) == (1, 1, True)


def test_an_items_death_count_keeps_a_copy_that_died_while_another_finished(store, job_id):
    """Two copies of a task start the same item; one dies, the other gets an outcome: the
    death still counts through later outcomes, and ends never take a count below zero."""
    store.create(job_id, "in/", "out/", "m", "v")
    assert [store.count_item_start(job_id, "in/x.png") for _ in range(2)] == [1, 2]
    store.count_item_end(job_id, "in/x.png")  # one copy's outcome; the other copy's worker died
    assert store.count_item_start(job_id, "in/x.png") == 2  # that death, and this start
    store.count_item_end(job_id, "in/x.png")
    assert store.count_item_start(job_id, "in/x.png") == 2
    for _ in range(3):
        store.count_item_end(job_id, "in/y.png")
    assert store.count_item_start(job_id, "in/y.png") == 1
