"""Which DPI to render PDF pages at: text height against detection resolution, measured.

    python -m bench.pdf_dpi [--dpis 72,100,150,200,300] [--models pp-ocrv6] [--upright] [--no-ocr]

Det sees every page resized to `det_limit_side_len` (1280 for pp-ocrv6) on its long side, so
past ~116 DPI on a letter page (11 in x 116 = 1280 px) more resolution buys det nothing; rec
crops its lines from the full-resolution render and resizes them to 48 px high, so rec can gain
only until a line is about 48 px tall (a 12 pt line at about 240 DPI). This bench renders pages
of known text (Helvetica and Times at 6, 8, 10 and 12 pt, 12 column-wide lines a page) at each
DPI from three sources: the born-digital PDF, a 300-DPI JPEG scan of it, and a poor 300-DPI scan
(blurred, noisy, JPEG quality 60). It OCRs each render and scores the lines against the text
(demo/scoring.py: exact lines in order, and the character edit distance over the text's length).
`--upright` turns page orientation and line cls off, which shows DPI's effect alone: with them
on, pp-ocrv6 turned some of these sparse pages, or all their lines, by 180 degrees at scores as
low as 0.54, at any DPI.

Measured (pp-ocrv6 on CPU, --upright, exact lines of 96 / CER): 72 DPI 74 / 0.038, 70 / 0.079,
74 / 0.075 (6 pt unreadable); 100 DPI 95 / 0.0001, 93 / 0.0002, 96 / 0; 150 DPI 96 / 0, 95 / 0,
96 / 0; 200 DPI 96 / 0, 93 / 0, 92 / 0; 300 DPI 96 / 0, 91 / 0, 81 / 0.0001 (digital, scan, poor
scan). 150 DPI is where every character is read, and more only costs pixels (2.1 MP a letter
page at 150, 3.7 at 200, 8.4 at 300) and, on the scans, splits some lines. Hence
PageLimits.dpi = 150.

It also measures what the render child costs: pages/s rendering a 20-page scanned PDF
in-process (pdfium called directly) against through `open_document` (child process, page file
mapped), each page's pixels read once, and the child's start (paid per opened document).

Prints tables; the figures go to bench/results/pdf_dpi.json.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from typing import Any

import cv2
import img2pdf
import numpy as np
import pypdfium2 as pdfium
from fpdf import FPDF
from PIL import Image

from bench.results import save_result
from docmill.settings import DEFAULT_MODEL_SET, Settings
from pages import pdf
from pages.document import PageLimits
from pages.source import open_document
from worker.engine.memory import fix_mmap_threshold

FONTS = ("helvetica", "times")
SIZES_PT = (6, 8, 10, 12)
PAGE_PT = (612.0, 792.0)  # US letter; A4's long side is within 6%
MARGIN_PT = 54.0
SCAN_DPI = 300
LINES_PER_PAGE = 12  # a text block per page: enough lines to score, few enough to OCR on CPU
DET_SIDE = 1280  # pp-ocrv6's det_limit_side_len (converter/presets.py), limit type "max"
X_HEIGHT_EM = {"helvetica": 0.523, "times": 0.448}
WORDS = ("invoice total amount paid due date account number customer reference order quantity "
         "price tax shipping address street city country phone email payment balance credit "
         "report section table figure chapter volume page annex summary results method data "
         "analysis sample value average period year month week north south east west").split()


def _line(rng: random.Random, doc: FPDF, width_pt: float) -> str:
    """Words and numbers up to the text width, as body text fills a line."""
    words: list[str] = []
    while True:
        word = str(rng.randint(1, 99999)) if rng.random() < 0.15 else rng.choice(WORDS)
        word = word.capitalize() if rng.random() < 0.2 else word
        if words and doc.get_string_width(" ".join([*words, word])) > width_pt:
            return " ".join(words)
        words.append(word)


def text_document(seed: int = 0) -> tuple[bytes, list[list[str]], list[tuple[str, int]]]:
    """A born-digital PDF: one page per (font, size), LINES_PER_PAGE lines 1.5 x size apart
    from the top margin, each as wide as the text column; the lines, and each page's label."""
    rng, doc = random.Random(seed), FPDF(unit="pt", format=PAGE_PT)
    truths, labels = [], []
    for font in FONTS:
        for size in SIZES_PT:
            doc.add_page()
            doc.set_font(font, size=size)
            lines = [_line(rng, doc, PAGE_PT[0] - 2 * MARGIN_PT) for _ in range(LINES_PER_PAGE)]
            for i, line in enumerate(lines):
                doc.text(MARGIN_PT, MARGIN_PT + size * (1 + 1.5 * i), line)
            truths.append(lines)
            labels.append((font, size))
    return bytes(doc.output()), truths, labels


def _render_in_process(data: bytes, dpi: float) -> tuple[list[np.ndarray], float]:
    """Every page at `dpi`, pdfium called directly; mean ms per page."""
    document, limits = pdf.open_pdf(data), PageLimits(dpi=dpi, min_dpi=min(50.0, dpi))
    images, started = [], time.perf_counter()
    for index in range(len(document)):
        info, pixels = pdf.render(document, index, limits)
        images.append(np.frombuffer(pixels, np.uint8).reshape(info.height, info.width, 3))
    return images, (time.perf_counter() - started) * 1000 / len(images)


def scanned_copy(data: bytes, dpi: int = SCAN_DPI, quality: int = 85, degraded: bool = False) -> bytes:
    """The pages as a scanner would give them: rasterised at `dpi`, grey, JPEG in a PDF;
    `degraded` adds what a poor scan has (blur of 1.2 px at 300 DPI, noise, JPEG quality 60)."""
    images, _ = _render_in_process(data, dpi)
    rng, pages = np.random.default_rng(0), []
    for image in images:
        grey = image[..., 1]
        if degraded:
            noisy = cv2.GaussianBlur(grey, (0, 0), 1.2 * dpi / 300).astype(np.float32)
            grey = np.clip(noisy + rng.normal(0, 12, grey.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(grey).save(buf, "JPEG", quality=60 if degraded else quality, dpi=(dpi, dpi))
        pages.append(buf.getvalue())
    return img2pdf.convert(pages)


def _ocr(engine: Any, options: Any, images: list[np.ndarray], truths: list[list[str]]) -> dict[str, Any]:
    from demo.scoring import compare_lines

    checks, flipped, started = [], 0, time.perf_counter()
    for image, truth in zip(images, truths):
        lines = engine.run([image], options)[0].lines
        checks.append(compare_lines(truth, [line.text for line in lines]))
        flipped += sum(line.angle == 180 for line in lines)
    chars = sum(len("".join("".join(t).split())) for t in truths)
    return {"ocr_s_per_page": round((time.perf_counter() - started) / len(images), 2),
            "exact_lines": sum(c["exact_lines"] for c in checks),
            "expected_lines": sum(c["expected_lines"] for c in checks),
            "cer": round(sum(c["char_edit_distance"] for c in checks) / chars, 4), "lines_turned_180": flipped,
            "per_page_exact": [c["exact_lines"] for c in checks]}


def dpi_rows(dpis: list[float], engine: Any, options: Any) -> list[dict[str, Any]]:
    data, truths, labels = text_document()
    sources = {"digital": data, f"scan{SCAN_DPI}": scanned_copy(data),
               f"poor{SCAN_DPI}": scanned_copy(data, degraded=True)}
    rows = []
    for source, doc in sources.items():
        for dpi in dpis:
            images, ms = _render_in_process(doc, dpi)
            height, width = images[0].shape[:2]
            x_height = 10 * X_HEIGHT_EM["helvetica"] * dpi / 72  # 10 pt Helvetica, in the render
            row = {"source": source, "dpi": dpi, "render_ms_per_page": round(ms, 1),
                   "megapixels": round(width * height / 1e6, 2), "x_height_px_10pt": round(x_height, 1),
                   "x_height_det_px_10pt": round(x_height * min(1.0, DET_SIDE / max(width, height)), 1)}
            if engine is not None:
                row |= _ocr(engine, options, images, truths)
                row["pages"] = [f"{font} {size}pt" for font, size in labels]
            rows.append(row)
            print(_format_row(row), flush=True)
    return rows


def _format_row(row: dict[str, Any]) -> str:
    text = (f"{row['source']:>8} {row['dpi']:>5g} dpi  {row['megapixels']:>5.2f} MP"
            f"  render {row['render_ms_per_page']:>6.1f} ms  x-height(10pt) {row['x_height_px_10pt']:>4.1f} px,"
            f" in det {row['x_height_det_px_10pt']:>4.1f} px")
    if "cer" in row:
        text += (f"  exact {row['exact_lines']:>3}/{row['expected_lines']}  cer {row['cer']:.4f}"
                 f"  per page {row['per_page_exact']}  turned {row['lines_turned_180']}"
                 f"  ocr {row['ocr_s_per_page']:.1f} s/page")
    return text


def throughput(dpi: float, pages: int = 20, rounds: int = 3) -> dict[str, Any]:
    """Pages/s rendering a scanned PDF in-process and through the render child, each page's
    pixels read once (as det would): the median of `rounds`, alternating the two."""
    data, _, _ = text_document(seed=1)
    many = _repeat_pages(scanned_copy(data), pages)
    in_process, child, opens = [], [], []
    for _ in range(rounds):
        started = time.perf_counter()
        document, limits = pdf.open_pdf(many), PageLimits(dpi=dpi)
        for index in range(pages):
            _touch(np.frombuffer(pdf.render(document, index, limits)[1], np.uint8))
        in_process.append(pages / (time.perf_counter() - started))
        started = time.perf_counter()
        with open_document(many, limits) as doc:
            opens.append((time.perf_counter() - started) * 1000)
            for index in range(pages):
                _touch(doc.render_page(index).image)
        child.append(pages / (time.perf_counter() - started))
    return {"pages": pages, "dpi": dpi, "in_process_pages_s": round(statistics.median(in_process), 1),
            "child_pages_s": round(statistics.median(child), 1), "child_open_ms": round(statistics.median(opens), 1)}


def _touch(pixels: np.ndarray) -> int:
    """Reads a byte of every memory page, so that each path pays for its pixels' pages."""
    return int(pixels.reshape(-1)[::4096].sum())


def _repeat_pages(data: bytes, pages: int) -> bytes:
    """A `pages`-page PDF cycling through the pages of `data`."""
    source = pdf.open_pdf(data)
    target = pdfium.PdfDocument.new()
    count = len(source)
    for start in range(0, pages, count):
        target.import_pages(source, list(range(min(count, pages - start))))
    buf = io.BytesIO()
    target.save(buf)
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dpis", default="72,100,150,200,300")
    ap.add_argument("--upright", action="store_true",
                    help="page orientation and line cls off (the pages are upright): DPI's effect on det and rec")
    ap.add_argument("--models", default=DEFAULT_MODEL_SET)
    ap.add_argument("--no-ocr", action="store_true", help="render figures only, no engine")
    ap.add_argument("--throughput-dpi", type=float, default=PageLimits().dpi)
    args = ap.parse_args()
    fix_mmap_threshold(Settings().malloc_mmap_threshold_kb)  # as a worker's engine does at load
    engine = options = None
    if not args.no_ocr:
        from bench.pages import load_engine

        engine = load_engine(args.models)
        options = engine.options.merged({"use_angle_cls": False, "use_doc_orientation": False}
                                        if args.upright else {})
    rows = dpi_rows([float(d) for d in args.dpis.split(",")], engine, options)
    speed = throughput(args.throughput_dpi)
    print(f"render {speed['pages']} scanned pages at {speed['dpi']:g} dpi: in-process {speed['in_process_pages_s']}"
          f" pages/s, through the child {speed['child_pages_s']} pages/s"
          f" (child start {speed['child_open_ms']} ms per document)")
    save_result("pdf_dpi", {"schema": "docmill.bench.pdf_dpi/v1", "models": None if args.no_ocr else args.models,
                            "upright": args.upright,
                            "rows": rows, "render_throughput": speed})
    return 0


if __name__ == "__main__":
    sys.exit(main())
