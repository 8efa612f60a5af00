"""Box geometry shared by the stages: DB box extraction helpers, ordering, unclip, crops.

Pure functions on numpy arrays, no I/O and no sessions. Each one follows PaddleOCR's
reference implementation (ppocr/postprocess/db_postprocess.py, tools/infer/utility.py,
predict_system.py) so that boxes and crops match the reference pixel for pixel.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon


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
    xs, ys = box[:, 0], box[:, 1]
    xmin = int(np.clip(np.floor(xs.min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(xs.max()), 0, w - 1))
    ymin = int(np.clip(np.floor(ys.min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(ys.max()), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    shifted = box.copy()
    shifted[:, 0] -= xmin
    shifted[:, 1] -= ymin
    cv2.fillPoly(mask, shifted.reshape(1, -1, 2).astype(np.int32), 1)
    return float(cv2.mean(prob[ymin : ymax + 1, xmin : xmax + 1], mask)[0])


def box_score_slow(prob: np.ndarray, contour: np.ndarray) -> float:
    """Mean probability inside the contour itself (DB 'slow' score mode)."""
    return box_score_fast(prob, contour.reshape(-1, 2).astype(np.float32))


def unclip(box: np.ndarray, ratio: float) -> np.ndarray | None:
    """Grow a shrunk DB text kernel back to the text's extent (Vatti offset by
    area * ratio / perimeter). None when the offset does not give exactly one polygon."""
    poly = Polygon(box)
    if poly.length == 0:
        return None
    distance = poly.area * ratio / poly.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    expanded = offset.Execute(distance)
    if len(expanded) != 1:
        return None
    return np.array(expanded[0], dtype=np.float32).reshape(-1, 1, 2)


def order_points_clockwise(pts: np.ndarray) -> np.ndarray:
    """Top-left (min x+y), top-right, bottom-right (max x+y), bottom-left."""
    rect = np.zeros((4, 2), dtype=np.float32)
    sums = pts.sum(axis=1)
    rect[0] = pts[np.argmin(sums)]
    rect[2] = pts[np.argmax(sums)]
    rest = np.delete(pts, (np.argmin(sums), np.argmax(sums)), axis=0)
    diff = np.diff(np.array(rest), axis=1)
    rect[1] = rest[np.argmin(diff)]
    rect[3] = rest[np.argmax(diff)]
    return rect


def clip_box(box: np.ndarray, height: int, width: int) -> np.ndarray:
    """Integer points inside the image (PaddleOCR's clip_det_res)."""
    out = box.copy()
    out[:, 0] = np.clip(np.floor(out[:, 0]), 0, width - 1)
    out[:, 1] = np.clip(np.floor(out[:, 1]), 0, height - 1)
    return out


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
    matrix, width, height = _rectification(box)
    crop = cv2.warpPerspective(
        image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if _is_tall(width, height):
        crop = np.rot90(crop)
    return crop


def span_quads(box: np.ndarray, spans: Sequence[tuple[float, float]], turned: bool) -> list[np.ndarray]:
    """Where horizontal spans of the crop rec read from `box` lie on the page: each span
    (left and right as fractions of that crop's width, its full height) as a quadrilateral
    clockwise from its top-left corner. The crop rec read is crop_quad's, turned 180 degrees
    when `turned` (the angle classifier's turn), so the spans go back through that turn,
    crop_quad's quarter turn of a tall crop and the inverse of its rectification."""
    matrix, width, height = _rectification(box)
    to_page = np.linalg.inv(matrix)
    if _is_tall(width, height):  # np.rot90 put crop (x, y) at (y, width - x)
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
