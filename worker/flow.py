"""The one item path both runners share: read and decode on the I/O pool, the dynamic
batcher, the result, the write with retries.

Memory stays bounded by the process's pixel budget (worker.budget): a page is decoded only
once the budget admits it, and its pixels and budget share are released as soon as the
engine is done with it. Outcomes come back in input order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from docmill.messages import TaskItem
from docmill.options import EngineOptions
from docmill.result import ModelsInfo, OcrResult, ResultError
from docmill.settings import Settings
from docmill.storage import StorageError
from worker.batcher import DynamicBatcher
from worker.budget import PixelBudget, PixelTicket
from worker.engine.pipeline import PageLines, page_pixels
from worker.items import DecodedItem, Loader, load_item
from worker.results import build_result
from worker.writer import ResultWriter

# Items of one call started ahead of the one whose outcome is due. Not a memory bound (the
# pixel budget is that): it keeps the bookkeeping of a long run of tiny images finite.
MAX_ITEMS_AHEAD = 64


@dataclass
class Outcome:
    """What became of one item: its result, and whether that result reached storage."""

    result: OcrResult
    write_error: StorageError | None = None
    retryable: bool = False  # a storage failure (read or write) that a later try may cure

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


class ItemFlow:
    def __init__(self, batcher: DynamicBatcher, writer: ResultWriter, io: ThreadPoolExecutor,
                 settings: Settings, budget: PixelBudget, load: Loader = load_item):
        self.batcher = batcher
        self.writer = writer
        self.io = io
        self.settings = settings
        self.budget = budget
        self.load = load

    def run(self, items: Iterable[TaskItem], context: RunContext, ahead: int = MAX_ITEMS_AHEAD) -> Iterator[Outcome]:
        """Each item's outcome, in input order, with at most `ahead` items started (and
        their pixels within the budget)."""
        window: deque[Future] = deque()
        for item in items:
            if len(window) >= max(ahead, 1):
                yield window.popleft().result()
            window.append(self._start(item, context))
        while window:
            yield window.popleft().result()

    def _start(self, item: TaskItem, context: RunContext) -> Future:
        done: Future = Future()
        loading = self.io.submit(self.load, item, self.settings, lambda w, h: self._admit(w, h, context))
        loading.add_done_callback(_guarded(done, lambda f: self._loaded(f.result(), context, done)))
        return done

    def _admit(self, width: int, height: int, context: RunContext) -> PixelTicket:
        return self.budget.acquire(page_pixels(width, height, context.options))

    def _loaded(self, decoded: DecodedItem, context: RunContext, done: Future) -> None:
        self.writer.metrics.observe_stage("decode", decoded.decode_ms / 1000)
        if decoded.image is None:
            self._finish(decoded, decoded.error, context, done)
            return
        running = self.batcher.submit(decoded.image, context.options)
        running.add_done_callback(_guarded(done, lambda f: self._finish(decoded, f.result(), context, done)))

    def _finish(self, decoded: DecodedItem, output: PageLines | ResultError | None, context: RunContext,
                done: Future) -> None:
        picture = decoded.image if context.keep_pixels and isinstance(output, PageLines) else None
        if picture is None:  # a page drawn on (--visualize) is held until it is written
            decoded.release()
        result = build_result(decoded, output, context.models, context.providers)
        writing = self.io.submit(self.writer.write, result, decoded.item.dst, decoded.item.etag, picture)
        writing.add_done_callback(_guarded(done, lambda f: done.set_result(_outcome(result, decoded, f))))


def _outcome(result: OcrResult, decoded: DecodedItem, writing: Future) -> Outcome:
    decoded.release()
    error = writing.exception()
    if error is not None and not isinstance(error, StorageError):
        raise error
    retryable = (error is not None and not error.permanent) or (decoded.error is not None and not decoded.permanent)
    return Outcome(result, error, retryable)


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
