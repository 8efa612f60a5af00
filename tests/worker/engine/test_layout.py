"""Reading order by column and block (worker/engine/layout.py) on boxes laid out like real
pages: two columns under a title, a receipt's label and amount rows, a plain page."""

from __future__ import annotations

import numpy as np
import pytest

from worker.engine.layout import _straightened, reading_order


def box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def two_columns(title_right: float) -> list[np.ndarray]:
    """A title, then 8 lines on the left and 6 on the right with their rows aligned."""
    boxes = [box(110, 120, title_right, 160)]
    boxes += [box(110, 240 + r * 43, 500 - (r % 3) * 40, 268 + r * 43) for r in range(8)]
    boxes += [box(660, 240 + r * 43, 1050 - (r % 2) * 60, 268 + r * 43) for r in range(6)]
    return boxes


def test_two_columns_are_read_one_after_the_other():
    for title_right in (450, 1000):  # a short title, and one spanning the gutter
        order = reading_order(two_columns(title_right))
        assert order.indices == list(range(15))
        assert order.blocks == [0] + [1] * 8 + [2] * 6


def test_receipt_rows_read_label_then_amount():
    boxes = [box(100, 50, 600, 80)]
    for r in range(6):
        boxes += [box(50, 100 + r * 40, 250, 125 + r * 40), box(500, 100 + r * 40, 600, 125 + r * 40)]
    order = reading_order(boxes)
    assert order.indices == list(range(13))


def test_paragraph_gaps_start_blocks_and_input_order_does_not_matter():
    boxes = [box(100, 100 + r * 40, 900, 130 + r * 40) for r in range(3)]
    boxes += [box(100, 300 + r * 40, 900, 330 + r * 40) for r in range(2)]
    shuffled = [4, 1, 3, 0, 2]
    order = reading_order([boxes[i] for i in shuffled])
    assert [shuffled[i] for i in order.indices] == [0, 1, 2, 3, 4]
    assert order.blocks == [0, 0, 0, 1, 1]


def test_a_double_spaced_typescript_is_one_block_a_paragraph_not_one_a_line():
    """Lines 30 high with gaps of 33 between them (double spacing) are one paragraph; a blank
    line more (a gap of 96) starts the next: a page of 12 lines, then 10."""
    tops = [100 + 63 * r for r in range(12)] + [100 + 63 * 11 + 126 + 63 * r for r in range(10)]
    order = reading_order([box(100, t, 900, t + 30) for t in tops])
    assert order.indices == list(range(22))
    assert order.blocks == [0] * 12 + [1] * 10


def test_a_letter_of_short_paragraphs_keeps_each_paragraph_its_own_block():
    """More gaps between paragraphs than within them, as on the demo letter as read (lines 36
    high): an address of three lines, a date, a greeting, paragraphs of 4, 2 and 1 lines, a
    closing and a signature of two. The median gap is a paragraph's there; each is a block."""
    gaps = [26, 14, 113, 69, 66, 15, 13, 12, 61, 9, 62, 63, 114, 19]
    tops = [100 + 36 * k + sum(gaps[:k]) for k in range(len(gaps) + 1)]
    order = reading_order([box(100, t, 900, t + 36) for t in tops])
    assert order.indices == list(range(len(tops)))
    assert order.blocks == [0, 0, 0, 1, 2, 3, 3, 3, 3, 4, 4, 5, 6, 7, 7]


def test_skewed_touching_lines_fall_back_to_rows():
    boxes = [box(100, 100, 500, 140), box(520, 110, 900, 150), box(100, 135, 500, 175)]
    assert reading_order(boxes).indices == [0, 1, 2]


def turned(boxes: list[np.ndarray], degrees: float) -> list[np.ndarray]:
    """The boxes as on the page scanned `degrees` askew (counter-clockwise, y down), each box
    still starting at its own top-left corner."""
    theta = np.radians(-degrees)
    turn = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return [(b.astype(np.float64) @ turn.T).astype(np.float32) for b in boxes]


@pytest.mark.parametrize("degrees", [-6, -2, 2, 4, 10])
def test_a_page_scanned_askew_reads_as_the_straight_one(degrees):
    """Askew, each line's upright bounding box overlaps the next one's: cut as they stand,
    two columns came out as rows. Straightened first, they read as the straight page."""
    straight = reading_order(two_columns(1000))
    askew = reading_order(turned(two_columns(1000), degrees))
    assert askew == straight


def test_the_slant_comes_from_long_lines_only():
    """Short boxes (page numbers, a row of figures) say nothing of the page's slant: a
    straight page with more of them, each askew, than lines still reads as it stands."""
    digits = [box(110 + k * 45, 700, 140 + k * 45, 728) for k in range(20)]  # a row of figures below
    slanted = [turned([d - d.mean(axis=0)], 20)[0] + d.mean(axis=0) for d in digits]  # each about its centre
    order = reading_order(two_columns(1000) + slanted).indices
    assert [i for i in order if i < 15] == list(range(15))


def _slanted(degrees: float, y: float) -> np.ndarray:
    """A 300 x 30 line at height `y`, turned `degrees` about its own centre."""
    line = box(100, y, 400, y + 30)
    centre = line.mean(axis=0)
    return turned([line - centre], degrees)[0] + centre


def test_a_photo_whose_lines_disagree_on_the_slant_is_cut_as_it_stands():
    """Signs photographed at several angles have no one slant to take out (the shared
    img_195.jpg: 1, 1, 8, 9 and 19 degrees); lines that agree are straightened."""
    signs = [_slanted(d, 100 + 60 * k) for k, d in enumerate([1, 1, 8, 9, 19])]
    assert _straightened(signs) is signs
    askew = [_slanted(d, 100 + 60 * k) for k, d in enumerate([6, 5.5, 6.5, 6, 12])]
    tops = [b[1] - b[0] for b in _straightened(askew)[:4]]
    assert all(abs(np.degrees(np.arctan2(t[1], t[0]))) < 0.6 for t in tops)


def test_no_boxes():
    assert reading_order([]).indices == []
