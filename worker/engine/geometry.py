"""Box geometry shared by the stages: DB box extraction helpers, ordering, unclip, crops.

Pure functions on numpy arrays, no I/O and no sessions. Each one follows PaddleOCR's
reference implementation (ppocr/postprocess/db_postprocess.py, tools/infer/utility.py,
predict_system.py) so that boxes and crops match the reference pixel for pixel.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np
import pyclipper


def mini_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-area rectangle of a contour as 4 points (top-left, top-right, bottom-right,
    bottom-left by PaddleOCR's x-then-y rule) and its shorter side."""
    rect = cv2.minAreaRect(contour)
    points = sorted(list(cv2.boxPoints(rect)), key=lambda p: p[0])
    left_top, left_bottom = (0, 1) if points[1][1] > points[0][1] else (1, 0)
    right_top, right_bottom = (2, 3) if points[3][1] > points[2][1] else (3, 2)
    box = np.array(
        [points[left_top], points[right_top], points[right_bottom], points[left_bottom]],
        dtype=np.float32,
    )
    return box, min(rect[1])


def box_score_fast(prob: np.ndarray, box: np.ndarray) -> float:
    """Mean probability inside the box polygon (DB 'fast' score mode)."""
    h, w = prob.shape[:2]
    (left, top), (right, bottom) = box.min(axis=0).tolist(), box.max(axis=0).tolist()
    xmin, xmax = _clamp(math.floor(left), w - 1), _clamp(math.ceil(right), w - 1)
    ymin, ymax = _clamp(math.floor(top), h - 1), _clamp(math.ceil(bottom), h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    shifted = (box - np.array([xmin, ymin], np.float32)).astype(np.int32)
    cv2.fillPoly(mask, shifted.reshape(1, -1, 2), 1)
    return float(cv2.mean(prob[ymin : ymax + 1, xmin : xmax + 1], mask)[0])


def _clamp(value: int, top: int) -> int:
    return min(max(value, 0), top)


def box_score_slow(prob: np.ndarray, contour: np.ndarray) -> float:
    """Mean probability inside the contour itself (DB 'slow' score mode)."""
    return box_score_fast(prob, contour.reshape(-1, 2).astype(np.float32))


def unclip(box: np.ndarray, ratio: float) -> np.ndarray | None:
    """Grow a shrunk DB text kernel back to the text's extent (Vatti offset by
    area * ratio / perimeter). None when the offset does not give exactly one polygon."""
    area, length = ring_area_length(box.reshape(-1, 2).tolist())
    if length == 0:
        return None
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    expanded = offset.Execute(area * ratio / length)
    if len(expanded) != 1:
        return None
    return np.array(expanded[0], dtype=np.float32).reshape(-1, 1, 2)


def ring_area_length(points: list[list[float]]) -> tuple[float, float]:
    """Area and perimeter of the closed polygon through `points`, computed as GEOS computes
    a shapely Polygon's (the shoelace about the first point; edge lengths summed in order),
    so the results are the same to the last bit, without a Polygon's cost per box."""
    ring = [*points, points[0]]
    x0, total, length = ring[0][0], 0.0, 0.0
    for i in range(1, len(ring) - 1):
        total += (ring[i][0] - x0) * (ring[i - 1][1] - ring[i + 1][1])
    for (xa, ya), (xb, yb) in zip(ring, ring[1:]):
        length += math.sqrt((xb - xa) * (xb - xa) + (yb - ya) * (yb - ya))
    return abs(total / 2.0), length


def order_points_clockwise(pts: np.ndarray) -> np.ndarray:
    """Top-left (min x+y), top-right, bottom-right (max x+y), bottom-left. Sums and
    differences are taken in the points' own dtype, and ties go to the first point, as
    numpy's argmin and argmax break them."""
    sums = (pts[:, 0] + pts[:, 1]).tolist()
    diffs = (pts[:, 1] - pts[:, 0]).tolist()
    first, last = sums.index(min(sums)), sums.index(max(sums))
    rest = [i for i in range(len(sums)) if i not in (first, last)]
    rest_diffs = [diffs[i] for i in rest]
    picks = (first, rest[rest_diffs.index(min(rest_diffs))], last, rest[rest_diffs.index(max(rest_diffs))])
    return pts[list(picks)].astype(np.float32)


def clip_box(box: np.ndarray, height: int, width: int) -> np.ndarray:
    """Integer points inside the image (PaddleOCR's clip_det_res), in the box's own dtype."""
    top = np.array([width - 1, height - 1], box.dtype)
    return np.minimum(np.maximum(np.floor(box), 0), top).astype(box.dtype, copy=False)


def reading_order(boxes: list[np.ndarray], same_line_px: float = 10) -> list[int]:
    """Indices of `boxes` top-to-bottom, then left-to-right within a line: sort by the
    top-left corner, then bubble a box left past its predecessor while their tops are within
    `same_line_px` (PaddleOCR's sorted_boxes, returned as a permutation)."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][0][1], boxes[i][0][0]))
    for i in range(len(order) - 1):
        for j in range(i, -1, -1):
            a, b = boxes[order[j]][0], boxes[order[j + 1]][0]
            if abs(b[1] - a[1]) < same_line_px and b[0] < a[0]:
                order[j], order[j + 1] = order[j + 1], order[j]
            else:
                break
    return order


def _rectification(box: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The perspective matrix that takes the quadrilateral `box` onto an upright crop, and
    that crop's width and height."""
    points = box.astype(np.float32)
    width = int(max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[2] - points[3])))
    height = int(max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2])))
    width, height = max(width, 1), max(height, 1)
    target = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    return cv2.getPerspectiveTransform(points, target), width, height


def _is_tall(width: int, height: int) -> bool:
    """A crop at least 1.5 times taller than wide holds vertical text (PaddleOCR's rule)."""
    return height * 1.0 / width >= 1.5


def crop_quad(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Perspective-rectify the quadrilateral `box` into an upright crop; crops at least 1.5
    times taller than wide are rotated 90 degrees (vertical text), as PaddleOCR does."""
    return crop_line(image, box)[0]


def crop_line(image: np.ndarray, box: np.ndarray, vertical: bool | None = None) -> tuple[np.ndarray, bool]:
    """crop_quad's crop, and whether it was turned a quarter to be read: True when the box's
    text runs down the page rather than across it, which `vertical` says where the caller
    knows better than the box's shape (None: PaddleOCR's rule, _is_tall).

    Most boxes (708 of the 20 receipts' 969) are upright rectangles on whole pixels. Their
    warp is a whole-pixel shift, which cubic interpolation leaves exact, so they are copied
    out instead: the same pixels (tested), 18 us against 450 us for a 500 x 40 line."""
    matrix, width, height = _rectification(box)
    origin = _whole_pixel_origin(box, width, height, image.shape)
    if origin is not None:
        left, top = origin
        crop = image[top : top + height, left : left + width].copy()  # not a view: the page is freed
    else:
        crop = cv2.warpPerspective(
            image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
        )
    vertical = _is_tall(width, height) if vertical is None else vertical
    return (np.rot90(crop) if vertical else crop), vertical


def _whole_pixel_origin(box: np.ndarray, width: int, height: int,
                        shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(left, top) when `box` is the upright `width` x `height` rectangle there, on whole
    pixels and inside an image of `shape`; else None."""
    corners = box.tolist()
    (left, top), (right, _), (_, bottom), _ = corners
    upright = [[left, top], [right, top], [right, bottom], [left, bottom]]
    if corners != upright or not (float(left).is_integer() and float(top).is_integer()):
        return None
    if right - left != width or bottom - top != height or left < 0 or top < 0:
        return None
    if top + height > shape[0] or left + width > shape[1]:
        return None
    return int(left), int(top)


def span_quads(box: np.ndarray, spans: Sequence[tuple[float, float]], turned: bool,
               vertical: bool) -> list[np.ndarray]:
    """Where horizontal spans of the crop rec read from `box` lie on the page: each span
    (left and right as fractions of that crop's width, its full height) as a quadrilateral
    clockwise from its top-left corner. The crop rec read is crop_line's, turned a quarter
    when `vertical` (as crop_line said) and 180 degrees when `turned` (the angle
    classifier's turn), so the spans go back through those turns and the inverse of its
    rectification."""
    matrix, width, height = _rectification(box)
    to_page = np.linalg.inv(matrix)
    if vertical:  # np.rot90 put crop (x, y) at (y, width - x)
        to_page = to_page @ np.array([[0, -1, width], [1, 0, 0], [0, 0, 1]], np.float64)
        width, height = height, width
    if turned:
        to_page = to_page @ np.array([[-1, 0, width], [0, -1, height], [0, 0, 1]], np.float64)
    rects = np.array([[[l * width, 0], [r * width, 0], [r * width, height], [l * width, height]]
                      for l, r in spans], np.float64).reshape(-1, 1, 2)
    quads = cv2.perspectiveTransform(rects, to_page).reshape(-1, 4, 2).astype(np.float32)
    return [clockwise_from_top_left(quad) for quad in quads]


def clockwise_from_top_left(points: np.ndarray) -> np.ndarray:
    """The quadrilateral's corners relabelled so the first is the top-left one (smallest
    x + y): a turned box keeps its corners' clockwise order but starts elsewhere."""
    start = int(np.argmin(points[:, 0] + points[:, 1]))
    return np.roll(points, -start, axis=0)
