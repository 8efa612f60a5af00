"""Word boxes (`word_boxes`): each word of a line, from rec's CTC steps, boxed in the input's own
pixels, checked against words drawn at known positions on upright and turned pages; and the
pure pieces they are built from (rec.word_spans, geometry.span_quads)."""

from __future__ import annotations

import numpy as np
import pytest

from docmill.options import EngineOptions
from docmill.settings import DEFAULT_MODEL_SET
from tests.worker.drawn import bounds, draw_page, iou, turned
from worker.engine import geometry, rec

MIN_IOU = 0.5


def test_word_spans_are_the_runs_between_spaces_reaching_half_a_pitch_out():
    chars = list("ab cd")
    centres = np.array([0.1, 0.2, 0.4, 0.6, 0.7])
    spans = rec.word_spans(chars, centres, np.array([0.9, 0.7, 1.0, 0.8, 0.8]), step=0.02)
    assert [s.text for s in spans] == ["ab", "cd"]
    assert spans[0].score == pytest.approx(0.8)
    assert (spans[0].left, spans[0].right) == pytest.approx((0.05, 0.25))
    assert (spans[1].left, spans[1].right) == pytest.approx((0.55, 0.75))


def test_a_word_stops_half_a_step_short_of_a_neighbouring_space():
    """A comma read late, right before the space: the word still ends before the gap's middle."""
    chars = list("ab, cd")
    centres = np.array([0.1, 0.2, 0.3, 0.34, 0.4, 0.5])
    spans = rec.word_spans(chars, centres, np.ones(6), step=0.02)
    assert spans[0].right == pytest.approx(0.33) and spans[1].left == pytest.approx(0.35)


def test_a_lone_character_spans_the_whole_crop():
    span = rec.word_spans(["x"], np.array([0.4]), np.array([0.9]), step=0.05)[0]
    assert (span.left, span.right) == (0.0, 1.0)


def test_postprocess_places_steps_within_the_crops_share_of_the_tensor():
    chars = rec.output_characters(["a", "b"])  # blank, a, b, space
    steps = [1, 0, 2, 0, 3, 1, 0, 0]  # a - b - _ a - -   on a crop filling half the tensor
    probs = np.zeros((1, len(steps), 4), np.float32)
    probs[0, np.arange(len(steps)), steps] = 1.0
    out = rec.postprocess([probs], chars, extents=[0.5])[0]
    assert out.text == "ab a" and [w.text for w in out.words] == ["ab", "a"]
    assert out.words[0].left == pytest.approx(0.0) and out.words[0].right == pytest.approx(0.875)
    assert rec.postprocess([probs], chars)[0].words is None  # not asked: not computed


def _quad_bounds(box: list[list[float]], spans, turned_: bool, vertical: bool = False):  # type: ignore[no-untyped-def]
    return [bounds(q) for q in geometry.span_quads(np.array(box, np.float32), spans, turned_, vertical)]


def test_span_quads_map_crop_columns_back_onto_the_page():
    box = [[100, 50], [300, 50], [300, 90], [100, 90]]  # a 200 x 40 line
    assert _quad_bounds(box, [(0.0, 0.25), (0.5, 1.0)], False) == [
        pytest.approx((100, 50, 150, 90)), pytest.approx((200, 50, 300, 90))]
    # read turned 180 degrees: the crop's left is the page's right
    assert _quad_bounds(box, [(0.0, 0.25)], True) == [pytest.approx((250, 50, 300, 90))]


def test_span_quads_follow_the_quarter_turn_of_a_tall_crop():
    box = [[100, 50], [140, 50], [140, 250], [100, 250]]  # 40 wide, 200 high: read turned
    top_of_column = _quad_bounds(box, [(0.0, 0.25)], False, vertical=True)[0]
    # np.rot90 turns the crop counter-clockwise: the read crop's left is the column's top
    assert top_of_column == pytest.approx((100, 50, 140, 100))
    # the same box cut unturned (a short one on a page read across): spans run across it
    assert _quad_bounds(box, [(0.0, 0.25)], False)[0] == pytest.approx((100, 50, 110, 250))


def test_span_quads_start_at_their_top_left_corner():
    box = [[100, 50], [300, 50], [300, 90], [100, 90]]
    quad = geometry.span_quads(np.array(box, np.float32), [(0.1, 0.4)], True, False)[0]
    assert tuple(quad[0]) == pytest.approx((220, 50)) and tuple(quad[2]) == pytest.approx((280, 90))


def _words_against_drawn(page, result):  # type: ignore[no-untyped-def]
    """Each drawn word's IoU with the found word of the same text (0 when none was found)."""
    found = {w.text: bounds(w.box) for line in result.lines for w in line.words}
    return {text: round(iou(box, found[text]), 2) if text in found else 0.0 for text, box in page.words}


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.parametrize("angle, page_orientation", [(0, False), (180, False), (180, True), (90, True), (270, True)])
def test_word_boxes_land_on_the_drawn_words(engine_for, angle, page_orientation):
    """Upright, read line by line upside down (the classifier's turn), and turned pages set
    upright by page orientation: every word's box is on the word, in the input's pixels."""
    engine, _ = engine_for(DEFAULT_MODEL_SET)
    page = turned(draw_page(), angle)
    options = engine.options.merged({"word_boxes": True, "use_doc_orientation": page_orientation})
    result = engine.run([page.image], options)[0]
    assert [line.text for line in result.lines] == list(page.lines)
    assert all(" ".join(w.text for w in line.words) == line.text for line in result.lines)
    overlaps = _words_against_drawn(page, result)
    assert min(overlaps.values()) >= MIN_IOU, overlaps
    for line in result.lines:
        for word in line.words:
            assert 0 < word.score <= 1 and word.box[0] == min(word.box, key=lambda p: p[0] + p[1])


@pytest.mark.models
@pytest.mark.slow
def test_without_word_boxes_lines_are_unchanged_and_carry_no_words(engine_for):
    engine, _ = engine_for(DEFAULT_MODEL_SET)
    image = draw_page().image
    plain = engine.run([image], engine.options)[0]
    with_words = engine.run([image], engine.options.merged({"word_boxes": True}))[0]
    assert EngineOptions().word_boxes is False
    assert all(line.words is None for line in plain.lines)
    assert [(l.text, l.box) for l in plain.lines] == [(l.text, l.box) for l in with_words.lines]
