"""What every writer reads off a result the same way: its lines in blocks, in the result's
order; each line's words; and which way a line's text runs on the page.

Reading order is the result's line order, never re-sorted: a block is a run of consecutive
lines with the same `block` number.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from docmill.result import Line, OcrResult, Word

BBox = tuple[int, int, int, int]  # left, top, right, bottom in pixels


def blocks(result: OcrResult) -> Iterator[list[Line]]:
    """The result's lines as runs of one block each, in the result's order."""
    run: list[Line] = []
    for line in result.lines:
        if run and line.block != run[-1].block:
            yield run
            run = []
        run.append(line)
    if run:
        yield run


def text_angle(result: OcrResult, line: Line) -> int:
    """Which way the line's text runs in the result's pixels, in degrees clockwise from left
    to right: the page's turn (page orientation) plus the line's own (the angle classifier)."""
    page_turn = result.orientation.angle if result.orientation else 0
    return (page_turn + line.angle) % 360


def reading_corners(box: list[list[int]], angle: int) -> np.ndarray:
    """The box's corners from where its text starts: top-left, top-right, bottom-right,
    bottom-left as the text reads, for a box given clockwise from its top-left corner on
    the image and text running `angle` degrees clockwise."""
    return np.roll(np.asarray(box, np.float64), -(angle // 90), axis=0)


def line_words(result: OcrResult, line: Line) -> list[Word]:
    """The line's words: the engine's own when it boxed them (word_boxes), else one word per
    whitespace-separated token, the line's box shared out along its text in proportion to
    the characters (spaces included), each with the line's score."""
    if line.words is not None:
        return list(line.words)
    corners = reading_corners(line.box, text_angle(result, line))
    tokens = line.text.split()
    total = max(1, len(" ".join(tokens)))
    words, start = [], 0
    for token in tokens:
        box = _along(corners, start / total, (start + len(token)) / total)
        words.append(Word(text=token, score=line.score, box=_from_top_left(box, text_angle(result, line))))
        start += len(token) + 1
    return words


def _along(corners: np.ndarray, start: float, end: float) -> np.ndarray:
    """The part of a reading-ordered box between two fractions of its length."""
    top_left, top_right, bottom_right, bottom_left = corners
    top = [top_left + (top_right - top_left) * f for f in (start, end)]
    bottom = [bottom_left + (bottom_right - bottom_left) * f for f in (end, start)]
    return np.array([*top, *bottom])


def _from_top_left(corners: np.ndarray, angle: int) -> list[list[int]]:
    """Reading-ordered corners back in the result's order (clockwise from the image's
    top-left), as integer pixels."""
    return np.rint(np.roll(corners, angle // 90, axis=0)).astype(int).tolist()


def bbox(points: Sequence[Sequence[float]]) -> BBox:
    """The axis-aligned box around a box's points."""
    array = np.asarray(points)
    return int(array[:, 0].min()), int(array[:, 1].min()), int(array[:, 0].max()), int(array[:, 1].max())


def union(boxes: Sequence[BBox]) -> BBox:
    """The smallest box holding all of `boxes`."""
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
