"""Show-through: a faint line that reads far better mirrored is the reverse side's text and is
dropped (drop_show_through); real text, faint or not, is never dropped."""

from __future__ import annotations

import numpy as np
import pytest

from bench.orientation import word_f1
from bench.show_through import with_show_through
from docmill.settings import DEFAULT_MODEL_SET
from worker.engine.showthrough import MAX_CONTRAST, contrast


def test_contrast_is_the_inks_strength_against_its_paper():
    crop = np.full((40, 400, 3), 250, np.uint8)
    crop[10:30, 20:380:6] = 10
    assert contrast(crop) == 240
    crop[10:30, 20:380:6] = 215
    assert contrast(crop) == 35
    crop[0, :8] = 0  # a speck: under 5% of the crop
    assert contrast(crop) == 35


def _lines(engine, image: np.ndarray, drop: bool) -> list[str]:  # type: ignore[no-untyped-def]
    return [line.text for line in engine.run([image], engine.options.merged({"drop_show_through": drop}))[0].lines]


@pytest.mark.models
@pytest.mark.slow
def test_the_reverse_sides_text_is_dropped_and_the_front_kept(engine_for, sample_pages):
    engine, _ = engine_for(DEFAULT_MODEL_SET)
    images, truth = sample_pages
    front, back = images["letter.png"], images["two_columns.png"]
    page = with_show_through(front, back, 0.18)
    kept, all_read = _lines(engine, page, True), _lines(engine, page, False)
    real = set(truth["letter.png"])
    assert real - set(all_read) == real - set(kept)  # no front line lost
    # What is left is mostly where the detector joined a front line and a reverse-side word
    # in one box ("Phone: 0117 496 0321 benego eW"): no line can be dropped there.
    assert len([line for line in kept if line not in real]) * 2 <= len([line for line in all_read if line not in real])
    assert word_f1([kept], [truth["letter.png"]]) > word_f1([all_read], [truth["letter.png"]])
    behind = with_show_through(np.full_like(front, 255), back, 0.18)
    assert len(_lines(engine, behind, True)) * 3 <= len(_lines(engine, behind, False))


@pytest.mark.models
@pytest.mark.slow
def test_faint_real_text_is_read_not_dropped(engine_for, sample_pages):
    """The letter printed faintly (its ink 45 grey levels under its paper): every line is
    faint enough to be read again mirrored, and none reads better so."""
    engine, _ = engine_for(DEFAULT_MODEL_SET)
    images, truth = sample_pages
    faint = (200 + images["letter.png"].astype(np.float32) * (45 / 255)).astype(np.uint8)
    assert contrast(faint[:, :]) < MAX_CONTRAST
    assert _lines(engine, faint, True) == _lines(engine, faint, False)
    assert word_f1([_lines(engine, faint, True)], [truth["letter.png"]]) >= 0.95
