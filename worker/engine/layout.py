"""Reading order by column and block: recursive XY-cut over the line boxes.

PaddleOCR's sorted_boxes reads a page top to bottom, line by line, so a two-column page comes
out interleaved. Here a region is cut recursively at its widest gap: a horizontal gap
(between bands of lines) or a vertical gutter (between columns), whichever is wider.

Gaps within BAND_TIE of the widest are cut together, so a page of evenly spaced lines is
cut in one level, not one line per level. A vertical gap counts as a gutter only when it separates columns of running text: at least
`MIN_COLUMN_LINES` lines on each side, lines long for their height on both sides (median
width / height at least `COLUMN_MIN_ASPECT`), and a gap no wider than the median line
beside it. Measured on the demo pages and the shared receipts: the two-column page's sides
have median aspects 9.5 and 11.4, while the gaps in receipts (labels and amounts, keys and
values, table cells) have sides of 1.0 to 7.4 (one of 10.3 against 3.1); cutting there read
receipts in columns of labels and columns of amounts.

Each line also gets a block index: blocks change at a column cut and at a paragraph break,
which hOCR and ALTO output use as text blocks. A paragraph break is a horizontal gap taller
than a line and than PARAGRAPH_OVER_LEADING times the page's leading (the lower quartile of
the gaps from a line to the next below it in its column): a typescript double-spaced has gaps
as tall as its lines between all of them, and read one block a line before. Not the median:
a letter of short paragraphs has more gaps between paragraphs than within them.

The cuts are made on the page straightened first: its boxes turned back by the median slant
of its long lines. Askew, each line's upright bounding box overlaps the next line's, so there
was no gap to cut at and the page fell to row order: scanned 2 degrees askew, the demo pages
read at a sequence score of 0.818 (1.000 straight), and the receipts turned 4 degrees at
0.761 (0.894 straight); straightened, 1.000 and 0.892 (`python -m bench.reading_order --skew
2,4,8`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_COLUMN_LINES = 2
COLUMN_MIN_ASPECT = 8.0  # median width / height of the lines on each side of a gutter
GUTTER_RATIO = 1.0  # a gutter is at most as wide as the median line on its narrower side
PARAGRAPH_GAP = 1.0  # a horizontal gap taller than this many median line heights starts a block
PARAGRAPH_OVER_LEADING = 1.5  # ... when it is also this many times the page's leading
LEADING_QUANTILE = 0.25  # the page's leading: this quantile of its lines' gaps to the next line below
MIN_LEADING_GAPS = 8  # fewer gaps (a photo of a few signs) cannot tell the leading from the breaks
BAND_TIE = 0.8  # horizontal gaps this close to the widest are cut at the same level
SLANT_MIN_ASPECT = 3.0  # lines at least this many times longer than high say the page's slant
SLANT_MIN_DEGREES = 0.5  # a page slanted less is cut as it stands
SLANT_AGREE_DEGREES = 2.0  # long lines this close to the median slant agree with it
SLANT_AGREE_SHARE = 2 / 3  # a page is straightened only when this share of its long lines agree


@dataclass(frozen=True)
class Order:
    """`indices` of the boxes in reading order; `blocks[i]` is the block of box `indices[i]`."""

    indices: list[int]
    blocks: list[int]


def reading_order(boxes: list[np.ndarray]) -> Order:
    """The boxes (4x2 point arrays) in reading order, with a block index for each."""
    if not boxes:
        return Order([], [])
    rects = np.array([[b[:, 0].min(), b[:, 1].min(), b[:, 0].max(), b[:, 1].max()] for b in _straightened(boxes)],
                     np.float64)
    heights = rects[:, 3] - rects[:, 1]
    paragraph = max(PARAGRAPH_GAP * float(np.median(heights)), PARAGRAPH_OVER_LEADING * _leading(rects))
    leaves: list[tuple[list[int], bool]] = []  # (indices in order, starts a new block)
    _cut(rects, list(range(len(boxes))), paragraph, leaves, new_block=True)
    indices, blocks, block = [], [], -1
    for members, starts_block in leaves:
        if starts_block:
            block += 1
        indices += members
        blocks += [block] * len(members)
    return Order(indices, blocks)


def _straightened(boxes: list[np.ndarray]) -> list[np.ndarray]:
    """The boxes turned about the origin by minus the page's slant: the median angle of the
    long lines' top and bottom edges (first corner top-left, clockwise), short and vertical
    boxes left out. As they are when the page is straight within SLANT_MIN_DEGREES, or when
    its long lines do not agree on a slant: a photo of signs at several angles has no one
    slant to take out (the shared img_195.jpg: 1, 1, 8, 9 and 19 degrees)."""
    corners = np.stack(boxes).astype(np.float64)  # (boxes, 4, 2)
    along = corners[:, 1] - corners[:, 0] + corners[:, 2] - corners[:, 3]
    across = corners[:, 3] - corners[:, 0] + corners[:, 2] - corners[:, 1]
    long = np.hypot(*along.T) >= SLANT_MIN_ASPECT * np.maximum(np.hypot(*across.T), 1.0)
    if not long.any():
        return boxes
    slants = np.degrees(np.arctan2(along[long, 1], along[long, 0]))
    median = float(np.median(slants))
    agree = float(np.mean(np.abs(slants - median) <= SLANT_AGREE_DEGREES))
    if abs(median) < SLANT_MIN_DEGREES or agree < SLANT_AGREE_SHARE:
        return boxes
    slant = np.radians(median)
    cos, sin = np.cos(slant), np.sin(slant)
    back = np.array([[cos, sin], [-sin, cos]])  # turns points by -slant
    return list(corners @ back.T)


def _leading(rects: np.ndarray, chunk: int = 256) -> float:
    """The LEADING_QUANTILE of the gaps from a line down to the nearest line below it that it
    overlaps across (the next line of its column), over the lines that have one; 0 when fewer
    than MIN_LEADING_GAPS have. In chunks of lines, so that a dense page's pairs are never all
    in memory at once."""
    gaps = []
    for start in range(0, len(rects), chunk):
        line = rects[start:start + chunk, None, :]
        across = (line[..., 0] < rects[None, :, 2]) & (rects[None, :, 0] < line[..., 2])
        down = rects[None, :, 1] - line[..., 3]
        nearest = np.where(across & (down >= 0), down, np.inf).min(axis=1)
        gaps.append(nearest[np.isfinite(nearest)])
    found = np.concatenate(gaps)
    return float(np.quantile(found, LEADING_QUANTILE)) if len(found) >= MIN_LEADING_GAPS else 0.0


def _cut(rects: np.ndarray, members: list[int], paragraph: float,
         leaves: list[tuple[list[int], bool]], new_block: bool) -> None:
    """Append the leaves of `members` to `leaves`, in reading order; a horizontal gap taller
    than `paragraph` starts a block."""
    if len(members) == 1:
        leaves.append((members, new_block))
        return
    sub = rects[members]
    bands = _groups(sub[:, 1], sub[:, 3])
    columns = _columns(sub)
    band_gap = max((gap for _, gap in bands[1:]), default=0.0)
    if columns and columns[1] >= band_gap:
        for k, group in enumerate(columns[0]):
            _cut(rects, [members[i] for i in group], paragraph, leaves, new_block=True if k else new_block)
        return
    if len(bands) > 1:
        for k, (group, gap) in enumerate(_merge_bands(bands, band_gap)):
            starts = new_block if k == 0 else gap > paragraph
            _cut(rects, [members[i] for i in group], paragraph, leaves, starts)
        return
    leaves.append(([members[i] for i in _row_order(sub)], new_block))


def _merge_bands(bands: list[tuple[list[int], float]], widest: float) -> list[tuple[list[int], float]]:
    """Cut only at the widest band gaps (within BAND_TIE of the widest); the bands between
    stay together, so a title above two columns is cut off first and the columns below it
    are still found, as in the classic XY-cut."""
    merged: list[tuple[list[int], float]] = []
    for group, gap in bands:
        if merged and gap < BAND_TIE * widest:
            merged[-1][0].extend(group)
        else:
            merged.append((list(group), gap))
    return merged


def _groups(lo: np.ndarray, hi: np.ndarray) -> list[tuple[list[int], float]]:
    """Indices grouped by the gaps in the union of the intervals [lo, hi], in order; each
    group with the gap before it (0 for the first)."""
    order = np.argsort(lo, kind="stable")
    groups: list[tuple[list[int], float]] = []
    reach = -np.inf
    for i in order:
        if lo[i] > reach:
            groups.append(([], 0.0 if reach == -np.inf else float(lo[i] - reach)))
        groups[-1][0].append(int(i))
        reach = max(reach, hi[i])
    return groups


def _columns(rects: np.ndarray) -> tuple[list[list[int]], float] | None:
    """The region's columns at its widest gutter, and that gutter's width; None when no
    vertical gap separates columns of text."""
    groups = _groups(rects[:, 0], rects[:, 2])
    best = None
    for k in range(1, len(groups)):
        left = [i for group, _ in groups[:k] for i in group]
        right = [i for group, _ in groups[k:] for i in group]
        gap = groups[k][1]
        if _is_gutter(rects, left, right, gap) and (best is None or gap > best[1]):
            best = ([left, right], gap)
    if best is None:
        return None
    left, right = best[0]
    return [left, right], best[1]


def _is_gutter(rects: np.ndarray, left: list[int], right: list[int], gap: float) -> bool:
    if min(len(left), len(right)) < MIN_COLUMN_LINES:
        return False
    widths = rects[:, 2] - rects[:, 0]
    aspects = widths / np.maximum(rects[:, 3] - rects[:, 1], 1.0)
    if min(float(np.median(aspects[left])), float(np.median(aspects[right]))) < COLUMN_MIN_ASPECT:
        return False
    beside = min(float(np.median(widths[left])), float(np.median(widths[right])))
    return gap <= GUTTER_RATIO * beside


def _row_order(rects: np.ndarray, same_line: float = 0.5) -> list[int]:
    """Lines with no gap between them in either direction (skewed or touching lines): top to
    bottom by centre, and left to right among lines whose centres are within half a line
    height (PaddleOCR's rule, scaled to the line height instead of 10 px)."""
    centres = (rects[:, 1] + rects[:, 3]) / 2
    height = float(np.median(rects[:, 3] - rects[:, 1]))
    order = sorted(range(len(rects)), key=lambda i: (centres[i], rects[i, 0]))
    rows: list[list[int]] = []
    for i in order:
        if rows and abs(centres[i] - centres[rows[-1][0]]) < same_line * height:
            rows[-1].append(i)
        else:
            rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda j: rects[j, 0])]
