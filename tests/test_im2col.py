"""im2col gathers receptive fields; col2im is its exact adjoint; the fast twins agree.

npc.im2col / npc.col2im are the plain versions (pad, one window per tap);
npixelcnn.fast_ops holds the twins that the command line's training runs (no padded
copy, threads, reused buffers). Both are held against the definition, written pixel by pixel.
"""

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn import fast_ops as fast

IMPLEMENTATIONS = {"plain": npc.im2col, "fast": lambda x, taps, k: fast.im2col(x, taps, k).copy()}
ADJOINTS = {"plain": npc.col2im, "fast": fast.col2im}


def im2col_by_definition(x, taps, k):
    """cols[n*H*W + r*W + c, t*C + ch] = x[n, r + i_t - k//2, c + j_t - k//2, ch], 0 outside."""
    n, h, w, c = x.shape
    cols = np.zeros((n * h * w, len(taps) * c), x.dtype)
    for b in range(n):
        for r in range(h):
            for col in range(w):
                for t, (i, j) in enumerate(taps):
                    rr, cc = r + i - k // 2, col + j - k // 2
                    if 0 <= rr < h and 0 <= cc < w:
                        cols[b * h * w + r * w + col, t * c:(t + 1) * c] = x[b, rr, cc]
    return cols


@pytest.mark.parametrize("version", IMPLEMENTATIONS)
@pytest.mark.parametrize("k, mask_type", [(1, "B"), (3, "A"), (3, "B"), (5, "B"), (7, "A")])
@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (1, 2, 3, 1), (3, 9, 4, 2)])
def test_im2col_matches_its_definition(version, k, mask_type, shape, rng):
    x = rng.standard_normal(shape)
    taps = npc.kept_taps(k, mask_type)
    np.testing.assert_array_equal(IMPLEMENTATIONS[version](x, taps, k), im2col_by_definition(x, taps, k))


@pytest.mark.parametrize("version", ADJOINTS)
@pytest.mark.parametrize("k, mask_type", [(3, "B"), (5, "A"), (7, "B")])
def test_col2im_is_the_adjoint_of_im2col(version, k, mask_type, rng):
    # <im2col(x), c> == <x, col2im(c)> for all x, c: the definition of the adjoint,
    # which is exactly what backpropagating through im2col needs.
    x = rng.standard_normal((2, 6, 5, 3))
    taps = npc.kept_taps(k, mask_type)
    c = rng.standard_normal((2 * 6 * 5, len(taps) * 3))
    lhs = np.vdot(im2col_by_definition(x, taps, k), c)
    rhs = np.vdot(x, ADJOINTS[version](c, x.shape, taps, k))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


def test_a_mask_that_keeps_no_tap_gives_no_columns(rng):
    x = rng.standard_normal((2, 3, 3, 2))
    taps = npc.kept_taps(1, "A")                      # a 1x1 mask A hides its only tap
    assert npc.im2col(x, taps, 1).shape == fast.im2col(x, taps, 1).shape == (18, 0)
    np.testing.assert_array_equal(npc.col2im(np.zeros((18, 0)), x.shape, taps, 1), np.zeros(x.shape))


def test_fast_im2col_overwrites_a_dirty_output_buffer(rng):
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    taps = npc.kept_taps(5, "B")
    out = np.full((2 * 16, len(taps) * 3), np.nan, np.float32)
    fast.im2col(x, taps, 5, out=out)
    np.testing.assert_array_equal(out, npc.im2col(x, taps, 5))


def test_large_batches_split_across_threads_give_the_same_result(rng):
    # Big enough to cross fast_ops.MIN_PARALLEL_BYTES, so the chunked path runs.
    x = rng.standard_normal((9, 28, 28, 64)).astype(np.float32)
    taps = npc.kept_taps(3, "B")
    cols = fast.im2col(x, taps, 3)
    np.testing.assert_array_equal(cols, npc.im2col(x, taps, 3))
    np.testing.assert_allclose(fast.col2im(cols, x.shape, taps, 3), npc.col2im(cols, x.shape, taps, 3),
                               rtol=1e-6, atol=1e-5)


def test_fast_im2col_rejects_an_output_buffer_of_the_wrong_shape(rng):
    x = rng.standard_normal((1, 3, 3, 2))
    with pytest.raises(ValueError, match=r"shape \(9, 10\)"):
        fast.im2col(x, npc.kept_taps(3, "B"), 3, out=np.empty((9, 8)))
