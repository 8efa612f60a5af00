"""The result check that decides what --skip-existing skips, for the producer and `docmill run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docmill.messages import TaskItem
from docmill.result import DocumentPage, Line, ModelsInfo, OcrResult, ResultError, SourceInfo, Word
from docmill.resultcheck import ResultCheck, current_page
from docmill.storage import LocalStorage, S3Storage


def _tree(root: Path, keys: list[str]) -> None:
    for key in keys:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(b"x")


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
                for ref in LocalStorage().iter_objects(str(src), ())]

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
    names = ("both", "pdf-only", "none", "stale", "missing")
    (tmp_path / "stale.jpg.json").write_text(json.dumps({**doc, "source": {"uri": "x", "etag": "e0"}}))
    items = [_item(str(tmp_path / f"{name}.jpg.json"), "e1") for name in names]
    for formats, pending in (((), ["stale", "missing"]), (("pdf",), ["none", "stale", "missing"]),
                             (("pdf", "txt"), ["pdf-only", "none", "stale", "missing"])):
        check = ResultCheck(LocalStorage(), "set@v1", formats)
        try:
            assert [Path(i.dst).name.split(".")[0] for i in check.pending(items)] == pending
            _, lacking = check.split(items)  # only a --format file missing: a run may keep the result
            assert sorted(Path(dst).name.split(".")[0] for dst in lacking) == sorted(set(pending) - {"stale", "missing"})
        finally:
            check.close()


def test_a_resumed_documents_page_is_kept_only_when_current_read_the_same_way_and_not_failed(tmp_path: Path):
    def page(name: str, etag: str = "e1", version: str = "v1", text: str = "ocr", failed: bool = False,
             words: bool = False) -> TaskItem:
        box = [[0, 0], [9, 0], [9, 9], [0, 9]]
        line = Line(text="word", score=0.9, box=box, words=[Word(text="word", score=0.9, box=box)] if words else None)
        result = OcrResult(source=SourceInfo(uri="doc.pdf", etag=etag), models=ModelsInfo(set="set", version=version),
                           providers=[], page=DocumentPage(index=3, count=9, text=text),  # type: ignore[arg-type]
                           lines=[] if failed else [line],
                           error=ResultError(code="decode_error", message="bad page") if failed else None)
        (tmp_path / name).write_bytes(result.to_json_bytes())
        return _item(str(tmp_path / name), "e1")

    storage = LocalStorage()
    kept = current_page(storage, page("same.json"), "set@v1", "ocr")
    assert kept is not None and (kept.index, kept.status, kept.text, kept.lines) == (3, "ok", "ocr", 1)
    assert current_page(storage, page("embedded.json", text="embedded"), "set@v1", "embedded") is not None
    assert current_page(storage, page("words.json", words=True), "set@v1", "ocr", words=True) is not None
    assert current_page(storage, page("no_words.json"), "set@v1", "ocr", words=True) is None  # hOCR would guess them
    for item, text in [(page("etag.json", etag="e0"), "ocr"), (page("models.json", version="v0"), "ocr"),
                       (page("failed.json", failed=True), "ocr"), (page("other_way.json"), "embedded"),
                       (_item(str(tmp_path / "missing.json"), "e1"), "ocr")]:
        assert current_page(storage, item, "set@v1", text) is None, item.dst
    (tmp_path / "broken.json").write_text("{")
    assert current_page(storage, _item(str(tmp_path / "broken.json"), "e1"), "set@v1", "ocr") is None
