"""as_bgr: every array layout the Python API takes becomes the HxWx3 uint8 BGR the engine
runs on, by the same rules as decoded files, or a ValueError that says what was wrong."""

from __future__ import annotations

import numpy as np
import pytest

from worker.engine.pixels import as_bgr

RNG = np.random.default_rng(7)
PAGE = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)


def test_8bit_bgr_is_taken_as_it_is():
    assert np.array_equal(as_bgr(PAGE), PAGE)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_floats_in_0_to_1_are_normalised_samples(dtype):
    assert np.array_equal(as_bgr((PAGE / 255.0).astype(dtype)), PAGE)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.uint16])
def test_8bit_values_in_wider_types_read_as_the_8bit_page(dtype):
    """A page's 0..255 values held in float64 or int64 (numpy arithmetic gives both) read as
    that page, not as a clipped white one."""
    full = PAGE.copy()
    full[0, 0] = (0, 0, 255)  # a page of 8-bit samples that uses the whole range
    assert np.array_equal(as_bgr(full.astype(dtype)), full)


@pytest.mark.parametrize("bits", [10, 12, 14, 16])
def test_16bit_arrays_scale_by_the_depth_their_samples_use(bits):
    """12-bit camera samples in uint16 read as bright as the file holding them would."""
    full = (1 << bits) - 1
    samples = np.rint(PAGE.astype(np.float64) * full / 255).astype(np.uint16)
    samples[0, 0] = (0, 0, full)
    expected = PAGE.copy()
    expected[0, 0] = (0, 0, 255)
    assert np.abs(as_bgr(samples).astype(int) - expected).max() <= 1


def test_signed_floats_are_stretched_over_their_own_range():
    values = np.linspace(-3.0, 5.0, 24 * 32).reshape(24, 32)
    grey = as_bgr(values)[..., 0]
    assert grey.min() == 0 and grey.max() == 255 and np.all(np.diff(grey.ravel().astype(int)) >= 0)


def test_bgra_with_hidden_black_pixels_keeps_black_text_visible():
    """A screenshot held as BGRA: transparent pixels hide black, the text is black. Dropping
    alpha would give black on black; the page goes onto white as a transparent file does."""
    bgra = np.zeros((20, 40, 4), np.uint8)
    bgra[5:15, 10:30, 3] = 255  # opaque black text, transparent black elsewhere
    bgr = as_bgr(bgra)
    assert bgr[0, 0].tolist() == [255, 255, 255] and bgr[10, 20].tolist() == [0, 0, 0]


def test_opaque_bgra_gives_its_colour_channels_contiguous():
    bgra = np.dstack([PAGE, np.full(PAGE.shape[:2], 255, np.uint8)])
    bgr = as_bgr(bgra)
    assert np.array_equal(bgr, PAGE) and bgr.flags.c_contiguous


def test_bgra_white_text_goes_onto_black():
    bgra = np.zeros((20, 40, 4), np.uint8)
    bgra[5:15, 10:30] = 255
    bgr = as_bgr(bgra)
    assert bgr[0, 0].tolist() == [0, 0, 0] and bgr[10, 20].tolist() == [255, 255, 255]


def test_booleans_are_black_and_white():
    mask = PAGE[..., 0] > 127
    assert set(np.unique(as_bgr(mask))) <= {0, 255}


@pytest.mark.parametrize("bad, says", [
    (np.zeros((0, 5, 3), np.uint8), "HxW or HxWxC"),
    (np.zeros((1, 4, 4, 3), np.uint8), "HxW or HxWxC"),
    (np.zeros((4, 4, 2), np.uint8), "1, 3 or 4 channels"),
    (np.zeros((4, 4, 3), np.complex64), "unsupported pixel type complex64"),
    ([[0, 1]], "HxW or HxWxC"),
])
def test_what_cannot_be_a_page_says_what_was_wrong(bad, says):
    with pytest.raises(ValueError, match=says):
        as_bgr(bad)
