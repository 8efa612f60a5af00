"""Page orientation's geometry: turning a page upright and mapping its boxes back into the
original pixels, for every angle (worker/engine/orientation.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from worker.engine import orientation


@pytest.mark.parametrize("angle", [0, 90, 180, 270])
def test_a_box_found_upright_maps_back_onto_the_same_pixels(angle):
    original = np.zeros((300, 200, 3), np.uint8)  # 200 wide, 300 high
    original[40:60, 30:150] = 255  # a "line" of text
    upright = orientation.upright(original, angle)
    ys, xs = np.nonzero(upright[:, :, 0])
    found = np.array([[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.max(), ys.max()], [xs.min(), ys.max()]],
                     np.float32)
    back = orientation.to_original(found, angle, width=200, height=300)
    assert back[:, 0].min() == 30 and back[:, 0].max() == 149
    assert back[:, 1].min() == 40 and back[:, 1].max() == 59
    assert tuple(back[0]) == (30, 40)  # the first corner is the top-left one again


def test_preprocess_is_the_models_input_for_any_page_shape():
    for shape in ((3508, 2480, 3), (100, 900, 3), (224, 224, 3)):
        pixels = orientation.preprocess(np.full(shape, 255, np.uint8))
        assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8


@pytest.mark.parametrize("shape", [(1865, 935), (605, 463), (700, 2300), (224, 300), (7016, 4961)])
def test_preprocess_is_the_centre_of_the_whole_page_resized(shape):
    """The warp computes only the crop, and samples where resizing the whole page to a short
    side of 256 would: the same pixels, bar the warp's 1/32-pixel interpolation steps."""
    rng = np.random.default_rng(sum(shape))
    page = cv2.GaussianBlur(rng.integers(0, 256, (*shape, 3), dtype=np.uint8), (0, 0), 3)  # scan-like, not noise
    h, w = shape
    scale = orientation.RESIZE_SHORT / min(h, w)
    whole = cv2.resize(page, (max(224, round(w * scale)), max(224, round(h * scale))), interpolation=cv2.INTER_LANCZOS4)
    top, left = (whole.shape[0] - 224) // 2, (whole.shape[1] - 224) // 2
    difference = np.abs(orientation.preprocess(page).astype(int) - whole[top : top + 224, left : left + 224])
    assert difference.mean() < 0.5 and difference.max() <= 8


class _Probabilities:
    """Stands in for the orientation model: the classifier's own decision rule is under test."""

    def __init__(self, rows: list[list[float]]):
        self.rows = np.array(rows, np.float32)

    def run(self, batch: np.ndarray, bucketed: bool = False) -> np.ndarray:
        return self.rows[: len(batch)]


def test_a_turn_the_model_is_unsure_of_is_not_made():
    page = np.full((300, 240, 3), 255, np.uint8)
    unsure = _Probabilities([[0.30, 0.10, 0.54, 0.06]])  # what a sparse upright letter page scored
    decided = orientation.classify(unsure, [page], min_score=0.7)[0]
    assert (decided.angle, decided.score) == (0, pytest.approx(0.30))
    assert orientation.classify(unsure, [page], min_score=0.5)[0].angle == 180
    sure = _Probabilities([[0.05, 0.90, 0.03, 0.02]])
    assert orientation.classify(sure, [page], min_score=0.7)[0].angle == 90


def test_a_page_smaller_than_the_models_crop_is_read_as_it_stands():
    sure = _Probabilities([[0.05, 0.02, 0.90, 0.03], [0.05, 0.02, 0.90, 0.03]])
    word, page = np.full((70, 400, 3), 255, np.uint8), np.full((orientation.MIN_SIDE, 400, 3), 255, np.uint8)
    assert [found.angle for found in orientation.classify(sure, [word, page], min_score=0.7)] == [0, 180]


def test_a_further_turn_takes_the_models_probability_for_it():
    found = orientation.classify(_Probabilities([[0.10, 0.15, 0.70, 0.05]]), [np.zeros((300, 300, 3), np.uint8)],
                                 min_score=0.6)[0]
    assert found.angle == 180
    assert (found.turned(180).angle, found.turned(180).score) == (0, pytest.approx(0.10))
    quarter = orientation.PageAngle(90, 0.8, (0.1, 0.8, 0.05, 0.05))
    assert (quarter.turned(180).angle, quarter.turned(180).score) == (270, 0.05)
    assert (quarter.turned(270).angle, quarter.turned(270).score) == (0, 0.1)
    assert orientation.PageAngle(0, 1.0).turned(90) == orientation.PageAngle(90, 0.0)  # no model ran


@pytest.mark.parametrize("angle", [0, 90, 180, 270])
def test_turned_back_undoes_to_original(angle):
    """A point of a 200 x 300 upright page, mapped into the page turned `angle` clockwise, and
    back: where it started."""
    rng = np.random.default_rng(angle)
    for _ in range(50):
        point = np.array([[rng.integers(0, 200), rng.integers(0, 300)]], np.float32)
        size = (300, 200) if angle in (90, 270) else (200, 300)
        turned = orientation.to_original(point, angle, *size)
        assert 0 <= turned[0, 0] < size[0] and 0 <= turned[0, 1] < size[1]
        np.testing.assert_array_equal(orientation.turned_back(turned, angle, *size), point)
