"""im2col gathers receptive fields; col2im is its exact adjoint."""

import numpy as np
import pytest

import npixelcnn as npc


def padded_reference_im2col(x, taps, k):
    """The textbook way: pad, then copy each tap's window."""
    p = k // 2
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    blocks = [xp[:, i:i + h, j:j + w, :] for i, j in taps]
    return np.stack(blocks, axis=3).reshape(n * h * w, len(taps) * c)


@pytest.mark.parametrize("k, mask_type", [(1, "B"), (3, "A"), (3, "B"), (5, "B"), (7, "A")])
@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (1, 2, 3, 1), (3, 9, 4, 2)])
def test_im2col_matches_padding_reference(k, mask_type, shape, rng):
    x = rng.standard_normal(shape)
    taps = npc.kept_taps(k, mask_type)
    np.testing.assert_array_equal(npc.im2col(x, taps, k), padded_reference_im2col(x, taps, k))


def test_im2col_overwrites_a_dirty_output_buffer(rng):
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    taps = npc.kept_taps(5, "B")
    out = np.full((2 * 16, len(taps) * 3), np.nan, np.float32)
    npc.im2col(x, taps, 5, out=out)
    np.testing.assert_array_equal(out, padded_reference_im2col(x, taps, 5))


@pytest.mark.parametrize("k, mask_type", [(3, "B"), (5, "A"), (7, "B")])
def test_col2im_is_the_adjoint_of_im2col(k, mask_type, rng):
    # <im2col(x), c> == <x, col2im(c)> for all x, c: the definition of the adjoint,
    # which is exactly what backpropagating through im2col needs.
    x = rng.standard_normal((2, 6, 5, 3))
    taps = npc.kept_taps(k, mask_type)
    c = rng.standard_normal((2 * 6 * 5, len(taps) * 3))
    lhs = np.vdot(npc.im2col(x, taps, k), c)
    rhs = np.vdot(x, npc.col2im(c, x.shape, taps, k))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


def test_large_batches_split_across_threads_give_the_same_result(rng):
    # Big enough to cross parallel.MIN_PARALLEL_BYTES, so the chunked path runs.
    x = rng.standard_normal((9, 28, 28, 64)).astype(np.float32)
    taps = npc.kept_taps(3, "B")
    cols = npc.im2col(x, taps, 3)
    np.testing.assert_array_equal(cols, padded_reference_im2col(x, taps, 3))
    dx = npc.col2im(cols, x.shape, taps, 3)
    single = np.concatenate([npc.col2im(cols.reshape(9, -1)[i:i + 1].reshape(-1, cols.shape[1]),
                                        (1, 28, 28, 64), taps, 3) for i in range(9)])
    np.testing.assert_array_equal(dx, single)


def test_im2col_rejects_an_output_buffer_of_the_wrong_shape(rng):
    x = rng.standard_normal((1, 3, 3, 2))
    with pytest.raises(ValueError, match=r"shape \(9, 10\)"):
        npc.im2col(x, npc.kept_taps(3, "B"), 3, out=np.empty((9, 8)))
