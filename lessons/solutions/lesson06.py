"""The worked solutions of lesson 06 (the blind spot and the Gated PixelCNN): try each exercise
yourself first.

The notebook imports these names when SOLUTIONS is True.
"""

import numpy as np


# Exercise 1: y = t * s with t = tanh(a), s = sigmoid(b); tanh' = 1 - t^2, sigmoid' = s (1 - s).
def gate_backward(dy, x):
    """dy (..., C), x (..., 2C) -> dx (..., 2C): the gradients for a, then for b."""
    c = x.shape[-1] // 2
    t = np.tanh(x[..., :c])
    s = 0.5 * (1 + np.tanh(0.5 * x[..., c:]))          # sigmoid(b), without overflow in exp
    return np.concatenate([dy * s * (1 - t * t), dy * t * s * (1 - s)], axis=-1)


# Exercise 2: the vertical window covers the rows up to and including the centre row, every
# column (the shift down one row keeps it causal); the horizontal one the centre row, left of
# the centre, and the centre itself in every layer but the first.
def my_vertical_taps(k):
    return [(r, c) for r in range(k // 2 + 1) for c in range(k)]


def my_horizontal_taps(k, include_centre):
    return [(k // 2, c) for c in range(k // 2 + 1 if include_centre else k // 2)]


# Exercise 3: p = k // 2. Each vertical layer climbs p rows, and the shift one more row, crossed
# once; either stack moves p columns per layer, to the left or (above the pixel) to the right.
def field_rows_up(L, k):
    return (k // 2) * L + 1


def field_cols_left(L, k):
    return (k // 2) * L


def field_cols_right(L, k):
    return (k // 2) * L
