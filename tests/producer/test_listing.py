"""Listing pieces: chunks, resuming a listing after a key (local and S3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from docmill.inputs import parse_include
from docmill.storage import LocalStorage, S3Storage
from producer.listing import chunked, iter_sources
from tests.producer.conftest import put_objects

ALL = parse_include("*")


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
