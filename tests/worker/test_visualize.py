"""`--visualize` must show the text the models read: Chinese as real glyphs (not the empty
"tofu" boxes of a font without CJK), and every line's text inside its own box, however long
the line or tall the box, so no text spills over its neighbours or off the panel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from docmill.result import Line
from worker.visualize import render_png

MISSING_GLYPH = "\U0010fffd"  # a private-use code point no font draws: its "tofu"


def _right_ink(image: np.ndarray, text: str, box: list[list[int]]) -> np.ndarray:
    """Where the right panel has grey ink: text, faint anti-aliased edges included, but not
    the white ground or the green box outline."""
    png = render_png(image, [Line(text=text, score=0.9, box=box)])
    canvas = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    right = canvas[:, image.shape[1]:]
    assert right.shape == image.shape
    spread = right.max(axis=2).astype(int) - right.min(axis=2)
    return (spread < 16) & (right.max(axis=2) < 224)


def _outside(ink: np.ndarray, box: list[list[int]]) -> int:
    """Ink pixels outside the box polygon (grown by one pixel for anti-aliased edges)."""
    inside = np.zeros(ink.shape, np.uint8)
    cv2.fillPoly(inside, [np.array(box, np.int32)], 1)
    inside = cv2.dilate(inside, np.ones((3, 3), np.uint8))
    return int((ink & (inside == 0)).sum())


def test_chinese_text_is_drawn_with_real_glyphs_inside_its_box() -> None:
    page = np.full((120, 400, 3), 255, np.uint8)
    box = [[20, 20], [380, 20], [380, 100], [20, 100]]
    ink = _right_ink(page, "发票号码", box)
    tofu = _right_ink(page, MISSING_GLYPH * 4, box)
    assert ink.sum() > 500 and _outside(ink, box) == 0
    assert (ink != tofu).sum() > 500  # distinct glyphs, not four copies of the missing-glyph box
    quarters = np.array_split(ink[20:100, 20:380], 4, axis=1)
    assert len({q.tobytes() for q in quarters}) == 4


def test_a_tall_box_holds_its_long_line_vertically() -> None:
    page = np.full((600, 200, 3), 255, np.uint8)
    box = [[80, 20], [120, 20], [120, 580], [80, 580]]
    ink = _right_ink(page, "增值税专用发票联次第一联记账联", box)
    rows = np.flatnonzero(ink.any(axis=1))
    assert ink.sum() > 500 and _outside(ink, box) == 0
    assert rows[-1] - rows[0] > 0.8 * 560  # the glyphs run down the box, not shrunk across it


@pytest.mark.parametrize("box", [[[20, 40], [200, 40], [200, 70], [20, 70]],
                                 [[40, 130], [300, 100], [305, 145], [45, 175]]],
                         ids=["short-wide", "tilted"])
def test_a_long_line_fits_its_box(box: list[list[int]]) -> None:
    page = np.full((200, 400, 3), 255, np.uint8)
    ink = _right_ink(page, "Payment within 30 days. Thank you for your business. 谢谢", box)
    assert ink.sum() > 100 and _outside(ink, box) == 0
