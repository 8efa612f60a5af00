"""`docmill run`: the embedded default. The same engine as the workers, in-process, no broker.

Reads images from local folders or s3:// prefixes, decodes them on threads ahead of the
engine, runs the engine on batches of `batch_images`, and writes one docmill.result/v1
JSON per image. A bad image becomes an error result and never costs the others theirs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from docmill.modelset import ModelSet
from docmill.options import EngineOptions
from docmill.result import ModelsInfo, OcrResult, ResultError
from docmill.settings import Settings
from docmill.storage import ObjectRef, is_s3_uri, open_storage, result_uri
from worker.engine.pipeline import OcrEngine, PageLines
from worker.items import DecodedItem, load_item
from worker.results import build_result, write_result

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif")


@dataclass(frozen=True)
class InputRef:
    """One image to OCR: where it is, and where its result goes."""

    ref: ObjectRef
    out_uri: str


@dataclass
class RunSummary:
    images: int = 0
    ok: int = 0
    failed: int = 0
    lines: int = 0
    seconds: float = 0.0
    errors: Counter = field(default_factory=Counter)
    providers: list[str] = field(default_factory=list)
    stage_s: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "det": 0.0, "cls": 0.0, "rec": 0.0})
    session_s: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        rate = self.images / self.seconds if self.seconds else 0.0
        return {"images": self.images, "ok": self.ok, "failed": self.failed, "lines": self.lines,
                "seconds": round(self.seconds, 3), "images_per_s": round(rate, 3),
                "errors": dict(self.errors), "providers": self.providers,
                "stage_s": {k: round(v, 3) for k, v in self.stage_s.items()},
                "session_s": {k: round(v, 3) for k, v in self.session_s.items()}}


def list_inputs(inputs: Iterable[str], out_root: str, settings: Settings) -> list[InputRef]:
    """Every image under the inputs (files, folders recursively, s3:// prefixes), each with
    its result location `OUT/<path relative to its input>.json`."""
    refs = []
    for root in inputs:
        if not is_s3_uri(root) and not Path(root).exists():
            raise FileNotFoundError(f"input {root!r} does not exist")
        storage = open_storage(root, settings)
        for ref in storage.iter_objects(root, IMAGE_SUFFIXES):
            refs.append(InputRef(ref, result_uri(out_root, ref.key)))
    return refs


def prefetch(refs: list[InputRef], settings: Settings, pool: ThreadPoolExecutor, depth: int) -> Iterator[DecodedItem]:
    """Decoded items in input order, read and decoded up to `depth` items ahead on the pool."""
    pending: list[Future] = []
    feed = iter(refs)
    for item in feed:
        pending.append(pool.submit(load_item, item.ref, item.out_uri, settings))
        if len(pending) >= depth:
            break
    while pending:
        yield pending.pop(0).result()
        nxt = next(feed, None)
        if nxt is not None:
            pending.append(pool.submit(load_item, nxt.ref, nxt.out_uri, settings))


def run_batch(engine: OcrEngine, items: list[DecodedItem], options: EngineOptions) -> list[PageLines | ResultError]:
    """Engine output for each decoded item. If the batch fails as a whole, each image is
    retried alone, so an image that breaks the engine fails by itself."""
    ok = [i for i, item in enumerate(items) if item.image is not None]
    outputs: list[PageLines | ResultError] = [item.error for item in items]  # type: ignore[misc]
    try:
        pages = engine.run([items[i].image for i in ok], options)
        for i, page in zip(ok, pages):
            outputs[i] = page
    except Exception:  # noqa: BLE001 - isolate the culprit below
        for i in ok:
            try:
                outputs[i] = engine.run([items[i].image], options)[0]
            except Exception as exc:  # noqa: BLE001 - one image's failure becomes its result
                log.exception("engine failed on %s", items[i].ref.uri)
                outputs[i] = ResultError(code="engine_error", message=f"{type(exc).__name__}: {exc}"[:500])
    return outputs


def cmd_run(args: argparse.Namespace, settings: Settings, model_dir: Path) -> int:
    """Entry from the CLI, after it resolved the model set folder."""
    from worker.sessions import build_engine

    model_set = ModelSet.load(model_dir)
    engine = build_engine(model_set, settings, args.device)
    options = engine.options.merged(args.overrides)
    providers = engine.det_session.providers
    models = ModelsInfo(set=model_set.name, version=model_set.version)
    refs = list_inputs(args.inputs, args.out, settings)
    batch_size = args.batch_images or settings.batch_images
    summary = RunSummary(providers=providers)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="docmill-io") as pool, \
            _progress(len(refs), args.quiet) as advance:
        writes: list[Future] = []
        batch: list[DecodedItem] = []
        for item in prefetch(refs, settings, pool, depth=2 * batch_size):
            batch.append(item)
            if len(batch) == batch_size:
                writes += _finish(engine, batch, options, models, providers, args, settings, pool, summary, advance)
                batch = []
        if batch:
            writes += _finish(engine, batch, options, models, providers, args, settings, pool, summary, advance)
        for write in writes:
            write.result()
    summary.seconds = time.perf_counter() - started
    summary.session_s = {"det": engine.det_session.busy_s, "rec": engine.rec_session.busy_s,
                         "cls": engine.cls_session.busy_s if engine.cls_session else 0.0}
    _report(summary, args.quiet)
    return 1 if args.fail_on_error and summary.failed else 0


def _finish(engine, batch, options, models, providers, args, settings, pool, summary, advance) -> list[Future]:  # type: ignore[no-untyped-def]
    """Run one batch, build each result, hand the writes to the pool, count outcomes."""
    writes = []
    for item, output in zip(batch, run_batch(engine, batch, options)):
        result = build_result(item, output, models, providers)
        writes.append(pool.submit(_write, result, item, args.visualize, settings))
        summary.images += 1
        for stage in summary.stage_s:
            summary.stage_s[stage] += getattr(result.timings_ms, stage) / 1000
        if result.error:
            summary.failed += 1
            summary.errors[result.error.code] += 1
        else:
            summary.ok += 1
            summary.lines += len(result.lines)
        advance()
    return writes


def _write(result: OcrResult, item: DecodedItem, visualize: bool, settings: Settings) -> None:
    metadata = write_result(result, item, settings)
    if visualize and item.image is not None:
        from worker.visualize import render_png

        png_uri = item.out_uri[: -len(".json")] + ".png"
        open_storage(png_uri, settings).write_bytes(png_uri, render_png(item.image, result.lines),
                                                    "image/png", metadata)


class _progress:
    """A rich progress bar on stderr (nothing when quiet or not a terminal-like run)."""

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


def _report(summary: RunSummary, quiet: bool) -> None:
    data = summary.as_dict()
    if not quiet:
        errors = ", ".join(f"{k}={v}" for k, v in sorted(summary.errors.items())) or "none"
        print(f"docmill run: {data['images']} images, {data['ok']} ok, {data['failed']} failed "
              f"({errors}), {data['lines']} lines, {data['images_per_s']} images/s "
              f"on {', '.join(summary.providers)}", file=sys.stderr)
    print(json.dumps(data, sort_keys=True))
