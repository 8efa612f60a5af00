"""The vertical pages are drawn as their truth says: one stripe of ink per column, a tier's
columns side by side, the same pixels every time."""

from __future__ import annotations

import numpy as np
import pytest

from demo.vertical import PITCH, pages


def _stripes(ink: np.ndarray, gap: int) -> int:
    """Runs of True in `ink` that at least `gap` False cells keep apart."""
    where = np.flatnonzero(ink)
    return int(where.size and 1 + np.count_nonzero(np.diff(where) > gap))


@pytest.mark.parametrize("name, columns, tiers", [("poems", 5, 1), ("haiku", 3, 1), ("tiers", 4, 2)])
def test_each_column_is_one_stripe_of_ink_and_tiers_stand_apart(vertical_pages, name, columns, tiers):
    image, truth = vertical_pages[name]
    ink = image[..., 0] < 128
    rule = ink.mean(axis=1) > 0.5  # rows inked across most of the page
    assert len(truth) == columns * tiers and np.count_nonzero(rule) == 2 * (tiers - 1)
    assert _stripes(ink[~rule].any(axis=0), gap=PITCH // 2) == columns  # the tiers' columns line up
    assert _stripes(ink.any(axis=1), gap=PITCH) == 2 * tiers - 1  # each tier, and a rule between two


def test_the_pages_are_the_same_every_time(vertical_pages):
    again = pages()
    assert all(np.array_equal(vertical_pages[name][0], again[name][0]) for name in vertical_pages)
