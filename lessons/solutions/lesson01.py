"""The worked solutions of lesson 01 (autoregressive models): try each exercise yourself first.

The notebook imports these names when SOLUTIONS is True. The solutions are self-contained
(NumPy only), so they repeat in a few lines what the notebook's helpers do.
"""

import numpy as np

D = 28 * 28
LEVELS = 4

# Exercise 1: the uniform model on 256 levels gives every pixel probability 1/256, so each of
# the 784 factors of the chain rule costs -log2(1/256) = 8 bits: exactly a raw grey value.
answer_1 = 8.0

# Exercise 2: nats per image -> nats per dimension (divide by 784) -> bits (divide by ln 2).
answer_2 = round(79.2 / (D * np.log(2)), 4)          # 0.1457


def above_table(levels):
    """Exercise 3: ln p(level | position, level of the pixel above), add-one smoothed: (784, 4, 4).

    In the notebook this is one line: ``fit_counts(pixel_above(levels), levels, LEVELS)``.
    """
    n = len(levels)
    above = np.zeros_like(levels)
    above[:, 1:] = levels[:, :-1]                    # the pixel above; black above the first row
    bins = (np.arange(D) * LEVELS + above.reshape(n, D)) * LEVELS + levels.reshape(n, D)
    counts = np.bincount(bins.ravel(), minlength=D * LEVELS * LEVELS).reshape(D, LEVELS, LEVELS) + 1.0
    return np.log(counts / counts.sum(axis=-1, keepdims=True))


def shared_bits(train_levels, test_levels):
    """Exercise 4: test bits/dim of one add-one smoothed categorical shared by all positions."""
    counts = np.bincount(train_levels.ravel(), minlength=LEVELS) + 1.0
    q = counts / counts.sum()
    return float(-np.log2(q)[test_levels].mean())
