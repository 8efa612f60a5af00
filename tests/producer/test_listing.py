"""Listing pieces: include patterns, chunks, resuming a listing after a key (local and S3),
and the result check that decides what --skip-existing skips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docmill.messages import TaskItem
from docmill.storage import LocalStorage, S3Storage
from producer.listing import ResultCheck, chunked, iter_sources, parse_include
from tests.producer.conftest import put_objects

ALL = parse_include("*")


def test_include_patterns_match_names_or_whole_keys_case_insensitively():
    include = parse_include(" *.jpg , scans/*.png,,")
    assert include.patterns == ("*.jpg", "scans/*.png")
    cases = {"a.jpg": True, "deep/b.JPG": True, "c.jpgx": False, "x.png": False,
             "scans/x.png": True, "scans/y/z.PNG": True, "a/scans/x.png": False}
    assert {key: include(key) for key in cases} == cases
    with pytest.raises(ValueError):
        parse_include(" , ")


def test_chunked_keeps_order_and_a_short_last_chunk():
    assert list(chunked(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []


def _tree(root: Path, keys: list[str]) -> None:
    for key in keys:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(b"x")


def test_local_listing_resumes_after_any_key(tmp_path: Path):
    _tree(tmp_path, ["z.jpg", "a.jpg", "a/b.jpg", "a/sub/c.jpg", "a/sub/d.jpg", "m/n/o.jpg", "b/e.jpg"])
    keys = [r.key for r in iter_sources(LocalStorage(), str(tmp_path), ALL)]
    assert keys == ["a.jpg", "z.jpg", "a/b.jpg", "a/sub/c.jpg", "a/sub/d.jpg", "b/e.jpg", "m/n/o.jpg"]
    for i, key in enumerate(keys):
        assert [r.key for r in iter_sources(LocalStorage(), str(tmp_path), ALL, key)] == keys[i + 1:]


def test_local_resume_after_a_vanished_key_continues_in_order(tmp_path: Path):
    _tree(tmp_path, ["a/1.jpg", "a/3.jpg", "c/1.jpg"])
    assert [r.key for r in iter_sources(LocalStorage(), str(tmp_path), ALL, "a/2.jpg")] == ["a/3.jpg", "c/1.jpg"]
    assert [r.key for r in iter_sources(LocalStorage(), str(tmp_path), ALL, "b/9.jpg")] == ["c/1.jpg"]


@pytest.mark.services
def test_s3_listing_resumes_after_a_key(s3_endpoint, s3_client, s3_bucket):
    keys = [f"in/{i:04d}.jpg" for i in range(1100)] + ["in/zz/last.jpg", "in2/no.jpg"]
    put_objects(s3_client, s3_bucket, keys)
    s3 = S3Storage(s3_endpoint)
    after = [r.key for r in iter_sources(s3, f"s3://{s3_bucket}/in/", ALL, "0005.jpg")]
    assert after == [f"{i:04d}.jpg" for i in range(6, 1100)] + ["zz/last.jpg"]
    assert [r.key for r in iter_sources(s3, f"s3://{s3_bucket}/in", ALL, "zz/last.jpg")] == []
    single = f"s3://{s3_bucket}/in/0001.jpg"
    assert [r.key for r in iter_sources(s3, single, ALL)] == ["0001.jpg"]
    assert list(iter_sources(s3, single, ALL, "0001.jpg")) == []


def _item(dst: str, etag: str | None) -> TaskItem:
    return TaskItem(src="s3://in/x.jpg", dst=dst, etag=etag, bytes=1)


@pytest.mark.services
def test_result_check_reads_s3_metadata(s3_endpoint, s3_client, s3_bucket):
    def result(key: str, etag: str, models: str) -> str:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"{}",
                             Metadata={"source-etag": etag, "docmill-models": models})
        return f"s3://{s3_bucket}/{key}"

    items = [_item(result("r/same.json", "e1", "set@v1"), "e1"),
             _item(result("r/etag.json", "e0", "set@v1"), "e1"),
             _item(result("r/models.json", "e1", "set@v0"), "e1"),
             _item(f"s3://{s3_bucket}/r/missing.json", "e1"),
             _item(f"s3://{s3_bucket}/r/nometa.json", "e1")]
    s3_client.put_object(Bucket=s3_bucket, Key="r/nometa.json", Body=b"{}")
    check = ResultCheck(S3Storage(s3_endpoint), "set@v1")
    try:
        assert [i.dst.rsplit("/", 1)[1] for i in check.pending(items)] == [
            "etag.json", "models.json", "missing.json", "nometa.json"]
    finally:
        check.close()


def test_result_check_reads_local_result_documents(tmp_path: Path):
    def result(name: str, etag: str | None, version: str) -> str:
        doc = {"source": {"uri": "x", "etag": etag}, "models": {"set": "set", "version": version}}
        (tmp_path / name).write_text(json.dumps(doc))
        return str(tmp_path / name)

    items = [_item(result("same.json", None, "v1"), None), _item(result("old.json", None, "v0"), None),
             _item(result("etag.json", "e0", "v1"), "e1"), _item(str(tmp_path / "missing.json"), None)]
    (tmp_path / "broken.json").write_text("{")
    items.append(_item(str(tmp_path / "broken.json"), None))
    check = ResultCheck(LocalStorage(), "set@v1")
    try:
        assert [Path(i.dst).name for i in check.pending(items)] == [
            "old.json", "etag.json", "missing.json", "broken.json"]
    finally:
        check.close()


def test_a_local_source_rewritten_after_its_result_is_pending_again(tmp_path: Path):
    """A local file has no ETag of its own: its listing gives one from its size and
    modification time, so a page rescanned in place is redone and an untouched one is not."""
    src, out = tmp_path / "in", tmp_path / "out"
    _tree(src, ["kept.jpg", "rescanned.jpg"])
    out.mkdir()

    def listed() -> list[TaskItem]:
        return [TaskItem(src=ref.uri, dst=str(out / f"{ref.key}.json"), etag=ref.etag, bytes=ref.size)
                for ref in iter_sources(LocalStorage(), str(src), ALL)]

    for item in listed():  # the results a worker wrote, with the source ETag it was given
        doc = {"source": {"uri": item.src, "etag": item.etag}, "models": {"set": "set", "version": "v1"}}
        Path(item.dst).write_text(json.dumps(doc))
    (src / "rescanned.jpg").write_bytes(b"a new scan")
    check = ResultCheck(LocalStorage(), "set@v1")
    try:
        assert [Path(i.src).name for i in check.pending(listed())] == ["rescanned.jpg"]
    finally:
        check.close()


def test_a_result_without_every_asked_format_is_pending(tmp_path: Path):
    """A job asking for --format pdf,txt after a JSON-only job must make the files it asks
    for: a current JSON result alone no longer counts as done."""
    doc = {"source": {"uri": "x", "etag": "e1"}, "models": {"set": "set", "version": "v1"}}
    for name in ("both", "pdf-only", "none"):
        (tmp_path / f"{name}.jpg.json").write_text(json.dumps(doc))
    (tmp_path / "both.jpg.pdf").write_bytes(b"%PDF")
    (tmp_path / "both.jpg.txt").write_text("text")
    (tmp_path / "pdf-only.jpg.pdf").write_bytes(b"%PDF")
    items = [_item(str(tmp_path / f"{name}.jpg.json"), "e1") for name in ("both", "pdf-only", "none")]
    for formats, pending in (((), []), (("pdf",), ["none"]), (("pdf", "txt"), ["pdf-only", "none"])):
        check = ResultCheck(LocalStorage(), "set@v1", formats)
        try:
            assert [Path(i.dst).name.split(".")[0] for i in check.pending(items)] == pending
        finally:
            check.close()


def test_prefetched_keeps_order_raises_errors_and_stops_early():
    from producer.listing import prefetched

    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise OSError("listing broke")

    it = prefetched(failing(), depth=2)
    assert next(it) == 1
    with pytest.raises(OSError, match="listing broke"):
        next(it)

    pulled: list[int] = []

    def endless():
        n = 0
        while True:
            pulled.append(n)
            yield n
            n += 1

    it = prefetched(endless(), depth=2)
    assert next(it) == 0
    it.close()  # the consumer left: the thread stops instead of listing forever
    import time

    time.sleep(0.3)
    settled = len(pulled)
    time.sleep(0.3)
    assert len(pulled) == settled <= 5


@pytest.mark.services
def test_listing_without_last_modified_is_otherwise_the_same(s3_endpoint, s3_client, s3_bucket):
    from producer.listing import drop_last_modified

    put_objects(s3_client, s3_bucket, [f"in/{i}.jpg" for i in range(5)])
    s3 = S3Storage(s3_endpoint)
    before = list(iter_sources(s3, f"s3://{s3_bucket}/in/", ALL))
    drop_last_modified(s3)
    drop_last_modified(s3)  # once per client, however often it is called
    seen: list[dict] = []
    s3.client.meta.events.register("after-call.s3.ListObjectsV2", lambda parsed, **kw: seen.append(parsed))
    assert list(iter_sources(s3, f"s3://{s3_bucket}/in/", ALL)) == before
    assert seen and all("LastModified" not in obj for obj in seen[0]["Contents"])
