"""`make bench` (output memory part): the peak memory of making and writing a long document's
`--format` files, as the writer does it beside holding them in memory. A benchmark, not a
test: it prints a table, writes bench/results/output_memory.json, and fails only when a case
fails.

    .venv/bin/python -m bench.output_memory [--pages 20,100]

Three documents of each length are built in a scratch folder, `--pages` pages long: a scanned
PDF (img2pdf's way, each page a JPEG kept as it is) and a multi-page TIFF of the same pages
in JPEG, both of one colour page of noise (which JPEG cannot shrink: about 1.5 MB a page),
each page given one text line and made into a searchable PDF; and the stored page results of
a dense document (80 lines of 10 words a page, 0.2 MB of JSON each), made into text, hOCR and
ALTO. Each case runs in a fresh process that reports its own peak RSS above its resident set
when it began:
- file: as worker.deliverables does: the source read from its file, page results read as
  each page is written, each file made into a temporary file (on disk past
  IN_MEMORY_OUTPUT_BYTES) and written to storage from it;
- held: the source's bytes in memory (a PDF's by path, as before), every page result loaded
  first, each file made into memory and written as bytes, as the writer did before
  2026-12-01's tenth session (but for the TIFF's page images, now made PAGES_PER_PART at a
  time either way).
The figures to read: each case's peak against the document's size, and how the peak grows
from the shortest length to the longest (1x is flat). The peak is at least 1 MB in that ratio:
below it, it is the noise of the interpreter.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import pikepdf
from PIL import Image

from bench.results import save_result
from bench.run_bench import REPO

PAGE_SIZE = (1240, 1754)  # A4 at 150 dpi
TEXT_FORMATS = ["txt", "hocr", "alto"]
DPI = 150


def _page_jpeg() -> bytes:
    noise = np.random.default_rng(7).integers(0, 256, (PAGE_SIZE[1], PAGE_SIZE[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG", quality=75, dpi=(DPI, DPI))
    return buffer.getvalue()


def build(folder: Path, pages: int) -> dict[str, Path]:
    """The scanned PDF and the TIFF, `pages` pages each."""
    jpeg = _page_jpeg()
    pdf = pikepdf.new()
    width_pt, height_pt = (side * 72 / DPI for side in PAGE_SIZE)
    for _ in range(pages):
        page = pdf.add_blank_page(page_size=(width_pt, height_pt))
        image = pdf.make_stream(jpeg, Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image, Width=PAGE_SIZE[0],
                                Height=PAGE_SIZE[1], ColorSpace=pikepdf.Name.DeviceRGB, BitsPerComponent=8,
                                Filter=pikepdf.Name.DCTDecode)
        name = page.add_resource(image, pikepdf.Name.XObject, pikepdf.Name("/Im0"))
        page.contents_add(f"q {width_pt} 0 0 {height_pt} 0 0 cm {name} Do Q".encode())
    paths = {"pdf": folder / "scan.pdf", "tiff": folder / "scan.tif", "text": folder / "results"}
    pdf.save(paths["pdf"])
    paths["text"].mkdir(exist_ok=True)
    for number in range(1, pages + 1):
        (paths["text"] / f"page-{number:04d}.json").write_bytes(_dense_result(number, pages).to_json_bytes())
    with Image.open(io.BytesIO(jpeg)) as im:
        frames = [im.convert("RGB")] * pages
        frames[0].save(paths["tiff"], "TIFF", save_all=True, append_images=frames[1:], compression="jpeg",
                       quality=75, dpi=(DPI, DPI))
    return paths


def _dense_result(number: int, count: int):  # type: ignore[no-untyped-def]
    """A page of 80 lines of 10 words, each with its box: a dense page's stored result."""
    from docmill.result import DocumentPage, ImageInfo, Line, ModelsInfo, OcrResult, SourceInfo, Word

    lines = []
    for row in range(80):
        top, bottom = 40 + 40 * row, 70 + 40 * row
        words = [Word(text=f"word{column}", score=0.9, box=[[40 + 110 * column, top], [140 + 110 * column, top],
                                                            [140 + 110 * column, bottom], [40 + 110 * column, bottom]])
                 for column in range(10)]
        lines.append(Line(text=" ".join(word.text for word in words), score=0.9,
                          box=[[40, top], [1140, top], [1140, bottom], [40, bottom]], words=words))
    return OcrResult(source=SourceInfo(uri="dense.pdf"), image=ImageInfo(width=1240, height=3300),
                     models=ModelsInfo(set="bench", version="1"), providers=["CPUExecutionProvider"],
                     page=DocumentPage(index=number, count=count, dpi=300), lines=lines)


def _stored_page(folder: Path, index: int):  # type: ignore[no-untyped-def]
    """Page `index` read back from its stored result, as worker.deliverables reads it."""
    from docmill.result import OcrResult
    from worker.outputs.page import OutputPage

    result = OcrResult.model_validate_json((folder / f"page-{index + 1:04d}.json").read_bytes())
    return OutputPage(result, result.image.width, result.image.height, 300, "dense.pdf")


def _text_case(how: str, folder: Path, count: int, out: Path) -> None:
    from docmill.storage import LocalStorage
    from worker import deliverables
    from worker.outputs import alto, hocr, text

    load = partial(_stored_page, folder)
    if how == "file":
        with deliverables.output_files(TEXT_FORMATS, deliverables.LazyPages(count, load)) as files:
            for fmt, made in files.items():
                made.seek(0)
                LocalStorage().write_from(f"{out}.{fmt}", made, "text/plain")
        return
    pages = [load(index) for index in range(count)]
    for fmt, make in (("txt", text.text), ("hocr", hocr.hocr), ("alto", alto.alto)):
        LocalStorage().write_bytes(f"{out}.{fmt}", make(pages), "text/plain")


def _pages(kind: str, source: Path, count: int, image: bytes | str | None) -> list:
    """One hand-made text line on each page, as the writer reads page results back."""
    from docmill.result import DocumentPage, ImageInfo, Line, ModelsInfo, OcrResult, SourceInfo
    from worker.outputs.page import OutputPage

    width, height = PAGE_SIZE
    box = [[100, 100], [1100, 100], [1100, 160], [100, 160]]
    pages = []
    for number in range(1, count + 1):
        result = OcrResult(source=SourceInfo(uri=str(source)), image=ImageInfo(width=width, height=height),
                           models=ModelsInfo(set="bench", version="1"), providers=["CPUExecutionProvider"],
                           page=DocumentPage(index=number, count=count, dpi=DPI),
                           lines=[Line(text=f"page {number} line", score=0.9, box=box)])
        pages.append(OutputPage(result, width, height, DPI, source.name, image,
                                frame=number - 1 if kind == "tiff" else None))
    return pages


def _status_kb(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(f"{field}:")))


def _start_peak() -> tuple[int, bool]:
    """The resident set now, and whether the peak was reset to it (Linux's clear_refs 5), so
    that the imports' own peak, let go before the case begins, does not count. Where /proc
    refuses the reset, the peak may be the imports' and the case says so."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return _status_kb("VmRSS"), False
    return _status_kb("VmRSS"), True


def _pdf_case(how: str, kind: str, source: Path, count: int, out: Path) -> None:
    from docmill.storage import LocalStorage
    from worker import deliverables
    from worker.outputs import searchable_pdf

    if kind == "pdf":
        pages = _pages(kind, source, count, None)
        make = partial(searchable_pdf.pdf_with_text, str(source))
    else:
        pages = _pages(kind, source, count, str(source) if how == "file" else source.read_bytes())
        make = searchable_pdf.pdf_from_images
    if how == "file":
        with deliverables.output_files(["pdf"], pages, make) as files:
            made = files["pdf"]
            made.seek(0)
            LocalStorage().write_from(str(out), made, "application/pdf")
        return
    buffer = io.BytesIO()
    make(pages, buffer)
    LocalStorage().write_bytes(str(out), buffer.getvalue(), "application/pdf")


def case(how: str, kind: str, source: Path, count: int, out: Path) -> dict[str, float | bool]:
    """One case, in this process: its peak RSS above what the process held before (MB)."""
    import worker.deliverables  # noqa: F401 - imported before the start, as a worker has it

    before, reset = _start_peak()
    if kind == "text":
        _text_case(how, source, count, out)
    else:
        _pdf_case(how, kind, source, count, out)
    peak = _status_kb("VmHWM")
    made = sum(f.stat().st_size for f in out.parent.glob(f"{out.name}*"))
    return {"rss_before_mb": before / 1024, "peak_above_mb": (peak - before) / 1024, "peak_reset": reset,
            "out_mb": made / 2**20}


def _run_case(how: str, kind: str, source: Path, pages: int, out: Path) -> dict[str, float]:
    run = subprocess.run([sys.executable, "-m", "bench.output_memory", "--pages", str(pages), "--case", how, kind,
                          str(source), str(out)], cwd=REPO, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"{kind} {how} {pages} pages failed: {run.stderr.strip()[-600:]}")
    for made in out.parent.glob(f"{out.name}*"):
        made.unlink()
    return json.loads(run.stdout)


def _size_mb(source: Path) -> float:
    files = source.iterdir() if source.is_dir() else [source]
    return sum(f.stat().st_size for f in files) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", default="20,100", help="document lengths, comma-separated (default 20,100)")
    parser.add_argument("--case", nargs=4, metavar=("HOW", "KIND", "SOURCE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    lengths = sorted(int(n) for n in args.pages.split(","))
    if args.case:
        how, kind, source, out = args.case
        print(json.dumps(case(how, kind, Path(source), lengths[0], Path(out))))
        return 0
    report: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="docmill-outmem-") as scratch:
        for pages in lengths:
            for kind, source in build(Path(scratch), pages).items():
                size_mb = _size_mb(source)
                for how in ("held", "file"):
                    figures = _run_case(how, kind, source, pages, Path(scratch) / f"{kind}-{how}.out")
                    figures.update(source_mb=size_mb, peak_over_source=figures["peak_above_mb"] / size_mb)
                    report[f"{kind} {how} {pages}"] = figures
                    print(f"{kind:4s} {how:4s} {pages:4d} pages  source {size_mb:7.1f} MB  "
                          f"made {figures['out_mb']:7.1f} MB  peak above start {figures['peak_above_mb']:7.1f} MB "
                          f"= {figures['peak_over_source']:.2f}x the source", flush=True)
    growth = {f"{kind} {how}": report[f"{kind} {how} {lengths[-1]}"]["peak_above_mb"]
              / max(report[f"{kind} {how} {lengths[0]}"]["peak_above_mb"], 1.0)
              for kind in ("pdf", "tiff", "text") for how in ("held", "file")}
    for name, ratio in growth.items():
        print(f"{name}: peak at {lengths[-1]} pages / at {lengths[0]} = {ratio:.2f}x")
    print(f"wrote {save_result('output_memory', {'pages': lengths, 'cases': report, 'growth': growth})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
