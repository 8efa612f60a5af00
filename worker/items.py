"""One source image on its way into the engine: read, hashed and decoded, or a coded error.

Shared by the in-process runner and the Celery worker so both give the same error codes
for the same bad input.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np

from docmill.result import ResultError
from docmill.settings import Settings
from docmill.storage import ObjectRef, StorageError, open_storage
from worker.engine.decode import ImageDecodeError, decode_image


@dataclass
class DecodedItem:
    ref: ObjectRef
    out_uri: str
    size: int | None = None
    sha256: str | None = None
    image: np.ndarray | None = None
    error: ResultError | None = None
    decode_ms: float = 0.0


def load_item(ref: ObjectRef, out_uri: str, settings: Settings) -> DecodedItem:
    """Read and decode `ref`; any failure is recorded on the item, never raised."""
    item = DecodedItem(ref=ref, out_uri=out_uri)
    start = time.perf_counter()
    try:
        data = open_storage(ref.uri, settings).read_bytes(ref.uri, max_bytes=settings.max_image_bytes)
        item.size, item.sha256 = len(data), hashlib.sha256(data).hexdigest()
        item.image = decode_image(data, settings.max_image_pixels)
    except StorageError as exc:
        item.error = ResultError(code=exc.code, message=str(exc)[:500])
    except ImageDecodeError as exc:
        item.error = ResultError(code=exc.code, message=str(exc)[:500])
    item.decode_ms = (time.perf_counter() - start) * 1000
    return item
