"""docmill.storage: the same interface over local folders and a real S3 HTTP endpoint."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from docmill import storage
from docmill.settings import Settings
from docmill.storage import (
    LocalStorage,
    ObjectNotFound,
    ObjectRef,
    ObjectTooLarge,
    S3Storage,
    StorageError,
    is_s3_uri,
    iter_between,
    join_uri,
    key_under,
    open_storage,
    result_uri,
    split_s3_uri,
    written_by_docmill,
)

SUFFIXES = (".jpg", ".png")


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


# --- URIs -------------------------------------------------------------------------------------


def test_is_s3_uri() -> None:
    assert is_s3_uri("s3://bucket/key") and is_s3_uri("S3://bucket")
    assert not is_s3_uri("/data/s3://x") and not is_s3_uri("s3:/bucket")


@pytest.mark.parametrize(("uri", "expected"), [
    ("s3://bucket/a/b.jpg", ("bucket", "a/b.jpg")),
    ("s3://bucket", ("bucket", "")),
    ("s3://bucket/", ("bucket", "")),
    ("s3://my.bucket-1/dir/", ("my.bucket-1", "dir/")),
])
def test_split_s3_uri(uri: str, expected: tuple[str, str]) -> None:
    assert split_s3_uri(uri) == expected


@pytest.mark.parametrize(("uri", "message"), [
    ("s3://", "without a bucket"), ("s3:///key", "without a bucket"), ("/local/path", "not an s3"),
    ("s3://bad bucket/key", "invalid bucket"), ("s3://-bucket/key", "invalid bucket"),
])
def test_split_s3_uri_rejects(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_s3_uri(uri)


@pytest.mark.parametrize(("root", "rel", "expected"), [
    ("s3://b", "x/y.json", "s3://b/x/y.json"),
    ("s3://b/", "x.json", "s3://b/x.json"),
    ("s3://b/out", "x.json", "s3://b/out/x.json"),
    ("s3://b/out/", "/x.json", "s3://b/out/x.json"),
    ("/data/out", "a/b.json", "/data/out/a/b.json"),
    ("/data/out/", "/a/b.json", "/data/out/a/b.json"),
])
def test_join_uri(root: str, rel: str, expected: str) -> None:
    assert join_uri(root, rel) == expected


@pytest.mark.parametrize(("key", "expected"), [
    ("a/b.jpg", "a/b.jpg.json"),
    ("b.jpg", "b.jpg.json"),
    ("/abs/x.jpg", "abs/x.jpg.json"),
    ("///x.jpg", "x.jpg.json"),
    ("a//b/./c.jpg", "a/b/c.jpg.json"),
    ("my scans/page 1.jpg", "my scans/page 1.jpg.json"),
    ("文件/é ü.jpg", "文件/é ü.jpg.json"),
    ("..foo/bar...jpg", "..foo/bar...jpg.json"),
])
@pytest.mark.parametrize("out_root", ["/data/out", "s3://bucket/out"])
def test_result_uri(out_root: str, key: str, expected: str) -> None:
    assert result_uri(out_root, key) == f"{out_root}/{expected}"


@pytest.mark.parametrize("key", ["../x.jpg", "a/../../x.jpg", "a/..", "..", "", "/", "./", "a/\0b.jpg",
                                 os.fsdecode(b"a/\xff.jpg")])
@pytest.mark.parametrize("out_root", ["/data/out", "s3://bucket/out"])
def test_result_uri_refuses_unsafe_keys(out_root: str, key: str) -> None:
    with pytest.raises(ValueError):
        result_uri(out_root, key)


@pytest.mark.parametrize(("root", "uri", "expected"), [
    ("s3://b/in/out", "s3://b/in/out/a.jpg.pdf", "a.jpg.pdf"),
    ("s3://b/in/out/", "s3://b/in/out/sub/a.jpg.pdf", "sub/a.jpg.pdf"),
    ("s3://b", "s3://b/a.jpg", "a.jpg"),
    ("s3://b/in/out", "s3://b/in/out2/a.jpg", None),
    ("s3://b/in/out", "s3://b/in/out", None),
    ("s3://b/in/out", "s3://c/in/out/a.jpg", None),
    ("s3://b/in/out", "in/out/a.jpg", None),
    ("out", "./out/a.jpg.pdf", "a.jpg.pdf"),
    ("./out/", "out/sub/a.jpg.pdf", "sub/a.jpg.pdf"),
    ("out", "out2/a.jpg", None),
    ("out", "s3://b/out/a.jpg", None),
])
def test_key_under(root: str, uri: str, expected: str | None) -> None:
    assert key_under(root, uri) == expected


@pytest.mark.parametrize(("uri", "expected"), [
    ("out/a.jpg.pdf", True),  # --format pdf
    ("out/sub/scan.tif.png", True),  # --visualize
    ("out/doc.pdf/page-0001.png", True),  # a document's page picture
    ("out/mine.png", False),
    ("out/report.pdf", False),
    ("elsewhere/a.jpg.pdf", False),
])
def test_written_by_docmill_knows_its_results_by_their_names_in_out(uri: str, expected: bool) -> None:
    assert written_by_docmill("out", uri) is expected
    assert written_by_docmill("s3://b/out", f"s3://b/{uri}") is expected


def test_a_name_not_in_utf8_is_refused_by_its_bytes() -> None:
    with pytest.raises(ValueError, match=r"name 'a/\\xff\.jpg' is not UTF-8"):
        result_uri("/data/out", os.fsdecode(b"a/\xff.jpg"))


def test_backslashes_are_literal_on_s3() -> None:
    assert result_uri("s3://b/out", "a\\..\\b.jpg") == "s3://b/out/a\\..\\b.jpg.json"


@pytest.mark.skipif(os.sep != "/", reason="POSIX path semantics")
def test_backslashes_never_separate_local_paths(tmp_path: Path) -> None:
    out = tmp_path / "out"
    uri = result_uri(str(out), "..\\..\\evil.jpg")
    assert Path(uri).parent == out
    LocalStorage().write_bytes(uri, b"{}")
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["..\\..\\evil.jpg.json"]


def test_local_keys_with_an_os_separator_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where backslash is a separator (Windows), a key segment holding one would escape."""
    monkeypatch.setattr(storage, "_LOCAL_SEPARATORS", frozenset({"\\"}))
    with pytest.raises(ValueError, match="separator"):
        result_uri("/data/out", "a\\..\\..\\x.jpg")
    assert result_uri("s3://b", "a\\x.jpg") == "s3://b/a\\x.jpg.json"


@pytest.mark.parametrize("key", ["/etc/passwd", "a/../../b", "a/./../../b", "....//x", "x/../../../y", "\\..\\a"])
def test_local_results_stay_inside_the_out_root(tmp_path: Path, key: str) -> None:
    out = tmp_path / "out"
    try:
        uri = result_uri(str(out), key)
    except ValueError:
        return
    assert Path(os.path.realpath(uri)).is_relative_to(out)


def test_open_storage_picks_by_scheme() -> None:
    settings = Settings(s3_endpoint_url=None)
    assert isinstance(open_storage("/data/in", settings), LocalStorage)
    assert isinstance(open_storage("relative/in", settings), LocalStorage)
    with pytest.raises(ValueError, match="unsupported storage scheme"):
        open_storage("gs://bucket/x", settings)


# --- local ------------------------------------------------------------------------------------


def test_local_listing_is_recursive_sorted_and_case_insensitive(tmp_path: Path) -> None:
    make_tree(tmp_path, {"z.PNG": b"1", "a/b.jpg": b"22", "a/c.txt": b"3", "a/sub/d.JPG": b"4444",
                         "m/n/o.png": b"", "a.jpg": b"55555"})
    refs = list(LocalStorage().iter_objects(str(tmp_path), SUFFIXES))
    assert [r.key for r in refs] == ["a.jpg", "z.PNG", "a/b.jpg", "a/sub/d.JPG", "m/n/o.png"]
    st = (tmp_path / "a.jpg").stat()
    assert refs[0] == ObjectRef(str(tmp_path / "a.jpg"), "a.jpg", 5, f"5-{st.st_mtime_ns:x}")
    assert refs[3].size == 4 and Path(refs[3].uri).read_bytes() == b"4444"


def test_a_local_files_etag_changes_with_its_content_or_time_and_head_agrees(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"first")
    listed = next(LocalStorage().iter_objects(str(tmp_path), SUFFIXES)).etag
    assert listed and LocalStorage().head(str(path)).etag == listed
    assert next(LocalStorage().iter_objects(str(path), SUFFIXES)).etag == listed  # a file named alone
    path.write_bytes(b"other")  # same size
    os.utime(path, ns=(0, 1_000_000_000))
    assert LocalStorage().head(str(path)).etag not in (None, listed)


def test_local_listing_streams(tmp_path: Path) -> None:
    """Folders are walked one at a time: a file added to a later folder mid-listing shows up."""
    make_tree(tmp_path, {"a/1.jpg": b"x", "z/2.jpg": b"x"})
    it = LocalStorage().iter_objects(str(tmp_path), SUFFIXES)
    assert next(it).key == "a/1.jpg"
    (tmp_path / "z" / "3.jpg").write_bytes(b"x")
    assert [r.key for r in it] == ["z/2.jpg", "z/3.jpg"]


def test_local_slice_of_a_folder_is_its_names_from_first_to_last(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"page-{i:04d}.json": b"{}" for i in range(1, 31)}
              | {"page-0012.png": b"", "page-0012/page-0013.json": b"{}", "page-0012.jso": b""})
    refs = list(iter_between(LocalStorage(), str(tmp_path), (".json",), "page-0011.json", "page-0020.json"))
    assert [r.key for r in refs] == [f"page-{i:04d}.json" for i in range(11, 21)]


def test_local_root_that_is_a_file_yields_it(tmp_path: Path) -> None:
    make_tree(tmp_path, {"deep/scan.tiff": b"abc"})
    path = tmp_path / "deep" / "scan.tiff"
    refs = list(LocalStorage().iter_objects(str(path), SUFFIXES))
    assert refs == [ObjectRef(str(path), "scan.tiff", 3, f"3-{path.stat().st_mtime_ns:x}")]


def test_local_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        list(LocalStorage().iter_objects(str(tmp_path / "nope"), SUFFIXES))


def test_local_read(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.jpg": b"12345"})
    local = LocalStorage()
    assert local.read_bytes(str(tmp_path / "a.jpg")) == b"12345"
    assert local.read_bytes(str(tmp_path / "a.jpg"), max_bytes=5) == b"12345"


def test_local_read_errors_carry_result_codes(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.jpg": b"12345"})
    local = LocalStorage()
    with pytest.raises(ObjectTooLarge) as too_large:
        local.read_bytes(str(tmp_path / "a.jpg"), max_bytes=4)
    with pytest.raises(ObjectNotFound) as missing:
        local.read_bytes(str(tmp_path / "b.jpg"))
    with pytest.raises(StorageError) as folder:
        local.read_bytes(str(tmp_path))
    assert (too_large.value.code, missing.value.code, folder.value.code) == ("too_large", "not_found", "read_error")


def test_local_read_limit_holds_for_files_without_a_size(tmp_path: Path) -> None:
    """A FIFO reports size 0; the limit must still hold on what is actually read."""
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError):
            fifo.write_bytes(b"x" * 100)

    threading.Thread(target=feed, daemon=True).start()
    with pytest.raises(ObjectTooLarge):
        LocalStorage().read_bytes(str(fifo), max_bytes=10)


def test_local_write_creates_folders_and_replaces(tmp_path: Path) -> None:
    local = LocalStorage()
    uri = str(tmp_path / "out" / "a" / "b.jpg.json")
    local.write_bytes(uri, b'{"v": 1}')
    local.write_bytes(uri, b'{"v": 2}', metadata={"ignored": "locally"})
    assert Path(uri).read_bytes() == b'{"v": 2}'
    assert os.listdir(tmp_path / "out" / "a") == ["b.jpg.json"]  # no temp files left behind


def test_local_write_handles_names_at_the_length_limit(tmp_path: Path) -> None:
    uri = result_uri(str(tmp_path), "x" * 246 + ".jpg")  # result name: 255 bytes, NAME_MAX
    LocalStorage().write_bytes(uri, b"{}")
    assert Path(uri).read_bytes() == b"{}"


def test_local_write_keeps_umask_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    uri = str(tmp_path / "r.json")
    LocalStorage().write_bytes(uri, b"{}")
    assert stat.S_IMODE(os.stat(uri).st_mode) == 0o666 & ~umask


def test_local_write_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails before the rename leaves the old result whole and no temp file."""
    uri = tmp_path / "r.json"
    uri.write_bytes(b"old")

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(StorageError) as info:
        LocalStorage().write_bytes(str(uri), b"new" * 1000)
    assert info.value.code == "write_error"
    assert uri.read_bytes() == b"old" and os.listdir(tmp_path) == ["r.json"]


class BrokenSource(io.BytesIO):
    """A file that fails partway through being read, as a disk or a pipe can."""

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= 1 << 20:
            raise OSError(5, "Input/output error")
        return super().read(size)


def test_local_write_from_copies_a_file_from_where_it_stands_whole_or_nothing(tmp_path: Path) -> None:
    uri = tmp_path / "out" / "big.pdf"
    data = os.urandom(3 << 20)  # three chunks' worth
    source = io.BytesIO(b"skipped" + data)
    source.seek(len(b"skipped"))
    LocalStorage().write_from(str(uri), source, "application/pdf")
    assert uri.read_bytes() == data
    with pytest.raises(StorageError) as info:
        LocalStorage().write_from(str(uri), BrokenSource(b"new" * (1 << 20)), "application/pdf")
    assert info.value.code == "write_error"
    assert uri.read_bytes() == data and os.listdir(uri.parent) == ["big.pdf"]


def test_local_exists_and_head(tmp_path: Path) -> None:
    make_tree(tmp_path, {"d/a.jpg": b"123"})
    local = LocalStorage()
    assert local.exists(str(tmp_path / "d/a.jpg"))
    assert not local.exists(str(tmp_path / "d/b.jpg")) and not local.exists(str(tmp_path / "d"))
    path = tmp_path / "d/a.jpg"
    assert local.head(str(path)) == ObjectRef(str(path), "a.jpg", 3, f"3-{path.stat().st_mtime_ns:x}")
    with pytest.raises(ObjectNotFound):
        local.head(str(tmp_path / "d/b.jpg"))


# --- S3 over HTTP (moto server) ---------------------------------------------------------------


@pytest.fixture
def s3(s3_endpoint: str) -> S3Storage:
    return open_storage("s3://any", Settings(s3_endpoint_url=s3_endpoint))  # type: ignore[return-value]


def put_many(client, bucket: str, keys: list[str]) -> None:  # type: ignore[no-untyped-def]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))


@pytest.mark.services
def test_open_storage_reuses_one_client_per_endpoint(s3_endpoint: str, s3: S3Storage) -> None:
    assert isinstance(s3, S3Storage)
    assert open_storage("s3://other/x", Settings(s3_endpoint_url=s3_endpoint)) is s3


@pytest.mark.services
def test_s3_listing_pages_through_more_than_1000_objects(s3_endpoint: str, s3_client, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    keys = [f"imgs/{i:05d}.jpg" for i in range(1203)]
    put_many(s3_client, s3_bucket, keys + ["imgs/notes.txt", "imgs/sub/", "imgs2/x.jpg", "top.jpg"])
    s3 = S3Storage(s3_endpoint)  # its own client: the hook below must not outlive this test
    calls: list[str] = []
    s3.client.meta.events.register("after-call.s3.ListObjectsV2", lambda **kw: calls.append("list"))

    it = s3.iter_objects(f"s3://{s3_bucket}/imgs", SUFFIXES)
    first = next(it)
    assert len(calls) == 1  # streaming: the second page is not fetched before it is needed
    refs = [first, *it]
    assert len(calls) == 2
    assert [r.key for r in refs] == [k.removeprefix("imgs/") for k in keys]
    assert refs[0] == ObjectRef(f"s3://{s3_bucket}/imgs/00000.jpg", "00000.jpg", len(keys[0]),
                                hashlib.md5(keys[0].encode()).hexdigest())


@pytest.mark.services
def test_s3_a_slice_of_a_folder_lists_only_that_slice(s3_endpoint: str, s3_client, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    keys = [f"pages/page-{i:04d}.json" for i in range(1, 1204)]
    put_many(s3_client, s3_bucket, [*keys, "pages/page-1150.png", "pages/sub/page-1150.json", "pagesx/page-1150.json"])
    s3 = S3Storage(s3_endpoint)  # its own client: the hook below must not outlive this test
    calls: list[str] = []
    s3.client.meta.events.register("after-call.s3.ListObjectsV2", lambda **kw: calls.append("list"))
    refs = list(iter_between(s3, f"s3://{s3_bucket}/pages", (".json",), "page-1101.json", "page-1180.json"))
    assert [r.key for r in refs] == [k.removeprefix("pages/") for k in keys[1100:1180]]
    assert len(calls) == 1  # a listing from the top would have taken two pages of 1,000


@pytest.mark.services
def test_s3_listing_whole_bucket_and_case_insensitive_suffixes(s3: S3Storage, s3_client, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    put_many(s3_client, s3_bucket, ["a/B.JPG", "c.Png", "d.txt"])
    for root in (f"s3://{s3_bucket}", f"s3://{s3_bucket}/"):
        assert [r.key for r in s3.iter_objects(root, SUFFIXES)] == ["a/B.JPG", "c.Png"]
    assert [r.key for r in s3.iter_objects(f"s3://{s3_bucket}/a/", ())] == ["B.JPG"]


@pytest.mark.services
def test_s3_root_naming_one_object_yields_it(s3: S3Storage, s3_client, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    put_many(s3_client, s3_bucket, ["in/scan.tif", "in/scan.tif.bak/x.jpg"])
    refs = list(s3.iter_objects(f"s3://{s3_bucket}/in/scan.tif", SUFFIXES))
    assert [(r.uri, r.key, r.size) for r in refs] == [(f"s3://{s3_bucket}/in/scan.tif", "scan.tif", 11)]


@pytest.mark.services
def test_s3_missing_bucket_is_not_found(s3: S3Storage) -> None:
    with pytest.raises(ObjectNotFound):
        list(s3.iter_objects("s3://no-such-bucket-here/x", SUFFIXES))
    with pytest.raises(ObjectNotFound):
        s3.read_bytes("s3://no-such-bucket-here/x.jpg")


@pytest.mark.services
def test_s3_write_read_round_trip_with_metadata(s3: S3Storage, s3_client, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    uri = result_uri(f"s3://{s3_bucket}/out", "dir/页 1.jpg")
    s3.write_bytes(uri, b'{"ok": true}', "application/json", {"docmill-models": "pp-ocrv4@1", "source-etag": "abc"})
    assert s3.read_bytes(uri) == b'{"ok": true}'
    head = s3_client.head_object(Bucket=s3_bucket, Key="out/dir/页 1.jpg.json")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"docmill-models": "pp-ocrv4@1", "source-etag": "abc"}
    s3.write_bytes(uri.replace(".json", ".png"), b"\x89PNG", "image/png")
    assert s3_client.head_object(Bucket=s3_bucket, Key="out/dir/页 1.jpg.png")["ContentType"] == "image/png"


@pytest.mark.services
def test_s3_read_errors_carry_result_codes(s3: S3Storage, s3_client, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3_client.put_object(Bucket=s3_bucket, Key="big.jpg", Body=b"x" * 5000)
    assert s3.read_bytes(f"s3://{s3_bucket}/big.jpg", max_bytes=5000) == b"x" * 5000
    with pytest.raises(ObjectTooLarge) as too_large:
        s3.read_bytes(f"s3://{s3_bucket}/big.jpg", max_bytes=4999)
    with pytest.raises(ObjectNotFound) as missing:
        s3.read_bytes(f"s3://{s3_bucket}/nope.jpg")
    assert (too_large.value.code, missing.value.code) == ("too_large", "not_found")


@pytest.mark.services
def test_s3_exists_and_head(s3: S3Storage, s3_client, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3_client.put_object(Bucket=s3_bucket, Key="a/b.jpg", Body=b"123")
    assert s3.exists(f"s3://{s3_bucket}/a/b.jpg") and not s3.exists(f"s3://{s3_bucket}/a/c.jpg")
    assert s3.head(f"s3://{s3_bucket}/a/b.jpg") == ObjectRef(
        f"s3://{s3_bucket}/a/b.jpg", "b.jpg", 3, hashlib.md5(b"123").hexdigest())
    with pytest.raises(ObjectNotFound):
        s3.head(f"s3://{s3_bucket}/a/c.jpg")


@pytest.mark.services
def test_s3_failed_write_is_a_write_error(s3: S3Storage) -> None:
    with pytest.raises(StorageError) as info:
        s3.write_bytes("s3://no-such-bucket-here/r.json", b"{}")
    assert (info.value.code, info.value.permanent) == ("write_error", True)


@pytest.mark.services
@pytest.mark.parametrize("size", [1000, 11 << 20])
def test_s3_write_from_uploads_a_file_in_parts_with_its_metadata(
        s3: S3Storage, s3_client, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, size: int) -> None:  # type: ignore[no-untyped-def]
    """Past one part's size (5 MB here, S3's least) the file goes up in parts, each read as
    it is sent; the object is whole and carries its content type and metadata either way."""
    monkeypatch.setattr(storage, "UPLOAD_PART_BYTES", 5 << 20)
    data = os.urandom(size)
    s3.write_from(f"s3://{s3_bucket}/out/doc.pdf", io.BytesIO(data), "application/pdf", {"source-etag": "abc"})
    assert s3.read_bytes(f"s3://{s3_bucket}/out/doc.pdf") == data
    head = s3_client.head_object(Bucket=s3_bucket, Key="out/doc.pdf")
    assert (head["ContentType"], head["Metadata"]) == ("application/pdf", {"source-etag": "abc"})
    parts = head["ETag"].strip('"').partition("-")[2]  # a multipart upload's ETag ends in -<parts>
    assert parts == ("3" if size > 5 << 20 else "")


@pytest.mark.services
@pytest.mark.parametrize("size", [1000, 11 << 20])
def test_s3_write_from_to_a_missing_bucket_fails_at_once(s3: S3Storage, monkeypatch: pytest.MonkeyPatch,
                                                         size: int) -> None:
    monkeypatch.setattr(storage, "UPLOAD_PART_BYTES", 5 << 20)
    with pytest.raises(StorageError) as info:
        s3.write_from("s3://no-such-bucket-here/doc.pdf", io.BytesIO(bytes(size)), "application/pdf")
    assert (info.value.code, info.value.permanent) == ("write_error", True)


@pytest.mark.services
def test_s3_counts_the_retries_boto3_makes_inside_a_call(s3_endpoint: str, s3_client, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    """Every 500, 503 SlowDown and reset the proxy injects is one request boto3 re-sends;
    the client's count (what `docmill_retries_total{what="storage_request"}` shows) is
    exactly that number, and every call still succeeds."""
    from tests.chaos.conftest import FaultProxy

    proxy = FaultProxy(s3_endpoint, rate=0.3, kinds=("500", "503", "reset"), seed=5)
    try:
        s3 = S3Storage(proxy.url)
        for i in range(10):
            s3.write_bytes(f"s3://{s3_bucket}/r/{i}.json", b"{}")
            assert s3.read_bytes(f"s3://{s3_bucket}/r/{i}.json") == b"{}"
    finally:
        proxy.close()
    injected = sum(proxy.injected.values())
    assert injected >= 4
    assert s3.retries == injected


def test_read_start_gives_the_first_bytes_only(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"%PDF-1.7\n" + b"x" * 5000)
    assert LocalStorage().read_start(str(path), 16) == b"%PDF-1.7\nxxxxxxx"
    (tmp_path / "short").write_bytes(b"II*")
    assert LocalStorage().read_start(str(tmp_path / "short"), 16) == b"II*"
    with pytest.raises(ObjectNotFound):
        LocalStorage().read_start(str(tmp_path / "nope"), 16)


def test_s3_read_start_is_a_ranged_read(s3: S3Storage, s3_client, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    s3_client.put_object(Bucket=s3_bucket, Key="blob", Body=b"%PDF-1.7\n" + b"x" * 5000)
    s3_client.put_object(Bucket=s3_bucket, Key="empty", Body=b"")
    assert s3.read_start(f"s3://{s3_bucket}/blob", 16) == b"%PDF-1.7\nxxxxxxx"
    assert s3.read_start(f"s3://{s3_bucket}/empty", 16) == b""
    with pytest.raises(StorageError) as caught:
        s3.read_start(f"s3://{s3_bucket}/nope", 16)
    assert caught.value.code == "not_found"
