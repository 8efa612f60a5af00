"""What a job has to do: the sources under the input prefix, in listing order, in chunks, minus
those whose result is already current.

Everything here streams: a listing of 100 million keys is read page by page and handed on a
chunk at a time, so the producer's memory does not grow with the size of the prefix.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from docmill.messages import TaskItem
from docmill.storage import ObjectRef, S3Storage, Storage, StorageError, is_s3_uri, split_s3_uri

DEFAULT_INCLUDE = "*.jpg,*.jpeg,*.png,*.tif,*.tiff,*.bmp,*.webp,*.gif"
# S3 user metadata the worker writes on every result (boto3 shows it lower-cased, unprefixed).
META_SOURCE_ETAG = "source-etag"
META_MODELS = "docmill-models"
HEAD_THREADS = 8  # below botocore's default pool of 10 connections per client


class Include:
    """Glob patterns, case-insensitive. A pattern without '/' matches the file name; one with
    '/' matches the key relative to the input prefix. Compiled once: it runs on every key."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        if not patterns:
            raise ValueError("--include needs at least one pattern")
        self.patterns = patterns
        self._name_re = _compile([p for p in patterns if "/" not in p])
        self._key_re = _compile([p for p in patterns if "/" in p])

    def __call__(self, key: str) -> bool:
        name = key.rsplit("/", 1)[-1]
        return bool((self._name_re and self._name_re.match(name))
                    or (self._key_re and self._key_re.match(key)))


def _compile(patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), re.IGNORECASE)


def parse_include(text: str) -> Include:
    """'*.jpg, *.png' -> Include(('*.jpg', '*.png'))."""
    return Include(tuple(p.strip() for p in text.split(",") if p.strip()))


def iter_sources(storage: Storage, in_uri: str, include: Include,
                 start_after: str = "") -> Iterator[ObjectRef]:
    """Objects under `in_uri` that match `include`, in listing order, after `start_after`."""
    for ref in storage.iter_objects(in_uri, (), start_after=start_after):
        if include(ref.key):
            yield ref


def chunked(refs: Iterable[ObjectRef], size: int) -> Iterator[list[ObjectRef]]:
    """Consecutive groups of `size` references (the last may be shorter)."""
    chunk: list[ObjectRef] = []
    for ref in refs:
        chunk.append(ref)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class ResultCheck:
    """Says which items still need OCR: a result is current when it was made from the same
    source ETag by the same model version (the worker records both on every result)."""

    def __init__(self, storage: Storage, models_tag: str) -> None:
        self.storage = storage
        self.models_tag = models_tag
        self.pool = ThreadPoolExecutor(HEAD_THREADS, thread_name_prefix="docmill-head")

    def pending(self, items: list[TaskItem]) -> list[TaskItem]:
        """The items whose result is missing or stale; the checks run in parallel, as each
        is one round trip to storage."""
        current = list(self.pool.map(self._is_current, items))
        return [item for item, ok in zip(items, current) if not ok]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _is_current(self, item: TaskItem) -> bool:
        marks = self._marks(item.dst)
        return marks is not None and marks == (item.etag or "", self.models_tag)

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


def _json_marks(data: bytes) -> tuple[str, str]:
    """The same marks read from a result document, for storage without object metadata."""
    doc = json.loads(data)
    return doc["source"].get("etag") or "", f"{doc['models']['set']}@{doc['models']['version']}"
