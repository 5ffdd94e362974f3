"""A PixelCNN's prediction for pixel p depends only on pixels before p, and not on all of them.

Tested by perturbation: change one input pixel q and see which logits move. All
H*W perturbed copies of the image go through the model as one batch.
"""

import numpy as np
import pytest

import npixelcnn as npc

from conftest import randomize

H, W = 9, 10
ROUNDING = 1e-10      # float64 differences below this are rounding, not influence


def influence(model, x, p):
    """bool (H, W): True where changing input pixel q changes the logits at pixel p."""
    n = H * W
    batch = np.repeat(x[None], n, axis=0)                       # (H*W, H, W, 1)
    q_rows, q_cols = np.divmod(np.arange(n), W)
    batch[np.arange(n), q_rows, q_cols, 0] = 1.0 - batch[np.arange(n), q_rows, q_cols, 0]
    base = model.forward(x[None])[0, p[0], p[1]]                # (levels,)
    moved = model.forward(batch)[:, p[0], p[1]]                 # (H*W, levels)
    # A batch of one and a batch of H*W go through BLAS differently and can differ
    # by rounding (seen: 3e-16); a real influence here is at least 1e-5.
    return np.any(np.abs(moved - base) > ROUNDING, axis=1).reshape(H, W)


def predicted_receptive_field(p, blocks):
    """Pixels reachable by composing the kept taps of every masked layer.

    A residual block's output at a pixel sees its input at the same pixel (the
    skip) and, through its 3x3 mask-B convolution, the five kept taps around it.
    """
    field = np.zeros((H, W), dtype=bool)
    field[p] = True
    for _ in range(blocks):
        field = dilate(field, npc.kept_taps(3, "B") - 1) | field
    return dilate(field, npc.kept_taps(7, "A") - 3)


def dilate(field, offsets):
    out = np.zeros_like(field)
    for r, c in zip(*np.nonzero(field)):
        for dr, dc in offsets:
            if 0 <= r + dr < H and 0 <= c + dc < W:
                out[r + dr, c + dc] = True
    return out


@pytest.fixture(scope="module")
def model_and_image():
    model = randomize(npc.PixelCNN(levels=4, hidden=3, blocks=2, head=6, seed=0), seed=1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (H, W, 1)) / 3
    return model, x


@pytest.mark.parametrize("p", [(0, 0), (0, 5), (4, 4), (4, 9), (8, 0), (8, 9)])
def test_logits_never_depend_on_the_pixel_itself_or_later_ones(model_and_image, p):
    model, x = model_and_image
    seen = influence(model, x, p)
    raster = np.arange(H * W).reshape(H, W)
    assert not seen[raster >= raster[p]].any()
    if p != (0, 0):
        assert seen.any(), "a pixel with predecessors should depend on some of them"
    else:
        assert not seen.any()


@pytest.mark.parametrize("p", [(4, 4), (6, 2), (8, 9)])
def test_dependencies_are_exactly_the_composed_masks(model_and_image, p):
    model, _ = model_and_image
    predicted = predicted_receptive_field(p, blocks=2)
    # On one image a ReLU that is off can hide a path; over a few images every
    # path shows, and none may ever reach outside the predicted field.
    seen = np.zeros((H, W), dtype=bool)
    for seed in range(3):
        x = np.random.default_rng(seed).integers(0, 4, (H, W, 1)) / 3
        one = influence(model, x, p)
        assert not (one & ~predicted).any()
        seen |= one
    np.testing.assert_array_equal(seen, predicted)


def test_blind_spot_earlier_pixels_the_model_cannot_see(model_and_image):
    # Stacked masked convolutions grow their view of the row above by one
    # column per layer that climbs a row, but the row directly above is reached
    # only through the first 7x7 kernel, three columns to the right at most.
    # Pixels further right in the rows above come earlier in raster order, yet
    # no layer ever sees them: the blind spot (van den Oord et al., 2016b).
    model, x = model_and_image
    p = (5, 2)
    seen = influence(model, x, p)
    blind = [(4, 6), (4, 7), (4, 8), (4, 9), (3, 8), (3, 9)]
    for q in blind:
        assert q < p                     # earlier in raster order ...
        assert not seen[q], f"pixel {q} should be in the blind spot of {p}"
    assert seen[4, 5] and seen[3, 6]     # ... while these, just inside, are seen
