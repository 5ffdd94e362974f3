"""Masks A and B: what a masked convolution may see."""

import numpy as np
import pytest

import npixelcnn as npc


def test_mask_pictures_for_5x5():
    a = npc.causal_mask(5, "A").astype(int)
    b = npc.causal_mask(5, "B").astype(int)
    expected_a = np.array([
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
        [1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ])
    np.testing.assert_array_equal(a, expected_a)
    expected_b = expected_a.copy()
    expected_b[2, 2] = 1
    np.testing.assert_array_equal(b, expected_b)


@pytest.mark.parametrize("k, mask_type, count", [
    (1, "A", 0), (1, "B", 1), (3, "A", 4), (3, "B", 5), (5, "B", 13), (7, "A", 24), (7, "B", 25),
])
def test_kept_tap_counts(k, mask_type, count):
    taps = npc.kept_taps(k, mask_type)
    assert taps.shape == (count, 2)


@pytest.mark.parametrize("mask_type, last", [("A", 3 * 7 + 2), ("B", 3 * 7 + 3)])
def test_kept_taps_are_in_raster_order_and_stop_at_the_centre(mask_type, last):
    # The centre of a 7x7 kernel has raster index 3*7 + 3; mask A stops just before it.
    taps = npc.kept_taps(7, mask_type)
    raster = taps[:, 0] * 7 + taps[:, 1]
    np.testing.assert_array_equal(raster, np.arange(last + 1))


@pytest.mark.parametrize("bad", ["C", "a", None, 1])
def test_unknown_mask_type_is_rejected(bad):
    with pytest.raises(ValueError, match="mask_type must be 'A' or 'B'"):
        npc.MaskedConv2D(1, 1, 3, bad)


@pytest.mark.parametrize("bad", [0, 2, 4, -3])
def test_even_or_nonpositive_kernel_size_is_rejected(bad):
    with pytest.raises(ValueError, match="positive odd number"):
        npc.MaskedConv2D(1, 1, bad, "A")
    with pytest.raises(ValueError, match="positive odd number"):
        npc.Conv2D(1, 1, bad)


def test_non_integer_kernel_size_is_rejected():
    with pytest.raises(TypeError, match="kernel_size must be an int"):
        npc.MaskedConv2D(1, 1, 3.0, "A")
