"""Helpers of the output writers' tests: results from the real engine or built by hand, and
poppler's tools (pdftotext, pdftoppm) to read back what the searchable PDF shows."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from docmill.result import DocumentPage, ImageInfo, Line, ModelsInfo, OcrResult, PageOrientation, SourceInfo, Word
from worker.engine.pipeline import PageLines
from worker.outputs.page import OutputPage

MODELS = ModelsInfo(set="pp-ocrv6", version="test")
XHTML = "{http://www.w3.org/1999/xhtml}"


def result_of(lines: PageLines, width: int, height: int, page: DocumentPage | None = None) -> OcrResult:
    """The result the runners build from the engine's output (as worker/results.py does)."""
    turn = lines.orientation
    return OcrResult(
        source=SourceInfo(uri="memory://page"), image=ImageInfo(width=width, height=height), models=MODELS,
        providers=["CPUExecutionProvider"], page=page,
        orientation=PageOrientation(angle=turn.angle, score=turn.score) if turn else None,
        lines=[Line(text=l.text, score=l.score, box=l.box, angle=l.angle, angle_score=l.angle_score, block=l.block,
                    words=None if l.words is None else [Word(text=w.text, score=w.score, box=w.box) for w in l.words])
               for l in lines.lines])


def rect(left: int, top: int, right: int, bottom: int) -> list[list[int]]:
    """A box's 4 points, clockwise from the top-left."""
    return [[left, top], [right, top], [right, bottom], [left, bottom]]


def hand_line(text: str, box: list[list[int]], block: int = 0, words: list[tuple[str, list[list[int]]]] | None = None,
              angle: int = 0) -> Line:
    """A line built by hand, its words (text, box) given or left to the writers' fallback."""
    return Line(text=text, score=0.9, box=box, angle=angle, block=block,  # type: ignore[arg-type]
                words=None if words is None else [Word(text=t, score=0.8, box=b) for t, b in words])


def hand_result(lines: list[Line], width: int, height: int, page: DocumentPage | None = None,
                orientation: int | None = None) -> OcrResult:
    return OcrResult(source=SourceInfo(uri="memory://page"), image=ImageInfo(width=width, height=height),
                     models=MODELS, providers=["CPUExecutionProvider"], page=page, lines=lines,
                     orientation=PageOrientation(angle=orientation, score=0.99) if orientation else None)  # type: ignore[arg-type]


def hand_page(lines: list[Line], width: int = 800, height: int = 600, **result: object) -> OutputPage:
    return OutputPage(hand_result(lines, width, height, **result), width, height, image_name="page.png")  # type: ignore[arg-type]


def poppler(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(f"{tool} is missing: `make test` installs poppler-utils (scripts/ensure-tools.sh)")
    return found


def pdf_words(pdf: Path, page: int = 1) -> list[tuple[str, tuple[float, float, float, float]]]:
    """pdftotext -bbox-layout's words on one page: text and box in points from the top-left
    of the page as shown (crop box, /Rotate applied)."""
    out = subprocess.run([poppler("pdftotext"), "-bbox-layout", "-cropbox", "-f", str(page), "-l", str(page), str(pdf), "-"],
                         check=True, capture_output=True).stdout
    root = ET.fromstring(out)
    return [(w.text or "", tuple(float(w.get(k)) for k in ("xMin", "yMin", "xMax", "yMax")))  # type: ignore[misc]
            for w in root.iter(f"{XHTML}word")]


def pdf_text(pdf: Path) -> str:
    return subprocess.run([poppler("pdftotext"), "-layout", str(pdf), "-"], check=True, capture_output=True).stdout.decode()


def render(pdf: Path, dpi: float, tmp: Path, page: int = 1) -> np.ndarray:
    """pdftoppm's RGB rendering of one page at `dpi`."""
    stem = tmp / f"render-{page}"
    subprocess.run([poppler("pdftoppm"), "-r", str(dpi), "-f", str(page), "-l", str(page), "-singlefile", str(pdf),
                    str(stem)], check=True)
    return np.asarray(Image.open(stem.with_suffix(".ppm")).convert("RGB"))


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference per channel (0 to 255) of two RGB images of the same size
    (a renderer may give one more row or column from rounding: only the common part counts)."""
    assert abs(a.shape[0] - b.shape[0]) <= 1 and abs(a.shape[1] - b.shape[1]) <= 1, (a.shape, b.shape)
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return float(np.abs(a[:h, :w].astype(int) - b[:h, :w].astype(int)).mean())
