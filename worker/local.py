"""`docmill run`: the embedded default. The same engine and item path as the workers,
in-process, no broker.

Everything that can be checked is checked before any OCR: the flags, that `--out` takes a
write, that every input exists, that no two inputs would write the same result, and that
there is at least one image or document. Then images and document pages are read and decoded
ahead of the engine as far as the pixel budget allows, batched with a zero delay, and each
result is written (with retries) as soon as it is ready; a document's own result once its
last page is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from docmill.documents import (OutputFormat, PdfText, blocked_page_folder, page_results_of, parse_formats,
                               results_read_again)
from docmill.errors import EXIT_FAILED, EXIT_OK, UsageError
from docmill.inputs import (DEFAULT_INCLUDE, INPUT_SUFFIXES, Include, describe_skipped, parse_include,
                            suffix_of)
from docmill.messages import TaskItem
from docmill.modelset import ModelSet, ModelSetError
from docmill.options import parse_option_assignments
from docmill.result import ModelsInfo, models_tag
from docmill.resultcheck import ResultCheck
from docmill.settings import Settings
from docmill.storage import (ObjectNotFound, StorageError, is_s3_uri, is_text, join_uri, open_storage, printable,
                             require_writable, result_uri, written_by_docmill)
from docmill.wording import counted
from worker.documents import DocumentPart, document_result
from worker.flow import ItemFlow, Outcome, RunContext, options_for
from worker.items import Unread
from worker.stopping import StopOnSignal
from worker.writer import ResultWriter
from worker.metrics import Metrics

if TYPE_CHECKING:
    from worker.deliverables import DeliverableWriter
    from worker.engine.pipeline import OcrEngine

IO_THREADS = 4


@dataclass
class Inputs:
    """The images and documents to OCR, each with its result location, and what was passed over."""

    items: list[TaskItem] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # suffix -> files that are neither


@dataclass
class RunSummary:
    """Counts of one run: `images` and document `pages` each have a result; `ok`, `failed` and
    `lines` count both. `documents` have a result of their own."""

    images: int = 0
    pages: int = 0
    documents: int = 0
    documents_failed: int = 0
    current: int = 0  # inputs passed over by --skip-existing
    replaced: int | None = 0  # inputs whose result was there before the run and is written again (None: unknown)
    ok: int = 0
    failed: int = 0
    lines: int = 0
    seconds: float = 0.0
    errors: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    providers: list[str] = field(default_factory=list)
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("decode", "ori", "det", "cls", "rec"),
                                                                          0.0))
    session_s: dict[str, float] = field(default_factory=dict)
    new_shape_s: dict[str, float] = field(default_factory=dict)
    distinct_shapes: dict[str, int] = field(default_factory=dict)
    stopped_by: str | None = None  # the signal that stopped the run before its end (worker.stopping)
    not_started: int = 0  # inputs it then left for a later run
    documents_unfinished: int = 0  # documents it stopped part way through: no document result yet
    pages_unread: int = 0  # their pages it left for a later run
    results_kept: int = 0  # earlier results kept (--skip-existing): resumed documents' pages, images given formats
    images_kept: int = 0  # of those, images: their results are not written again, so not `replaced`

    def add(self, outcome: Outcome) -> None:
        if outcome.kept and not outcome.code:  # only its --format files were made
            self.results_kept += 1
            self.images_kept += 1
            return
        result = outcome.result
        if result.page is None:
            self.images += 1
        else:
            self.pages += 1
        for stage in self.stage_s if not outcome.kept else ():  # a kept result's timings are an earlier run's
            self.stage_s[stage] += getattr(result.timings_ms, stage) / 1000
        if outcome.code:
            self.failed += 1
            self.errors[outcome.code] += 1
        else:
            self.ok += 1
            self.lines += len(result.lines)

    def as_dict(self) -> dict:
        rate = (self.images + self.pages) / self.seconds if self.seconds else 0.0
        return {"images": self.images, "pages": self.pages, "documents": self.documents,
                "documents_failed": self.documents_failed, "current": self.current,
                "replaced": self.replaced, "ok": self.ok,
                "failed": self.failed, "lines": self.lines, "seconds": round(self.seconds, 3),
                "images_per_s": round(rate, 3),
                "errors": dict(self.errors), "skipped": dict(self.skipped), "providers": self.providers,
                "stage_s": {k: round(v, 3) for k, v in self.stage_s.items()},
                "session_s": {k: round(v, 3) for k, v in self.session_s.items()},
                "new_shape_s": {k: round(v, 3) for k, v in self.new_shape_s.items()},
                "distinct_shapes": self.distinct_shapes, "stopped_by": self.stopped_by,
                "not_started": self.not_started, "documents_unfinished": self.documents_unfinished,
                "pages_unread": self.pages_unread, "results_kept": self.results_kept}


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Check everything, resolve the model set (importing a preset on first use), run."""
    batch = settings.batch_images if args.batch_images is None else args.batch_images
    if batch < 1:
        raise UsageError("--batch-images must be 1 or more")
    if args.skip_existing and args.visualize:
        raise UsageError("--skip-existing does not look for --visualize pictures; give one or the other")
    try:
        overrides = parse_option_assignments(args.set)
        formats = parse_formats(args.format)
        include = parse_include(args.include)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    refusal = results_read_again(include, args.include, args.inputs, args.out)
    if refusal is not None:
        raise UsageError(refusal)
    from worker.engine.providers import CUDA, resolve_providers

    on_gpu = CUDA in resolve_providers(args.device or settings.device)  # DeviceUnavailable is a usage error
    require_writable(args.out, settings)
    inputs = list_inputs(args.inputs, args.out, settings, include)
    if not inputs.items:
        passed = f" (passed over: {describe_skipped(inputs.skipped)})" if inputs.skipped else ""
        reads = (" ".join(INPUT_SUFFIXES) if args.include == DEFAULT_INCLUDE
                 else f"what --include {args.include!r} matches")
        raise UsageError(f"no images or documents in {' '.join(args.inputs)}{passed}; docmill reads {reads}")
    device_models = settings.models_for(on_gpu)
    model_set = _model_set(args.models or device_models, settings)
    if not (args.models or args.quiet) and device_models != settings.models:
        print(f"docmill run: on CUDA the default model set is {device_models}, as {settings.models}'s "
              "int8 detector is for CPUs (--models or DOCMILL_MODELS chooses another)", file=sys.stderr)
    current, lacking = (_drop_current(inputs, args.out, model_set, formats, settings) if args.skip_existing
                        else (0, frozenset()))
    replaced = _results_there(inputs, args.out, settings, pages_too=not args.skip_existing)
    stop = StopOnSignal()
    if inputs.items:
        with stop:
            summary = run_items(inputs, model_set, settings, args.device, overrides, batch, args.visualize,
                                args.quiet, args.pdf_text, formats, stop, args.skip_existing, lacking)
    else:
        summary = RunSummary(skipped=inputs.skipped)
    summary.current = current
    summary.replaced = None if replaced is None else replaced - summary.images_kept
    _report(summary, args.quiet)
    if summary.stopped_by is not None and stop.exit_status is not None:
        return stop.exit_status
    return EXIT_FAILED if args.fail_on_error and (summary.failed or summary.documents_failed) else EXIT_OK


def list_inputs(roots: Iterable[str], out_root: str, settings: Settings, include: Include) -> Inputs:
    """Every image and document under the inputs (files, folders recursively, s3:// prefixes)
    that `include` matches (a file named as an input is always read), each with its result
    location `OUT/<path relative to its input>.json`. Other files are
    counted by suffix, never passed over in silence, and so are the searchable PDFs and pictures an
    earlier run wrote into an --out inside an input folder. Two inputs that would write the same result are
    refused: one result would silently overwrite the other."""
    inputs, sources = Inputs(), {}
    for path in (*roots, out_root):
        if not is_text(path):
            raise UsageError(f"{printable(path)}: this path is not UTF-8, so results cannot name it; rename it")
    for root in roots:
        if not is_s3_uri(root) and not Path(root).exists():
            raise UsageError(f"input {root!r} does not exist")
        try:
            refs = list(open_storage(root, settings).iter_objects(root, ()))
        except (StorageError, ValueError) as exc:
            raise UsageError(f"input {root}: {str(exc).splitlines()[0]}") from exc
        explicit_file = not is_s3_uri(root) and Path(root).is_file()
        for ref in refs:
            passed_over = None if explicit_file else _passed_over(ref.key, ref.uri, out_root, include)
            if passed_over:
                inputs.skipped[passed_over] += 1
                continue
            try:
                dst = result_uri(out_root, ref.key)
            except ValueError as exc:  # a name in bytes that are not UTF-8
                print(f"docmill run: passing over {printable(ref.uri)}: {exc}", file=sys.stderr)
                inputs.skipped[f"{suffix_of(ref.key)} whose name no result can carry"] += 1
                continue
            if dst in sources:
                raise UsageError(f"{sources[dst]} and {ref.uri} would both write {dst}; "
                                 "give each input its own --out, or run them one at a time")
            _check_page_folder(ref.uri, ref.key, dst)
            sources[dst] = ref.uri
            inputs.items.append(TaskItem(src=ref.uri, dst=dst, etag=ref.etag, bytes=ref.size))
    return inputs


def _check_page_folder(src: str, key: str, dst: str) -> None:
    """A PDF whose pages could not be written (docmill.documents.blocked_page_folder) is
    refused before any work. A TIFF is a document only if it has several pages, which its
    bytes tell later: the document reader refuses it then."""
    blocked = blocked_page_folder(dst) if suffix_of(key) == ".pdf" else None
    if blocked is not None:
        raise UsageError(f"{src}: {blocked}")


def _passed_over(key: str, uri: str, out_root: str, include: Include) -> str | None:
    """Why a listed file is not read, as its count's label in the summary; None when it is."""
    if not include(key):
        return suffix_of(key)
    if written_by_docmill(out_root, uri):
        return f"{suffix_of(key)} written by docmill in --out"
    return None


def _drop_current(inputs: Inputs, out: str, model_set: ModelSet, formats: tuple[OutputFormat, ...],
                  settings: Settings) -> tuple[int, frozenset[str]]:
    """Take the inputs whose result is current out of `inputs` (the producer's rule,
    docmill.resultcheck); how many there were, and the results left in that are current but
    for a --format file (ResultCheck.split)."""
    check = ResultCheck(open_storage(out, settings), models_tag(model_set.name, model_set.version), formats)
    try:
        pending, lacking = check.split(inputs.items)
    finally:
        check.close()
    current = len(inputs.items) - len(pending)
    inputs.items = pending
    return current, frozenset(lacking)


def _results_there(inputs: Inputs, out: str, settings: Settings, pages_too: bool = True) -> int | None:
    """How many of the inputs' results are in `out` already, to be written again: one
    listing of `out` (on S3 a request per 1,000 results, where a HEAD per input would cost
    a round trip each), so that a run into an earlier run's --out says what it replaced.
    With `pages_too`, a document that has only page results there (a stopped run's) counts
    too: its pages are written again (--skip-existing would keep them instead).
    None when `out` cannot be listed (credentials that may write but not list): the run
    goes on, and says the count is unknown."""
    try:
        there = {join_uri(out, ref.key) for ref in open_storage(out, settings).iter_objects(out, (".json",))}
    except ObjectNotFound:
        return 0
    except StorageError as exc:
        print(f"docmill run: cannot list {out} to count the results it replaces: {str(exc).splitlines()[0]}",
              file=sys.stderr)
        return None
    if pages_too:
        there |= page_results_of(there)
    return sum(item.dst in there for item in inputs.items)


def _model_set(ref: str, settings: Settings) -> ModelSet:
    from converter.presets import ensure_model_set

    try:
        return ModelSet.load(ensure_model_set(ref, settings))
    except (ModelSetError, StorageError, ValueError) as exc:
        raise UsageError(str(exc).splitlines()[0]) from exc


def run_items(inputs: Inputs, model_set: ModelSet, settings: Settings, device: str | None,
              overrides: dict, batch: int, visualize: bool, quiet: bool, pdf_text: PdfText = "ocr",
              formats: tuple[OutputFormat, ...] = (), stop: StopOnSignal | None = None,
              skip_existing: bool = False, formats_lacking: frozenset[str] = frozenset()) -> RunSummary:
    """Load the engine and run. With `stop`, a signal also stops a document part way; with
    `skip_existing`, a document's pages whose results are current are kept, not read again,
    and so are the results in `formats_lacking` (current but for a --format file)."""
    from worker.engine.pipeline import OcrEngine

    engine = OcrEngine.load(model_set, settings, device)
    options = options_for(engine.options.merged(overrides), formats)
    try:
        engine.check(options)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    context = RunContext(options, ModelsInfo(set=model_set.name, version=model_set.version), engine.providers,
                         keep_pixels=visualize, pdf_text=pdf_text, formats=formats, reuse_pages=skip_existing,
                         formats_lacking=formats_lacking,
                         stopping=stop.stopped if stop else None)
    return run_on_engine(engine, inputs, context, settings, batch, quiet, stop)


def run_on_engine(engine: OcrEngine, inputs: Inputs, context: RunContext, settings: Settings, batch: int,
                  quiet: bool, stop: StopOnSignal | None = None) -> RunSummary:
    """The run itself, on an engine already loaded (`docmill run`'s, or the Python API's). With
    `stop`, a signal ends it after the inputs already started."""
    from worker.batcher import DynamicBatcher
    from worker.budget import PixelBudget

    metrics = Metrics()
    summary = RunSummary(providers=engine.providers, skipped=inputs.skipped)
    batcher = DynamicBatcher(engine, batch, max_delay_ms=0.0, metrics=metrics,
                             streams=settings.engine_streams)
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(IO_THREADS, thread_name_prefix="docmill-io") as io, \
                _progress(len(inputs.items), quiet) as advance:
            writer = ResultWriter(settings, metrics)
            flow = ItemFlow(batcher, writer, io, settings, PixelBudget(settings.pixel_budget()))
            for event in flow.run(stop.until_stopped(inputs.items) if stop else inputs.items, context):
                if isinstance(event, Unread):
                    summary.not_started += not event.page  # a page is counted with its document
                    continue
                if isinstance(event, DocumentPart):
                    _finish_document(event, flow.deliverables, context, summary)
                else:
                    summary.add(event)
                if isinstance(event, DocumentPart) or event.result.page is None:
                    advance()
    finally:
        batcher.close()
    summary.seconds = time.perf_counter() - started
    summary.session_s = engine.session_seconds()
    summary.new_shape_s = engine.new_shape_seconds()
    summary.distinct_shapes = engine.distinct_shapes()
    if stop is not None and stop.signal_name is not None:
        summary.not_started += len(inputs.items) - stop.started
        if summary.not_started or summary.documents_unfinished:
            summary.stopped_by = stop.signal_name
    return summary


def _finish_document(part: DocumentPart, deliverables: DeliverableWriter, context: RunContext,
                     summary: RunSummary) -> None:
    """Write a whole document's result and its --format files; count it, failed when it or
    any page failed. A document the run stopped part way through gets neither yet: its pages
    written so far are kept by the run that goes on with it (--skip-existing)."""
    summary.results_kept += part.reused
    if part.unread:
        summary.documents_unfinished += 1
        summary.pages_unread += part.unread
        return
    result = document_result(part, context.models, context.pdf_text)
    summary.documents += 1
    code = deliverables.finish_document(result, part.item, context.formats)
    if code is not None:
        summary.documents_failed += 1
    if code == "write_error" or result.error is not None:  # a failed page's code is counted with the page
        summary.errors[code] += 1


class _progress:
    """A rich progress bar on stderr (nothing when quiet)."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet = total, quiet

    def __enter__(self):  # type: ignore[no-untyped-def]
        if self.quiet:
            return lambda: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._progress = Progress("[progress.description]{task.description}", BarColumn(),
                                  MofNCompleteColumn(), TimeRemainingColumn(),
                                  console=Console(stderr=True), transient=True)
        self._progress.__enter__()
        task = self._progress.add_task("OCR", total=self.total)
        return lambda: self._progress.advance(task)

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        if not self.quiet:
            self._progress.__exit__(*exc)


def _left(summary: RunSummary) -> str:
    """What a stopped run left for the next: inputs not started, and pages of documents it
    stopped part way through."""
    left = f"{counted(summary.not_started, 'input')} not started"
    if summary.documents_unfinished:
        left += (f" and {counted(summary.pages_unread, 'page')} unread in "
                 f"{counted(summary.documents_unfinished, 'document')}")
    return left


def _report(summary: RunSummary, quiet: bool) -> None:
    data = summary.as_dict()
    if not quiet:
        errors = ", ".join(f"{k}={v}" for k, v in sorted(summary.errors.items())) or "none"
        skipped = f", passed over {describe_skipped(summary.skipped)}" if summary.skipped else ""
        skipped += f", {summary.current} already current (--skip-existing)" if summary.current else ""
        skipped += f", {counted(summary.results_kept, 'earlier result')} kept" if summary.results_kept else ""
        skipped += f", {counted(summary.replaced, 'earlier result')} replaced" if summary.replaced else ""
        skipped += (f"; stopped by {summary.stopped_by} with {_left(summary)} (run again with --skip-existing "
                    "to read only those)") if summary.stopped_by else ""
        documents = (f", {counted(data['documents'], 'document')} ({counted(data['pages'], 'page')}, "
                     f"{data['documents_failed']} failed)" if summary.documents else "")
        on = f" on {', '.join(summary.providers)}" if summary.providers else ""  # none: no engine was needed
        read = "images and pages" if summary.images and summary.pages else "pages" if summary.pages else "images"
        print(f"docmill run: {counted(data['images'], 'image')}{documents}, {data['ok']:,} ok, {data['failed']:,} "
              f"failed ({errors}), {data['lines']:,} lines, {data['images_per_s']} {read}/s{on}{skipped}",
              file=sys.stderr)
    print(json.dumps(data, sort_keys=True))
