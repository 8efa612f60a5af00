"""Geometry: box ordering, unclip, reading order and crops on shapes with known answers."""

import cv2
import numpy as np
import pytest
from shapely.geometry import Polygon

from worker.engine import geometry


def test_order_points_clockwise_from_any_start():
    square = np.array([[10, 10], [50, 10], [50, 30], [10, 30]], dtype=np.float32)
    for shift in range(4):
        ordered = geometry.order_points_clockwise(np.roll(square, shift, axis=0))
        np.testing.assert_array_equal(ordered, square)


def test_order_points_clockwise_breaks_ties_as_numpy_argmin_and_argmax():
    """The old numpy form, written out: ties (equal x+y, or one point twice) go to the first."""
    def numpy_order(pts):
        sums = pts.sum(axis=1)
        rest = np.delete(pts, (np.argmin(sums), np.argmax(sums)), axis=0)
        diff = np.diff(rest, axis=1)
        return np.array([pts[np.argmin(sums)], rest[np.argmin(diff)], pts[np.argmax(sums)], rest[np.argmax(diff)]])

    rng = np.random.default_rng(7)
    boxes = [rng.integers(0, 4, (4, 2)).astype(np.float32) for _ in range(2000)]  # many ties
    boxes.append(np.zeros((4, 2), np.float32))  # every sum equal: the same point is first and last
    for box in boxes:
        np.testing.assert_array_equal(geometry.order_points_clockwise(box), numpy_order(box))


def test_ring_area_length_equals_shapely_to_the_bit():
    rng = np.random.default_rng(3)
    for scale in (1, 37.5, 1000, 6000):
        for _ in range(500):
            points = (rng.random((4, 2)) * scale).astype(np.float32)
            polygon = Polygon(points)  # GEOS, the reference
            assert geometry.ring_area_length(points.tolist()) == (polygon.area, polygon.length)


def test_mini_box_of_rotated_rectangle_is_tl_tr_br_bl():
    rect = ((100.0, 50.0), (80.0, 20.0), 10.0)
    contour = cv2.boxPoints(rect).astype(np.int32).reshape(-1, 1, 2)
    box, short = geometry.mini_box(contour)
    assert short == pytest.approx(20, abs=1.5)
    assert box[0][0] < box[1][0] and box[3][0] < box[2][0]  # left points before right ones
    assert box[0][1] < box[3][1] and box[1][1] < box[2][1]  # top points above bottom ones


def test_unclip_grows_by_area_ratio_over_perimeter():
    box = np.array([[0, 0], [100, 0], [100, 20], [0, 20]], dtype=np.float32)
    grown = geometry.unclip(box, 1.5).reshape(-1, 2)
    distance = 100 * 20 * 1.5 / 240  # 12.5 px
    assert grown[:, 0].min() == pytest.approx(-distance, abs=1)
    assert grown[:, 1].max() == pytest.approx(20 + distance, abs=1)


def test_unclip_degenerate_box_gives_none():
    line = np.array([[0, 0], [10, 0], [10, 0], [0, 0]], dtype=np.float32)
    assert geometry.unclip(line, 1.5) is None


def test_box_score_fast_is_mean_inside_polygon():
    prob = np.zeros((50, 100), dtype=np.float32)
    prob[10:20, 10:60] = 0.8
    box = np.array([[10, 10], [59, 10], [59, 19], [10, 19]], dtype=np.float32)
    assert geometry.box_score_fast(prob, box) == pytest.approx(0.8, abs=1e-6)


def test_reading_order_rows_then_left_to_right():
    def box(x, y):
        return np.array([[x, y], [x + 40, y], [x + 40, y + 10], [x, y + 10]], dtype=np.float32)

    # same row when tops differ by < 10 px: the left box comes first although it is lower
    boxes = [box(200, 52), box(10, 55), box(10, 10), box(300, 100)]
    assert geometry.reading_order(boxes) == [2, 1, 0, 3]


def test_clip_box_stays_inside_image():
    box = np.array([[-5, -3], [120.7, 0], [120, 60], [0, 60]], dtype=np.float32)
    clipped = geometry.clip_box(box, height=50, width=100)
    assert clipped[:, 0].max() == 99 and clipped[:, 1].max() == 49 and clipped.min() == 0


def test_crop_quad_rectifies_and_rotates_tall_crops():
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    image[20:40, 30:130] = 255  # a wide white bar
    wide = geometry.crop_quad(image, np.array([[30, 20], [130, 20], [130, 40], [30, 40]], np.float32))
    assert wide.shape[:2] == (20, 100) and wide.mean() > 250
    tall_box = np.array([[30, 20], [50, 20], [50, 120], [30, 120]], np.float32)
    tall = geometry.crop_quad(image, tall_box)
    assert tall.shape[:2] == (20, 100)  # 100 x 20 crop turned on its side
    assert geometry.crop_line(image, tall_box)[1] is True
    assert geometry.crop_line(image, np.array([[30, 20], [130, 20], [130, 40], [30, 40]], np.float32))[1] is False
    square = np.array([[0, 0], [29, 0], [29, 44], [0, 44]], np.float32)  # 1.52 times taller: turned
    crop, vertical = geometry.crop_line(image, square)
    assert vertical and crop.shape[:2] == (29, 44)
    unturned, vertical = geometry.crop_line(image, square, vertical=False)  # the caller knows better
    assert not vertical and unturned.shape[:2] == (44, 29) and np.array_equal(np.rot90(unturned), crop)


def _warped(image, box):
    """The crop as a perspective warp gives it, for every box."""
    matrix, width, height = geometry._rectification(box)
    crop = cv2.warpPerspective(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE,
                               flags=cv2.INTER_CUBIC)
    return np.rot90(crop) if geometry._is_tall(width, height) else crop


def test_upright_whole_pixel_boxes_are_copied_out_as_the_warp_gives_them():
    rng = np.random.default_rng(5)
    for i in range(300):
        height, width = (int(v) for v in rng.integers(20, 1500, 2))
        image = rng.integers(0, 256, (height, width, 3) if i % 2 else (height, width), dtype=np.uint8)
        left, top = int(rng.integers(0, width - 1)), int(rng.integers(0, height - 1))
        right, bottom = int(rng.integers(left + 1, width)), int(rng.integers(top + 1, height))
        box = np.float32([[left, top], [right, top], [right, bottom], [left, bottom]])
        crop = geometry.crop_quad(image, box)
        assert crop.base is None or crop.base.size < image.size  # its own pixels: the page can go
        np.testing.assert_array_equal(crop, _warped(image, box))


@pytest.mark.parametrize("box", [
    [[10.5, 10], [60.5, 10], [60.5, 30], [10.5, 30]],  # half pixels
    [[10, 12], [60, 10], [61, 30], [11, 32]],  # tilted
    [[90, 10], [130, 10], [130, 30], [90, 30]],  # past the right edge: the border is replicated
])
def test_other_boxes_are_warped(box):
    image = np.random.default_rng(6).integers(0, 256, (50, 100, 3), dtype=np.uint8)
    box = np.float32(box)
    np.testing.assert_array_equal(geometry.crop_quad(image, box), _warped(image, box))
