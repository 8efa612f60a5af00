"""The one item path both runners share: read and decode on the I/O pool, the dynamic
batcher, the result, the write with retries. A document item (worker/documents.py) becomes
its pages, each on this same path to its own result, then one `DocumentPart`.

Memory stays bounded by the process's pixel budget (worker.budget): a page is decoded only
once the budget admits it, and its pixels and budget share are released as soon as the
engine is done with it. Outcomes come back in input order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Union

import numpy as np

from docmill.documents import WORD_FORMATS, OutputFormat, PageSummary, PdfText, page_folder
from docmill.messages import TaskItem
from docmill.options import EngineOptions
from docmill.result import ModelsInfo, OcrResult, ResultError, TextSource, models_tag
from docmill.resultcheck import current_page, kept_result
from docmill.settings import Settings
from docmill.storage import ObjectNotFound, StorageError, iter_between, join_uri, open_storage
from worker.batcher import DynamicBatcher
from worker.budget import PixelBudget, PixelTicket
from worker.documents import DocumentPart, DocumentReader, DocumentSpool, is_document_item
from worker.engine.pipeline import PageLines, page_pixels
from worker.items import Admit, DecodedItem, Kept, Loader, Unread, load_item, read_image_bytes
from worker.results import build_result
from worker.writer import ResultWriter

if TYPE_CHECKING:
    from worker.deliverables import DeliverableWriter

# Items of one call started ahead of the one whose outcome is due. Not a memory bound (the
# pixel budget is that): it keeps the bookkeeping of a long run of tiny images finite.
MAX_ITEMS_AHEAD = 64


@dataclass
class Outcome:
    """What became of one image or document page: its result, and whether that result
    reached storage."""

    result: OcrResult
    write_error: StorageError | None = None
    retryable: bool = False  # a storage failure (read or write) that a later try may cure
    kept: bool = False  # an earlier run's result, kept: only --format files were made (Kept)

    def page_summary(self) -> PageSummary:
        """How its document result lists this page (a document's page only)."""
        return PageSummary.of(self.result, "write_error" if self.write_error else None)

    @property
    def key(self) -> str:
        """What the job's failure list names it by: the source, and the page of a document."""
        page = self.result.page
        return self.result.source.uri + (f"#page={page.index}" if page else "")

    @property
    def code(self) -> str | None:
        """The item's error code as the job counts it: its result's, or `write_error` when
        the result itself could not be stored."""
        if self.write_error is not None:
            return "write_error"
        return self.result.error.code if self.result.error else None


@dataclass(frozen=True)
class RunContext:
    """What every item of one call shares."""

    options: EngineOptions
    models: ModelsInfo
    providers: list[str]
    keep_pixels: bool = False  # --visualize draws on the page after the engine is done
    pdf_text: PdfText = "ocr"  # what to do with PDF pages that already have a text layer
    formats: tuple[OutputFormat, ...] = ()  # files beside each image's result (documents': the caller's)
    reuse_pages: bool = False  # keep a document's pages whose results serve (--skip-existing)
    formats_lacking: frozenset[str] = frozenset()  # results current but for a --format file: kept, files made
    stopping: Callable[[], bool] | None = None  # true once the run is to read no more (a signal came)


Event = Union[Outcome, DocumentPart, Unread]


def options_for(options: EngineOptions, formats: Sequence[OutputFormat]) -> EngineOptions:
    """The engine options a run with these --format files needs: word boxes for any that
    place words."""
    return options.merged({"word_boxes": True}) if WORD_FORMATS & set(formats) else options


class ItemFlow:
    def __init__(self, batcher: DynamicBatcher, writer: ResultWriter, io: ThreadPoolExecutor,
                 settings: Settings, budget: PixelBudget, load: Loader = load_item,
                 spool: DocumentSpool | None = None):
        self.batcher = batcher
        self.writer = writer
        self.io = io
        self.settings = settings
        self.budget = budget
        self.load = load
        self.spool = spool or DocumentSpool(settings)

    @cached_property
    def deliverables(self) -> DeliverableWriter:
        """The --format writers, imported on first use (pikepdf and the rest cost every run's
        start-up otherwise)."""
        from worker.deliverables import DeliverableWriter

        return DeliverableWriter(self.writer, self.spool)

    def run(self, items: Iterable[TaskItem], context: RunContext, ahead: int = MAX_ITEMS_AHEAD) -> Iterator[Event]:
        """Each image's and page's outcome, in input order, and after a document item's last
        page its DocumentPart; at most `ahead` of them started (and their pixels within the
        budget). Documents are opened as the window reaches them. Once `context.stopping`,
        what has not begun to be read is Unread, and no more is started."""
        window: deque[_Pending] = deque()
        try:
            for pending in self._pending(items, context):
                if len(window) >= max(ahead, 1):
                    yield window.popleft().settle()
                window.append(pending)
            while window:
                yield window.popleft().settle()
        finally:  # an abandoned run (an exception, a caller that stops) leaves no render child behind
            for pending in window:
                pending.abandon()

    def _pending(self, items: Iterable[TaskItem], context: RunContext) -> Iterator[_Pending]:
        admit = lambda w, h: self._admit(w, h, context)  # noqa: E731
        for item in items:
            if not is_document_item(item):
                yield _Pending(self._start(self.io.submit(self._read, item, context, admit), context))
                continue
            reader = DocumentReader(item, self.spool, self.settings, context.pdf_text, context.stopping)
            reader.open()
            if reader.is_single_image:
                data = reader.read_whole()
                reader.close()
                yield _Pending(self._start(self.io.submit(self._read, item, context, admit, data), context))
                continue
            if context.reuse_pages and reader.document is not None and reader.error is None:
                reader.reuse_current(self._current_page(context), self.io, self._stored_pages(reader))
            try:
                for number in reader.to_read:
                    if context.stopping is not None and context.stopping():
                        reader.stop_reading()
                        break
                    yield _Pending(self._start(reader.submit_page(self.io, number, admit), context), reader)
            except GeneratorExit:  # the run was abandoned before this document's end was queued
                reader.close()
                raise
            yield _Pending(None, reader)

    def _read(self, item: TaskItem, context: RunContext, admit: Admit,
              data: bytes | None = None) -> DecodedItem | Unread | Kept:
        """The image loaded; Unread when the run is stopping before it began; Kept when its
        stored result serves (a resumed run that adds --format files)."""
        if context.stopping is not None and context.stopping():
            return Unread(item)
        kept = self._kept(item, context, data) if item.dst in context.formats_lacking else None
        return kept or self.load(item, self.settings, admit, data)

    def _kept(self, item: TaskItem, context: RunContext, data: bytes | None) -> Kept | None:
        """The image's stored result and bytes, where kept_result keeps the result; None when
        not, or when the file cannot be read (then it is read as any image, and fails so)."""
        tag = models_tag(context.models.set, context.models.version)
        result = kept_result(open_storage(item.dst, self.settings), item, tag, context.options.word_boxes)
        if result is None:
            return None
        try:
            data = data if data is not None else read_image_bytes(item, self.settings)
        except StorageError:
            return None
        return Kept(item, result, data)

    def _stored_pages(self, reader: DocumentReader) -> set[str] | None:
        """The page results stored for the pages a document item covers, from one listing of
        just their span of the folder (page names sort in page order), so that a document
        never read before costs no read per page, and each range of a long split document
        lists only its own. None when the folder cannot be listed (credentials that may read
        but not list)."""
        folder = page_folder(reader.item.dst)
        first, last = (reader.page_item(n).dst.rsplit("/", 1)[1] for n in (reader.numbers[0], reader.numbers[-1]))
        storage = open_storage(folder, self.settings)
        try:
            return {join_uri(folder, ref.key) for ref in iter_between(storage, folder, (".json",), first, last)}
        except ObjectNotFound:
            return set()
        except StorageError:
            return None

    def _current_page(self, context: RunContext) -> Callable[[TaskItem, TextSource], PageSummary | None]:
        """A page's stored result, when current (docmill.resultcheck.current_page)."""
        tag, words = models_tag(context.models.set, context.models.version), context.options.word_boxes
        return lambda item, text: current_page(open_storage(item.dst, self.settings), item, tag, text, words)

    def _start(self, loading: Future, context: RunContext) -> Future:
        done: Future = Future()
        loading.add_done_callback(_guarded(done, lambda f: self._loaded(f.result(), context, done)))
        return done

    def _admit(self, width: int, height: int, context: RunContext) -> PixelTicket:
        return self.budget.acquire(page_pixels(width, height, context.options))

    def _loaded(self, decoded: DecodedItem | Unread | Kept, context: RunContext, done: Future) -> None:
        if isinstance(decoded, Unread):
            done.set_result(decoded)
            return
        if isinstance(decoded, Kept):
            kept = decoded
            writing = self.io.submit(self.deliverables.image, kept.result, kept.item.dst, kept.item.etag, kept.data,
                                     context.formats)
            writing.add_done_callback(_guarded(done, lambda f: done.set_result(_outcome(kept.result, None, f))))
            return
        self.writer.metrics.observe_stage("decode", decoded.decode_ms / 1000)
        if not context.formats or decoded.page is not None:
            decoded.data = None
        if decoded.image is None:
            self._finish(decoded, decoded.error or decoded.given, context, done)
            return
        image = decoded.image
        if not context.keep_pixels:  # the engine frees the page once its lines are cut out
            decoded.image = None
        running = self.batcher.submit(image, context.options)
        running.add_done_callback(_guarded(done, lambda f: self._finish(decoded, f.result(), context, done)))

    def _finish(self, decoded: DecodedItem, output: PageLines | ResultError | None, context: RunContext,
                done: Future) -> None:
        picture = decoded.image if context.keep_pixels and isinstance(output, PageLines) else None
        if picture is None:  # a page drawn on (--visualize) is held until it is written
            decoded.release()
        result = build_result(decoded, output, context.models, context.providers)
        writing = self.io.submit(self._write, result, decoded, picture, context)
        writing.add_done_callback(_guarded(done, lambda f: done.set_result(_outcome(result, decoded, f))))

    def _write(self, result: OcrResult, decoded: DecodedItem, picture: np.ndarray | None, context: RunContext) -> None:
        """The result, then the image's --format files (an image's, never a page's: those
        come with their whole document)."""
        if picture is not None and decoded.scale != (1.0, 1.0):  # drawn on at the file's own size
            import cv2

            picture = cv2.resize(picture, (decoded.width, decoded.height), interpolation=cv2.INTER_LINEAR)
        self.writer.write(result, decoded.item.dst, decoded.item.etag, picture)
        if decoded.data is not None and result.error is None:
            self.deliverables.image(result, decoded.item.dst, decoded.item.etag, decoded.data, context.formats)


@dataclass
class _Pending:
    """One entry of the run's window: an image's or page's outcome to come, or (with no
    future) the end of a document item, settled once its pages before it are."""

    future: Future | None
    reader: DocumentReader | None = None

    def settle(self) -> Event:
        if self.future is None:
            assert self.reader is not None
            return self.reader.part()
        outcome: Outcome | Unread = self.future.result()
        if self.reader is not None and isinstance(outcome, Unread):
            self.reader.stop_reading()
        elif self.reader is not None and outcome.result.page is not None:
            self.reader.record(outcome.page_summary())
        return outcome

    def abandon(self) -> None:
        if self.future is None and self.reader is not None:
            self.reader.close()


def _outcome(result: OcrResult, decoded: DecodedItem | None, writing: Future) -> Outcome:
    """What became of an item once its writes are done; `decoded` None for a Kept one."""
    if decoded is not None:
        decoded.release()
        decoded.data = None
    error = writing.exception()
    if error is not None and not isinstance(error, StorageError):
        raise error
    read_error = decoded is not None and decoded.error is not None and not decoded.permanent
    return Outcome(result, error, (error is not None and not error.permanent) or read_error, kept=decoded is None)


def _guarded(done: Future, step: Callable[[Future], None]) -> Callable[[Future], None]:
    """A callback that hands any exception to `done` (a callback's own exception would
    only be logged, and the caller would wait forever)."""

    def callback(future: Future) -> None:
        try:
            step(future)
        except BaseException as exc:  # noqa: BLE001 - delivered to the waiting caller
            if not done.done():
                done.set_exception(exc)

    return callback
