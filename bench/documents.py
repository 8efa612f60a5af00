"""`make bench` (documents part): pages/s for a scanned PDF beside images/s for the very same
pages as PNG files, and peak RSS, in one run. A benchmark, not a test: it prints a table,
writes bench/results/documents.json, and fails only when a side cannot run at all.

    .venv/bin/python -m bench.documents [--models SET] [--long-pages 100]

Sets, built in a scratch folder from ../shared's 20 SROIE receipts and docmill's demo pages:
- png: every page as a PNG file;
- pdf: the same pages as one scanned PDF, each page image embedded as it is (img2pdf) on a
  page sized so that rendering at DOCMILL_PDF_DPI (150) gives back its own pixels: the two
  runs OCR the same pixels, so the ratio is what reading a PDF costs;
- ten-pdf: ten of those pages, the two big scans (424.jpg, 426.jpg) among them, scanned at
  300 dpi (rendered at 150); long-pdf: the same ten pages over and over, `--long-pages` in all:
  the memory issue's long scanned document. Their peak RSS should be the same ("memory stays
  flat with the document's length").

RapidOCR 3.10.0 reads no PDF; it runs on the PNG set, as the images/s a user would compare.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.paths import SROIE_IMAGES
from bench.results import save_result
from bench.run_bench import DOCMILL_BIN, NEWEST_PEER, PEER3_PYTHON, REPO, Run, _checked, measure, resolve_models
from docmill.settings import DEFAULT_MODEL_SET

SROIE = SROIE_IMAGES
RENDER_DPI = 150
SCAN_DPI = 300
BIG = ("424.jpg", "426.jpg")


def page_sources(work: Path) -> list[Path]:
    """The receipts and the demo pages, in a fixed order."""
    from demo.pages import write_samples

    demo = [p for p in write_samples(work / "demo") if p.suffix in (".png", ".jpg")]
    return [*sorted(SROIE.glob("*.jpg")), *sorted(demo)]


def ten_pages(sources: list[Path]) -> list[Path]:
    """The big scans and eight other pages spread over the rest."""
    big = [p for p in sources if p.name in BIG]
    rest = [p for p in sources if p.name not in BIG]
    return big + rest[:: max(len(rest) // 8, 1)][:8]


def png_set(sources: list[Path], folder: Path) -> int:
    from PIL import Image

    folder.mkdir(parents=True)
    for n, src in enumerate(sources):
        with Image.open(src) as im:
            im.convert("RGB" if im.mode not in ("L", "RGB") else im.mode).save(folder / f"{n:03d}.png")
    return len(sources)


def pdf_set(sources: list[Path], folder: Path, dpi: int, pages: int | None = None) -> int:
    """One PDF of the sources (cycled up to `pages`), each page `dpi` pixels per inch."""
    import img2pdf

    chosen = [sources[i % len(sources)] for i in range(pages or len(sources))]
    layout = img2pdf.get_fixed_dpi_layout_fun((dpi, dpi))
    folder.mkdir(parents=True)
    (folder / "scan.pdf").write_bytes(img2pdf.convert([_embeddable(p) for p in chosen], layout_fun=layout))
    return len(chosen)


def _embeddable(path: Path) -> bytes:
    """JPEG as it is (img2pdf embeds it without re-encoding); other formats as PNG."""
    if path.suffix.lower() in (".jpg", ".jpeg"):
        return path.read_bytes()
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(path) as im:
        im.save(buf, "PNG")
    return buf.getvalue()


def docmill_run(folder: Path, out: Path, models: Path) -> Run:
    cmd = [str(DOCMILL_BIN), "run", str(folder), "--out", str(out), "--models", str(models), "--device", "cpu",
           "--quiet"]
    return _checked("docmill", measure(cmd, REPO))


def peer_run(folder: Path, out: Path) -> Run:
    cmd = [str(PEER3_PYTHON), "-m", "bench.peer_rapidocr3", "--images", str(folder), "--out", str(out)]
    return _checked(NEWEST_PEER, measure(cmd, REPO))


def row(run: Run, pages: int) -> dict[str, Any]:
    return {"pages": pages, "wall_s": round(run.wall_s, 2), "cpu_s": round(run.cpu_s, 2),
            "pages_per_s": round(pages / run.wall_s, 4), "peak_rss_mb": round(run.maxrss_kib / 1024, 1)}


def page_texts(out: Path) -> list[list[str]]:
    """Each page's lines, in page order, from image results or a document's page results
    (a document result has no lines and is left out)."""
    docs = [json.loads(p.read_text("utf-8")) for p in sorted(out.rglob("*.json"))]
    return [[line["text"] for line in d["lines"]] for d in docs if "lines" in d]


def agreement(ours: list[list[str]], theirs: list[list[str]]) -> dict[str, float]:
    """Pages read identically, and lines the same in the same place, as shares."""
    pages = sum(a == b for a, b in zip(ours, theirs)) / max(len(ours), 1)
    lines = sum(x == y for a, b in zip(ours, theirs) for x, y in zip(a, b))
    return {"pages_identical": round(pages, 3),
            "lines_identical": round(lines / max(sum(len(a) for a in ours), 1), 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=DEFAULT_MODEL_SET)
    p.add_argument("--long-pages", type=int, default=100)
    p.add_argument("--no-peer", action="store_true", help="leave RapidOCR 3.10.0 out")
    args = p.parse_args(argv)
    if not SROIE.is_dir():
        print(f"bench.documents: {SROIE} not found; nothing to measure (skipped)")
        return 0
    models = resolve_models(args.models).root
    with tempfile.TemporaryDirectory(prefix="docmill-docbench-") as tmp:
        work = Path(tmp)
        sources = page_sources(work)
        counts = {"png": png_set(sources, work / "png"), "pdf": pdf_set(sources, work / "pdf", RENDER_DPI),
                  "long-pdf": pdf_set(ten_pages(sources), work / "long", SCAN_DPI, args.long_pages),
                  "ten-pdf": pdf_set(ten_pages(sources), work / "ten", SCAN_DPI, 10)}
        rows: dict[str, Any] = {}
        for name in ("png", "pdf", "long-pdf", "ten-pdf"):
            folder = work / {"png": "png", "pdf": "pdf", "long-pdf": "long", "ten-pdf": "ten"}[name]
            rows[f"docmill:{name}"] = row(docmill_run(folder, work / "out" / name, models), counts[name])
            print(f"  docmill {name}: {rows[f'docmill:{name}']}", file=sys.stderr)
        if not args.no_peer:
            rows[f"{NEWEST_PEER}:png"] = row(peer_run(work / "png", work / "out" / "peer"), counts["png"])
        same = agreement(page_texts(work / "out" / "pdf"), page_texts(work / "out" / "png"))
        shutil.rmtree(work / "demo")
    report = {"schema": "docmill.bench.documents/v1", "models": args.models, "render_dpi": RENDER_DPI,
              "sets": counts, "rows": rows,
              "pdf_over_png_speed": round(rows["docmill:pdf"]["pages_per_s"] / rows["docmill:png"]["pages_per_s"], 3),
              "long_over_ten_rss": round(rows["docmill:long-pdf"]["peak_rss_mb"]
                                         / rows["docmill:ten-pdf"]["peak_rss_mb"], 3),
              "pdf_read_as_png": same}
    print(format_table(report))
    print(f"written {save_result('documents', report).relative_to(REPO)}")
    return 0


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{'':24}{'pages':>6}{'pages/s':>9}{'CPU s':>8}{'RSS MB':>8}"]
    for label, r in report["rows"].items():
        lines.append(f"{label:24}{r['pages']:>6}{r['pages_per_s']:>9.3f}{r['cpu_s']:>8.1f}{r['peak_rss_mb']:>8.0f}")
    same = report["pdf_read_as_png"]
    lines.append(f"pdf/png speed {report['pdf_over_png_speed']:.3f}; long/ten RSS {report['long_over_ten_rss']:.3f}; "
                 f"PDF pages read as their PNGs: {same['pages_identical']:.0%} of pages, "
                 f"{same['lines_identical']:.0%} of lines identical")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
