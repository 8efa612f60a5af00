"""One source image on its way through either runner: what to read and where its result
goes (a docmill.task/v1 `TaskItem`, for `docmill run` too), then read, hashed and decoded,
or a coded error.

Shared by the in-process runner and the Celery worker, so both give the same error codes
for the same bad input.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np

from docmill.messages import TaskItem
from docmill.result import ResultError
from docmill.settings import Settings
from docmill.storage import StorageError, open_storage
from worker.engine.decode import ImageDecodeError, decode_image


@dataclass
class DecodedItem:
    item: TaskItem
    size: int | None = None
    sha256: str | None = None
    image: np.ndarray | None = None
    error: ResultError | None = None
    decode_ms: float = 0.0
    permanent: bool = True  # False: a storage error that a retry of the task may cure
    width: int | None = None  # kept after the pixels are released
    height: int | None = None

    def release(self) -> None:
        """Drop the pixels once the engine is done with them: only a few batches' worth of
        decoded pages may be held at once."""
        self.image = None


def load_item(item: TaskItem, settings: Settings) -> DecodedItem:
    """Read and decode `item.src`; any failure is recorded on the item, never raised."""
    decoded = DecodedItem(item=item)
    start = time.perf_counter()
    try:
        data = open_storage(item.src, settings).read_bytes(item.src, max_bytes=settings.max_image_bytes)
        decoded.size, decoded.sha256 = len(data), hashlib.sha256(data).hexdigest()
        decoded.image = decode_image(data, settings.max_image_pixels)
        decoded.height, decoded.width = (int(n) for n in decoded.image.shape[:2])
    except StorageError as exc:
        decoded.error = ResultError(code=exc.code, message=str(exc)[:500])
        decoded.permanent = exc.permanent
    except ImageDecodeError as exc:
        decoded.error = ResultError(code=exc.code, message=str(exc)[:500])
    decoded.decode_ms = (time.perf_counter() - start) * 1000
    return decoded
