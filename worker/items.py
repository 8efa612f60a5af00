"""One source image on its way through either runner: what to read and where its result
goes (a docmill.task/v1 `TaskItem`, for `docmill run` too), then read, hashed and decoded,
or a coded error.

Shared by the in-process runner and the Celery worker, so both give the same error codes
for the same bad input.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from docmill.messages import TaskItem
from docmill.result import DocumentPage, OcrResult, ResultError
from docmill.settings import Settings
from docmill.storage import StorageError, open_storage
from worker.budget import PixelTicket
from worker.engine.pipeline import PageLines
from pages.decode import ImageDecodeError, decode_image, file_pixels, image_sizes

# Blocks until a page of this width and height may be decoded; what it returns is held until
# the engine is done with the page.
Admit = Callable[[int, int], PixelTicket]


@dataclass(frozen=True)
class Unread:
    """An image or a document's page that a stopping run did not begin to read: it has no
    result, and is left for a later run."""

    item: TaskItem
    page: bool = False


@dataclass(frozen=True)
class Kept:
    """An image whose stored result a resumed run keeps (docmill.resultcheck.kept_result): it
    is not read again, and only its missing --format files are made, from that result and
    the file's bytes."""

    item: TaskItem
    result: OcrResult
    data: bytes


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
    ticket: PixelTicket | None = None  # the page's share of the pixel budget while it is held
    data: bytes | None = None  # the file as read, kept only while a --format file needs it
    page: DocumentPage | None = None  # which page of a document this is
    scale: tuple[float, float] = (1.0, 1.0)  # the file's pixels per pixel of `image` (x, y): read reduced or stretched
    given: PageLines | None = None  # lines not for OCR: a PDF page's own text (--pdf-text)

    def release(self) -> None:
        """Drop the pixels once the engine is done with them, and give their share of the
        budget back so the next page can be decoded."""
        self.image = None
        if self.ticket is not None:
            self.ticket.release()


def read_image_bytes(item: TaskItem, settings: Settings) -> bytes:
    """The image file's bytes, refused past max_image_bytes. Raises StorageError."""
    return open_storage(item.src, settings).read_bytes(item.src, max_bytes=settings.max_image_bytes)


def load_item(item: TaskItem, settings: Settings, admit: Admit, data: bytes | None = None) -> DecodedItem:
    """Read `item.src` (unless its bytes are given), wait for the budget to admit its size
    (read from the header), then decode it. Any failure is recorded on the item, never
    raised, and holds no budget."""
    decoded = DecodedItem(item=item)
    start = time.perf_counter()
    try:
        if data is None:
            data = read_image_bytes(item, settings)
        decoded.size, decoded.sha256, decoded.data = len(data), hashlib.sha256(data).hexdigest(), data
        full, (width, height) = image_sizes(data, settings.max_image_pixels)
        waited = time.perf_counter()
        decoded.ticket = admit(width, height)
        start += time.perf_counter() - waited  # time spent waiting for the budget is not decoding
        decoded.image = decode_image(data, settings.max_image_pixels, engine_size=True)
        # read at half size or stretched square: results are given in the file's own pixels
        (decoded.width, decoded.height), decoded.scale = file_pixels(data, full, (width, height), decoded.image)
    except StorageError as exc:
        decoded.error = ResultError(code=exc.code, message=str(exc)[:500])
        decoded.permanent = exc.permanent
    except ImageDecodeError as exc:
        decoded.error = ResultError(code=exc.code, message=str(exc)[:500])
    if decoded.error is not None:
        decoded.release()
    decoded.decode_ms = (time.perf_counter() - start) * 1000
    return decoded


Loader = Callable[..., DecodedItem]  # load_item's signature
