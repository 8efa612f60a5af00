"""One write path for both runners: a result (and its `--visualize` picture) to its `dst`,
with its storage metadata, retried with backoff when storage fails in a way a retry may cure.

A permanent failure (a missing bucket, access denied, a path that can never be a file) is
raised at once: retrying it only burns time, and the caller fails the item with `write_error`
instead of looping.
"""

from __future__ import annotations

import logging
import time
from typing import BinaryIO

import numpy as np

from docmill.documents import DocumentResult, picture_uri
from docmill.result import OcrResult, storage_metadata
from docmill.settings import Settings
from docmill.storage import StorageError, open_storage
from worker.metrics import Metrics

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 4
BACKOFF_S = 0.25  # doubled per attempt: 0.25, 0.5, 1 s


class ResultWriter:
    def __init__(self, settings: Settings, metrics: Metrics, attempts: int = WRITE_ATTEMPTS,
                 backoff_s: float = BACKOFF_S):
        self.settings = settings
        self.metrics = metrics
        self.attempts = attempts
        self.backoff_s = backoff_s

    def write(self, result: OcrResult, dst: str, etag: str | None, picture: np.ndarray | None = None) -> None:
        """Write `result` to `dst` (and a PNG beside it when `picture` is given). Raises the
        last StorageError when every attempt failed or the failure is permanent."""
        start = time.perf_counter()
        metadata = storage_metadata(result, etag)
        self._with_retries(dst, result.to_json_bytes(), "application/json", metadata)
        if picture is not None:
            from worker.visualize import render_png

            png_uri = picture_uri(dst)
            self._with_retries(png_uri, render_png(picture, result.lines), "image/png", metadata)
        self.metrics.observe_stage("write", time.perf_counter() - start)

    def write_output(self, data: bytes | BinaryIO, uri: str, content_type: str, result: OcrResult | DocumentResult,
                     etag: str | None) -> None:
        """One `--format` file, with its result's storage metadata: its bytes, or a file it was
        made in (a document's searchable PDF is as large as its scan), read from its start at
        each attempt. Raises like write."""
        self._with_retries(uri, data, content_type, storage_metadata(result, etag))

    def write_document(self, result: DocumentResult, dst: str, etag: str | None) -> None:
        """A document result to `dst`, like a page's; raises StorageError the same way."""
        self._with_retries(dst, result.to_json_bytes(), "application/json", storage_metadata(result, etag))

    def _with_retries(self, uri: str, data: bytes | BinaryIO, content_type: str, metadata: dict[str, str]) -> None:
        storage = open_storage(uri, self.settings)
        for attempt in range(1, self.attempts + 1):
            try:
                if isinstance(data, bytes):
                    storage.write_bytes(uri, data, content_type, metadata)
                else:
                    data.seek(0)
                    storage.write_from(uri, data, content_type, metadata)
                return
            except StorageError as exc:
                if exc.permanent or attempt == self.attempts:
                    log.error("cannot write %s: %s", uri, exc)
                    raise
                self.metrics.count("retries", "storage_write")
                log.warning("write of %s failed (%s); retry %d of %d", uri, exc, attempt, self.attempts - 1)
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
