"""`make bench` (OCRmyPDF part): docmill against OCRmyPDF 17 with Tesseract, both turning the
same scanned PDF into a searchable PDF. A benchmark, not a test: it prints a table, writes
bench/results/ocrmypdf.json, and fails only when a side cannot run at all.

    .venv/bin/python -m bench.ocrmypdf_peer [--pages N] [--sides docmill,ocrmypdf] [--work DIR]

The input is one PDF built from ../shared's 20 SROIE receipts and docmill's five demo pages,
each page image embedded as it is, at 150 dpi (bench.documents' `page_sources` and `pdf_set`).
Each side runs once, as one process, timed from outside (bench.run_bench.measure: wall, CPU
of the process and its waited-for children, ru_maxrss):

- docmill:  .venv/bin/docmill run scan.pdf --out OUT --format pdf,txt --models SET --quiet
            (its defaults otherwise: device auto, batch size, threads);
- ocrmypdf: .venv-ocrmypdf/bin/ocrmypdf --jobs CPUS --output-type pdf --optimize 0
            --rotate-pages -l eng --sidecar OUT.txt scan.pdf OUT.pdf
            (OCRmyPDF 17 from PyPI, Debian's Tesseract; the scan has no text layer, so every page
            is OCRed without --force-ocr, which would rasterise the pages anew; --output-type pdf
            and -O0 because docmill writes a plain PDF and leaves the images alone;
            --rotate-pages because docmill turns upside-down pages by default).

Accuracy is judged on the deliverable: each page's text from the side's output PDF, with
`pdftotext -layout -f N -l N` (rows as on the page, the order score.py reads its labels in)
and with plain `pdftotext -f N -l N` (poppler's reading order), scored by
../shared/bench/score.py (word F1, CER without whitespace) against the SROIE labels and against
demo.pages.truth() for the demo pages (there also demo.scoring.compare_lines: exact lines in
order, sequence score). The text files (docmill's .txt, OCRmyPDF's sidecar; pages split at
form feeds) are scored the same way.

Peak memory: ru_maxrss is the largest single process (OCRmyPDF runs Tesseract in child
processes); `tree_pss_mb` adds a sampled peak of the PSS summed over the whole process tree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.documents import RENDER_DPI, SROIE, page_sources, pdf_set
from bench.paths import SROIE_LABELS
from bench.results import save_result
from bench.run_bench import DOCMILL_BIN, REPO, SCORER, Run, _checked, measure, resolve_models
from bench.ticker import Ticker
from docmill.settings import DEFAULT_MODEL_SET

OCRMYPDF_BIN = REPO / ".venv-ocrmypdf" / "bin" / "ocrmypdf"
LABELS = SROIE_LABELS
SETUP = "make .venv-ocrmypdf/.installed and scripts/ensure-tools.sh with Tesseract (see the Makefile)"
PAGE_BREAK = "\f"
SIDES = ("docmill", "ocrmypdf")
TEXT_SOURCES = {"pdf_layout": "pdftotext -enc UTF-8 -layout -f N -l N OUT.pdf - (the output PDF, in rows)",
                "pdf": "pdftotext -enc UTF-8 -f N -l N OUT.pdf - (the output PDF, poppler's reading order)",
                "txt": "docmill's OUT.txt / OCRmyPDF's --sidecar, pages split at form feeds"}


@dataclass(frozen=True)
class Page:
    """Page `number` (1-based) of the scan: `key` names it in the scorer's labels, `group` is
    sroie or demo."""

    number: int
    source: Path
    group: str
    key: str


def choose(sources: Sequence[Path], limit: int | None) -> list[Path]:
    """All sources, or `limit` of them for a smoke run: half (at least one) the first
    receipts, the rest the last demo pages (the two-column and the upside-down page)."""
    if not limit:
        return list(sources)
    receipts = [p for p in sources if p.parent == SROIE]
    demo = [p for p in sources if p.parent != SROIE]
    n_receipts = min(len(receipts), max(limit // 2, 1))
    return receipts[:n_receipts] + demo[len(demo) - min(limit - n_receipts, len(demo)):]


def pages_of(sources: Sequence[Path]) -> list[Page]:
    return [Page(n, src, "sroie", f"images/{src.name}") if src.parent == SROIE
            else Page(n, src, "demo", f"demo/{src.name}")
            for n, src in enumerate(sources, 1)]


def text_lines(text: str) -> list[str]:
    """A page's non-blank lines, each with its whitespace collapsed."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def split_pages(text: str, count: int) -> list[str]:
    """A text file's pages, split at form feeds (Tesseract's and docmill's page break), as
    exactly `count` pages: a trailing break adds no page, missing pages are empty."""
    parts = text.split(PAGE_BREAK)
    if len(parts) > count and not "".join(parts[count:]).strip():
        parts = parts[:count]
    return (parts + [""] * count)[:count]


def pdf_page_text(pdf: Path, number: int, layout: bool = False) -> str:
    """Page `number`'s text layer as poppler reads it (`pdftotext -f N -l N`): in poppler's
    reading order, or with `layout` in rows as the words lie on the page."""
    done = subprocess.run(["pdftotext", "-enc", "UTF-8", *(["-layout"] if layout else []), "-f", str(number),
                           "-l", str(number), str(pdf), "-"], capture_output=True, text=True, check=True)
    return done.stdout


def label_records(pages: Sequence[Page], sroie_labels: dict[str, dict[str, Any]],
                  demo_truth: dict[str, list[str]]) -> list[dict[str, Any]]:
    """labels.jsonl records for these pages: a receipt's own SROIE label, and a demo page's
    truth lines without boxes (score.py then takes them in the order given)."""
    records = []
    for page in pages:
        if page.group == "sroie":
            records.append({**sroie_labels[page.key], "image": page.key})
        else:
            records.append({"image": page.key,
                            "lines": [{"points": None, "text": t} for t in demo_truth[page.source.name]]})
    return records


def result_record(lines: Sequence[str]) -> dict[str, Any]:
    """A docmill.result/v1-shaped record of text alone, as score.py reads it: lines without
    boxes keep the order given (the PDF's reading order), and no detection metric applies."""
    return {"lines": [{"text": t, "score": None, "box": None} for t in lines], "error": None}


def summarise(per_page: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """score.py's micro-averages over some pages' sums (from its --per-image lines)."""
    tot = {k: sum(p[k] for p in per_page) for k in ("matched_tokens", "pred_tokens", "gt_tokens", "edits",
                                                   "gt_chars_nospace")}
    div = lambda a, b: a / b if b else 0.0  # noqa: E731
    precision, recall = div(tot["matched_tokens"], tot["pred_tokens"]), div(tot["matched_tokens"], tot["gt_tokens"])
    return {"pages": len(per_page), "word_f1": round(div(2 * precision * recall, precision + recall), 4),
            "word_precision": round(precision, 4), "word_recall": round(recall, 4),
            "cer_nospace": round(div(tot["edits"], tot["gt_chars_nospace"]), 4)}


def score_texts(pages: Sequence[Page], texts: Sequence[str], labels: list[dict[str, Any]],
                demo_truth: dict[str, list[str]], work: Path) -> dict[str, Any]:
    """Word F1 and CER per group (sroie, demo, all) through score.py's CLI, its per-page
    sums summed again per group; demo pages also in order, line by line."""
    from demo.scoring import compare_lines

    work.mkdir(parents=True)
    (work / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in labels), "utf-8")
    for page, text in zip(pages, texts, strict=True):
        target = work / "results" / f"{page.key}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(result_record(text_lines(text))), "utf-8")
    subprocess.run([sys.executable, str(SCORER), str(work / "labels.jsonl"), str(work / "results"),
                    "--per-image", str(work / "per_page.jsonl")], capture_output=True, text=True, check=True)
    by_key = {r["image"]: r for r in map(json.loads, (work / "per_page.jsonl").read_text("utf-8").splitlines())}
    rows = [by_key[p.key] for p in pages]
    out: dict[str, Any] = {group: summarise([r for r, p in zip(rows, pages) if p.group == group])
                           for group in ("sroie", "demo") if any(p.group == group for p in pages)}
    out["all"] = summarise(rows)
    demo = [(p, compare_lines(demo_truth[p.source.name], text_lines(t)))
            for p, t in zip(pages, texts) if p.group == "demo"]
    if demo:
        out["demo"]["exact_lines"] = sum(c["exact_lines"] for _, c in demo)
        out["demo"]["expected_lines"] = sum(c["expected_lines"] for _, c in demo)
        out["demo"]["sequence_score"] = round(sum(c["sequence_score"] for _, c in demo) / len(demo), 4)
        out["demo"]["per_page"] = {p.source.name: c for p, c in demo}
    out["per_page_word_f1"] = {p.key: round(_f1(r), 4) for p, r in zip(pages, rows)}
    return out


def _f1(row: dict[str, Any]) -> float:
    return 2 * row["matched_tokens"] / (row["pred_tokens"] + row["gt_tokens"]) if row["gt_tokens"] else 0.0


class TreeMemory(Ticker):
    """Peak of the PSS summed over this process's descendants, sampled every `interval` s
    from /proc while a child runs (ru_maxrss sees one process at a time)."""

    def __init__(self, interval: float = 0.25) -> None:
        super().__init__(interval)
        self.peak_kib = 0

    def tick(self, elapsed_s: float) -> None:
        self.peak_kib = max(self.peak_kib, sum(_pss_kib(pid) for pid in descendants(os.getpid())))


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def docmill_command(pdf: Path, out: Path, models: Path) -> list[str]:
    return [str(DOCMILL_BIN), "run", str(pdf), "--out", str(out), "--format", "pdf,txt", "--models", str(models),
            "--quiet"]


def ocrmypdf_command(pdf: Path, out_pdf: Path, sidecar: Path, jobs: int) -> list[str]:
    return [str(OCRMYPDF_BIN), "--jobs", str(jobs), "--output-type", "pdf", "--optimize", "0", "--rotate-pages",
            "-l", "eng", "--sidecar", str(sidecar), "--quiet", str(pdf), str(out_pdf)]


def run_side(side: str, pdf: Path, out: Path, models: Path, jobs: int) -> tuple[Run, int, Path, Path]:
    """Run one side once; its output PDF and text file."""
    if side == "docmill":
        cmd, out_pdf, out_txt = docmill_command(pdf, out, models), out / f"{pdf.name}.pdf", out / f"{pdf.name}.txt"
    else:
        out.mkdir(parents=True)
        out_pdf, out_txt = out / pdf.name, out / f"{pdf.stem}.txt"
        cmd = ocrmypdf_command(pdf, out_pdf, out_txt, jobs)
    print(f"  {side}: {' '.join(cmd)}", file=sys.stderr)
    with TreeMemory() as tree:
        run = _checked(side, measure(cmd, REPO))
    return run, tree.peak_kib, out_pdf, out_txt


def docmill_page_errors(out: Path, pdf: Path) -> int:
    docs = [json.loads(p.read_text("utf-8")) for p in sorted((out / pdf.name).glob("page-*.json"))]
    return sum(d.get("error") is not None for d in docs)


def versions() -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True)
        except OSError:
            return "missing"
        said = (done.stdout or done.stderr).strip()
        return said.splitlines()[0] if said else "?"

    return {"ocrmypdf": first_line([str(OCRMYPDF_BIN), "--version"]),
            "tesseract": first_line(["tesseract", "--version"]), "pdftotext": first_line(["pdftotext", "-v"])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=DEFAULT_MODEL_SET, help="docmill's model set (default: the default set)")
    p.add_argument("--pages", type=int, default=None, help="only this many pages (a smoke run)")
    p.add_argument("--sides", default=",".join(SIDES))
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="OCRmyPDF's --jobs (default: CPU count)")
    p.add_argument("--work", type=Path, help="keep the PDF and every output here (default: a temporary folder)")
    args = p.parse_args(argv)
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not set(sides) <= set(SIDES) or not sides:
        p.error(f"--sides: any of {','.join(SIDES)}")
    if not SROIE.is_dir():
        print(f"bench.ocrmypdf_peer: {SROIE} not found; nothing to measure (skipped)")
        return 0
    if "ocrmypdf" in sides and not OCRMYPDF_BIN.exists():
        raise SystemExit(f"bench.ocrmypdf_peer: {OCRMYPDF_BIN} missing: {SETUP}")
    if "ocrmypdf" in sides and not shutil.which("tesseract"):
        raise SystemExit(f"bench.ocrmypdf_peer: tesseract missing: {SETUP}")
    from demo.pages import truth

    models = resolve_models(args.models)
    load = os.getloadavg()
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="docmill-ocrmypdf-")
    work = args.work or Path(tmp.name)  # type: ignore[union-attr]
    try:
        sources = choose(page_sources(work), args.pages)
        n_pages = pdf_set(sources, work / "input", RENDER_DPI)
        pdf, pages = work / "input" / "scan.pdf", pages_of(sources)
        sroie_labels = {r["image"]: r for r in map(json.loads, LABELS.read_text("utf-8").splitlines()) if r}
        demo_truth = truth()
        labels = label_records(pages, sroie_labels, demo_truth)
        rows: dict[str, Any] = {}
        for side in sides:
            run, tree_kib, out_pdf, out_txt = run_side(side, pdf, work / "out" / side, models.root, args.jobs)
            texts = {"pdf_layout": [pdf_page_text(out_pdf, page.number, layout=True) for page in pages],
                     "pdf": [pdf_page_text(out_pdf, page.number) for page in pages],
                     "txt": split_pages(out_txt.read_text("utf-8", errors="replace"), n_pages)}
            rows[side] = {
                "pages": n_pages, "wall_s": round(run.wall_s, 2), "cpu_s": round(run.cpu_s, 2),
                "pages_per_s": round(n_pages / run.wall_s, 4), "cpu_s_per_page": round(run.cpu_s / n_pages, 3),
                "peak_rss_mb": round(run.maxrss_kib / 1024, 1), "tree_pss_mb": round(tree_kib / 1024, 1),
                "output_pdf_mb": round(out_pdf.stat().st_size / 2**20, 2),
                "stderr_tail": run.stderr.strip().splitlines()[-5:],
                "accuracy": {name: score_texts(pages, found, labels, demo_truth, work / "score" / side / name)
                             for name, found in texts.items()},
            }
            if side == "docmill":
                rows[side]["page_errors"] = docmill_page_errors(work / "out" / side, pdf)
            print(f"  {side}: {rows[side]['wall_s']} s, {rows[side]['pages_per_s']} pages/s", file=sys.stderr)
    finally:
        if tmp:
            tmp.cleanup()
    report = {
        "schema": "docmill.bench.ocrmypdf/v1", "models": models.name, "models_version": models.version,
        "render_dpi": RENDER_DPI, "pages": n_pages, "sroie_pages": sum(p.group == "sroie" for p in pages),
        "demo_pages": sum(p.group == "demo" for p in pages),
        "commands": {"docmill": " ".join(docmill_command(Path("scan.pdf"), Path("OUT"), Path(models.name))),
                     "ocrmypdf": " ".join(ocrmypdf_command(Path("scan.pdf"), Path("OUT.pdf"), Path("OUT.txt"),
                                                           args.jobs))},
        "text_sources": TEXT_SOURCES,
        "versions": versions(),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                 "loadavg_at_start": [round(x, 2) for x in load],
                 "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "rows": rows,
    }
    print(format_table(report))
    print(f"written {save_result('ocrmypdf', report).relative_to(REPO)}")
    return 0


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{report['pages']} pages at {report['render_dpi']} dpi; load average at start "
             f"{report['host']['loadavg_at_start']}",
             f"{'':18}{'pages/s':>8}{'CPU s/p':>8}{'RSS MB':>7}{'tree MB':>8}"
             f"{'sroie F1':>9}{'CER':>7}{'demo F1':>8}{'CER':>7}{'seq':>7}{'exact':>7}"]
    for side, r in report["rows"].items():
        for n, (source, s) in enumerate(r["accuracy"].items()):
            sroie, demo = s.get("sroie", {}), s.get("demo", {})
            speed = (f"{r['pages_per_s']:>8.3f}{r['cpu_s_per_page']:>8.2f}{r['peak_rss_mb']:>7.0f}"
                     f"{r['tree_pss_mb']:>8.0f}") if n == 0 else " " * 31
            exact = f"{demo['exact_lines']}/{demo['expected_lines']}" if demo else "-"
            lines.append(f"{(side + ' ' if n == 0 else '  ') + source:18}{speed}{_num(sroie, 'word_f1', 9)}"
                         f"{_num(sroie, 'cer_nospace', 7)}{_num(demo, 'word_f1', 8)}{_num(demo, 'cer_nospace', 7)}"
                         f"{_num(demo, 'sequence_score', 7)}{exact:>7}")
    lines.append("pdf_layout: pdftotext -layout per page of the output PDF (rows, as score.py orders its labels); "
                 "pdf: pdftotext per page (poppler's reading order); txt: the side's text file")
    lines.append("RSS MB: the largest single process (ru_maxrss); tree MB: peak PSS summed over the process tree")
    return "\n".join(lines)


def _num(group: dict[str, Any], key: str, width: int) -> str:
    return f"{group[key]:>{width}.3f}" if key in group else f"{'-':>{width}}"


if __name__ == "__main__":
    sys.exit(main())
