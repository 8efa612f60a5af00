"""`make bench` (searchable PDF memory part): the peak memory of making and writing a long
document's searchable PDF, as the writer does it beside holding the PDF in memory. A
benchmark, not a test: it prints a table, writes bench/results/pdf_memory.json, and fails only
when a case fails.

    .venv/bin/python -m bench.pdf_memory [--pages 20,100]

Two documents of each length are built in a scratch folder, `--pages` pages of one colour page
(noise, which JPEG cannot shrink: about 1.5 MB a page): a scanned PDF (img2pdf's way, each
page a JPEG kept as it is) and a multi-page TIFF of the same pages in JPEG. Each is given one
text line a page and made into a searchable PDF, each case in a fresh process that reports
its own peak RSS above its resident set when it began:
- file: as worker.deliverables does: the source read from its file, the PDF made into a
  temporary file (on disk past IN_MEMORY_OUTPUT_BYTES) and written to storage from it;
- held: the source's bytes in memory (a PDF's by path, as before), the PDF made into memory
  and written as bytes, as the writer did before 2026-12-01's tenth session (but for the
  TIFF's page images, now made PAGES_PER_PART at a time either way).
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
    paths = {"pdf": folder / "scan.pdf", "tiff": folder / "scan.tif"}
    pdf.save(paths["pdf"])
    with Image.open(io.BytesIO(jpeg)) as im:
        frames = [im.convert("RGB")] * pages
        frames[0].save(paths["tiff"], "TIFF", save_all=True, append_images=frames[1:], compression="jpeg",
                       quality=75, dpi=(DPI, DPI))
    return paths


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


def _start_peak() -> int:
    """The resident set now, the peak reset to it (Linux's clear_refs 5): the imports' own
    peak, let go before the case begins, must not count."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def case(how: str, kind: str, source: Path, count: int, out: Path) -> dict[str, float]:
    """One case, in this process: its peak RSS above what the process held before (MB)."""
    from docmill.storage import LocalStorage
    from worker import deliverables
    from worker.outputs import searchable_pdf

    before = _start_peak()
    if kind == "pdf":
        pages = _pages(kind, source, count, None)
        make = partial(searchable_pdf.pdf_with_text, str(source), pages)
    else:
        pages = _pages(kind, source, count, str(source) if how == "file" else source.read_bytes())
        make = partial(searchable_pdf.pdf_from_images, pages)
    if how == "file":
        with deliverables.output_file("pdf", pages, make) as made:
            made.seek(0)
            LocalStorage().write_from(str(out), made, "application/pdf")
    else:
        buffer = io.BytesIO()
        make(buffer)
        LocalStorage().write_bytes(str(out), buffer.getvalue(), "application/pdf")
    peak = _status_kb("VmHWM")
    return {"rss_before_mb": before / 1024, "peak_above_mb": (peak - before) / 1024,
            "out_mb": out.stat().st_size / 2**20}


def _run_case(how: str, kind: str, source: Path, pages: int, out: Path) -> dict[str, float]:
    run = subprocess.run([sys.executable, "-m", "bench.pdf_memory", "--pages", str(pages), "--case", how, kind,
                          str(source), str(out)], cwd=REPO, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"{kind} {how} {pages} pages failed: {run.stderr.strip()[-600:]}")
    out.unlink()
    return json.loads(run.stdout)


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
    with tempfile.TemporaryDirectory(prefix="docmill-pdfmem-") as scratch:
        for pages in lengths:
            for kind, source in build(Path(scratch), pages).items():
                size_mb = source.stat().st_size / 2**20
                for how in ("held", "file"):
                    figures = _run_case(how, kind, source, pages, Path(scratch) / f"{kind}-{how}.pdf")
                    figures.update(source_mb=size_mb, peak_over_source=figures["peak_above_mb"] / size_mb)
                    report[f"{kind} {how} {pages}"] = figures
                    print(f"{kind:4s} {how:4s} {pages:4d} pages  source {size_mb:7.1f} MB  "
                          f"PDF {figures['out_mb']:7.1f} MB  peak above start {figures['peak_above_mb']:7.1f} MB "
                          f"= {figures['peak_over_source']:.2f}x the source", flush=True)
    growth = {f"{kind} {how}": report[f"{kind} {how} {lengths[-1]}"]["peak_above_mb"]
              / max(report[f"{kind} {how} {lengths[0]}"]["peak_above_mb"], 1.0)
              for kind in ("pdf", "tiff") for how in ("held", "file")}
    for name, ratio in growth.items():
        print(f"{name}: peak at {lengths[-1]} pages / at {lengths[0]} = {ratio:.2f}x")
    print(f"wrote {save_result('pdf_memory', {'pages': lengths, 'cases': report, 'growth': growth})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
