"""The worked solutions of lesson 05 (sampling): try each exercise yourself first.

The notebook imports these names when SOLUTIONS is True.
"""

import numpy as np

import npixelcnn as npc


def greedy_images(model, n, seed):
    """Exercise 1: ``n`` images drawn at temperature 1e-3 (as good as the argmax at every pixel)."""
    return npc.sample(model, n, temperature=1e-3, seed=seed, method="cached")


def complete_from_bottom(model, originals, n_per_image, seed):
    """Exercise 2: keep the bottom 14 rows of each image, sample the top 14:
    (N, n_per_image, 28, 28)."""
    bottom = np.zeros((28, 28), bool)
    bottom[14:] = True                                   # True = visible
    return npc.complete(model, originals, visible=bottom, n_samples=n_per_image, seed=seed)


def receptive_field(p, shape=(28, 28), first_kernel=7, blocks=10):
    """Exercise 3: the input pixels the logits at ``p`` depend on, for a PixelCNN whose first
    layer is a ``first_kernel`` x ``first_kernel`` mask A followed by ``blocks`` 3x3 mask-B
    layers: a boolean (H, W) array.

    Count d rows up and e columns right of p. The first layer reaches r = first_kernel // 2
    rows up and r columns either side, but on p's own row only the r pixels to its left. Each
    3x3 mask-B layer adds at most one row up and one column left; one column to the right
    only together with one row up. So:

    * d = 0 (p's row): -(r + blocks) <= e <= -1;
    * 1 <= d <= r + blocks: -(r + blocks) <= e <= r + (d - d_A), where d_A >= 1 is the fewest
      rows the first layer can take while the blocks climb the rest (d - d_A <= blocks):
      e <= min(d + r - 1, r + blocks).
    """
    r = first_kernel // 2
    rows, cols = np.indices(shape)
    d, e = p[0] - rows, cols - p[1]
    reach = r + blocks
    same_row = (d == 0) & (e >= -reach) & (e <= -1)
    above = (d >= 1) & (d <= reach) & (e >= -reach) & (e <= np.minimum(d + r - 1, reach))
    return same_row | above


def numbers_in_rings(blocks, hidden, width=28, first_kernel=7, block_kernel=3):
    """Exercise 4: numbers the fast cached sampler's rings hold per image: each masked layer keeps
    its last k // 2 + 1 input rows of ``width`` pixels, times its input channels (1 for the
    image, ``hidden`` for each block's 3x3 layer)."""
    return ((first_kernel // 2 + 1) * width * 1
            + blocks * (block_kernel // 2 + 1) * width * hidden)
