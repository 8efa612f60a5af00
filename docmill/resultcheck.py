"""Which results are already current, for `docmill produce` and `docmill run --skip-existing`
alike: one rule for what "done" means, wherever a job runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from pydantic import ValidationError

from docmill.documents import PageSummary, output_uri
from docmill.messages import TaskItem
from docmill.result import META_MODELS, META_SOURCE_ETAG, OcrResult, TextSource, models_tag
from docmill.storage import S3Storage, Storage, StorageError, is_s3_uri, split_s3_uri

HEAD_THREADS = 8  # below botocore's default pool of 10 connections per client


class ResultCheck:
    """Says which items still need OCR: a result is current when it was made from the same
    source ETag by the same model version (the worker records both on every result), and
    every `--format` file the job asks for lies beside it."""

    def __init__(self, storage: Storage, models_tag: str, formats: Sequence[str] = ()) -> None:
        self.storage = storage
        self.models_tag = models_tag
        self.formats = tuple(formats)
        self.pool = ThreadPoolExecutor(HEAD_THREADS, thread_name_prefix="docmill-head")

    def pending(self, items: list[TaskItem]) -> list[TaskItem]:
        """The items whose result is missing or stale; the checks run in parallel, as each
        is one round trip to storage."""
        return self.split(items)[0]

    def split(self, items: list[TaskItem]) -> tuple[list[TaskItem], set[str]]:
        """pending's items, and the results (`dst`) among them that are current but for a
        --format file: what a run may keep (kept_result) instead of reading the item again."""
        states = list(self.pool.map(self._state, items))
        lacking = {item.dst for item, state in zip(items, states) if state == "lacking"}
        return [item for item, state in zip(items, states) if state != "current"], lacking

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _state(self, item: TaskItem) -> str:
        """"current"; "lacking": made from the same source by the same models, but without
        every --format file; or "stale": missing, or made from another source or models."""
        if self._marks(item.dst) != (item.etag or "", self.models_tag):
            return "stale"
        return "current" if all(self._exists(output_uri(item.dst, fmt)) for fmt in self.formats) else "lacking"

    def _exists(self, uri: str) -> bool:
        try:
            return self.storage.exists(uri)
        except StorageError:
            return False

    def _marks(self, dst: str) -> tuple[str, str] | None:
        """(source etag, models tag) recorded on an existing result, or None."""
        try:
            if is_s3_uri(dst) and isinstance(self.storage, S3Storage):
                return self._s3_marks(dst)
            return _json_marks(self.storage.read_bytes(dst))
        except (StorageError, ValueError, KeyError, TypeError):
            return None

    def _s3_marks(self, dst: str) -> tuple[str, str] | None:
        from botocore.exceptions import ClientError

        bucket, key = split_s3_uri(dst)
        try:
            meta = self.storage.client.head_object(Bucket=bucket, Key=key).get("Metadata", {})  # type: ignore[attr-defined]
        except ClientError:
            return None
        return meta.get(META_SOURCE_ETAG, ""), meta.get(META_MODELS, "")


def kept_result(storage: Storage, item: TaskItem, tag: str, words: bool = False) -> OcrResult | None:
    """The stored result of an image or page where a run may keep it instead of reading the
    item again (a resumed document, --format files added later): made from the same source
    ETag by the same models (`tag`), as any current result is; with word boxes where the run
    needs them (`words`: hOCR, ALTO and the PDF place words, and would guess them from the
    line otherwise); and not failed, for a failed item is worth reading again. None otherwise."""
    try:
        result = OcrResult.model_validate_json(storage.read_bytes(item.dst))
    except (StorageError, ValidationError):
        return None
    marks = (result.source.etag or "", models_tag(result.models.set, result.models.version))
    if result.error is not None or marks != (item.etag or "", tag):
        return None
    recognised = result.page is None or result.page.text == "ocr"  # a PDF's own text has no word boxes
    if words and recognised and any(line.words is None for line in result.lines):
        return None
    return result


def current_page(storage: Storage, item: TaskItem, tag: str, text: TextSource,
                 words: bool = False) -> PageSummary | None:
    """The summary of a document page's kept_result, where it was read the way the run reads
    that page (`text`: OCR, or its PDF text layer as --pdf-text says). None otherwise."""
    result = kept_result(storage, item, tag, words)
    if result is None or result.page is None or result.page.text != text:
        return None
    return PageSummary.of(result)


def _json_marks(data: bytes) -> tuple[str, str]:
    """The same marks read from a result document, for storage without object metadata."""
    doc = json.loads(data)
    return doc["source"].get("etag") or "", models_tag(doc["models"]["set"], doc["models"]["version"])
