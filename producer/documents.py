"""Splitting a document into page-range items, so one long PDF spreads over many workers.

The producer reads each document once to count its pages (in the page source's render child,
under the same time and memory limits as the workers), then makes one item per
`pages_per_task` pages. A document it cannot count (encrypted, corrupt, unreadable) stays one
whole item: the worker that takes it writes the error result, so nothing is left out. A
one-page TIFF is an image (pages.tiff.reads_as_image) and stays one item too. A name with
no image suffix that an --include took in (a hash-named blob) is sniffed first from its
first bytes, so an image among them is not fetched whole here.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass

from docmill.inputs import is_document_name
from docmill.messages import TaskItem
from docmill.settings import Settings
from docmill.storage import Storage, StorageError
from pages.document import DocumentError, PageLimits, descriptor_path
from pages.source import SNIFF_BYTES, open_document, sniff_kind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DocumentSplit:
    """The items a document becomes; `page_count` None when it stays whole."""

    items: list[TaskItem]
    page_count: int | None = None


def split_document(item: TaskItem, storage: Storage, settings: Settings, pages_per_task: int) -> DocumentSplit:
    """`item` as page ranges of at most `pages_per_task` pages each, 1-based and inclusive."""
    count = count_pages(item, storage, settings)
    if count is None:
        return DocumentSplit([item])
    ranges = [(first, min(first + pages_per_task - 1, count)) for first in range(1, count + 1, pages_per_task)]
    return DocumentSplit([item.model_copy(update={"pages": r, "page_count": count}) for r in ranges], count)


def count_pages(item: TaskItem, storage: Storage, settings: Settings) -> int | None:
    """The document's page count, or None when it is no multi-page document or cannot be
    read here (the worker gives that its own result)."""
    with tempfile.TemporaryFile(prefix="docmill-count-") as copy:  # no name: nothing left if killed
        try:
            if not is_document_name(item.src) and sniff_kind(storage.read_start(item.src, SNIFF_BYTES)) == "image":
                return None  # a blob with no document suffix, and no document in its first bytes
            storage.read_into(item.src, copy, max_bytes=settings.max_document_bytes)
            copy.flush()
            with open_document(descriptor_path(copy.fileno()), PageLimits.from_settings(settings)) as document:
                return None if document.is_image else document.page_count
        except (StorageError, DocumentError) as exc:
            log.warning("%s stays one item, for the worker to report: %s", item.src, exc)
            return None
