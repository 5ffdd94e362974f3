"""The worked solutions of lesson 02 (masked convolution): try each exercise yourself first.

The notebook imports these names when SOLUTIONS is True.
"""

import numpy as np

import npixelcnn as npc


# Exercise 1: the k // 2 rows above the centre are fully visible (k * (k // 2) taps), plus the
# k // 2 taps left of the centre on its row; mask B adds the centre itself.
def taps_A(k):
    return (k * k - 1) // 2


def taps_B(k):
    return (k * k + 1) // 2


# Exercise 2: the mask the simple way, a full convolution with the hidden weights zeroed.
def simple_masked_forward(x, W, b, mask):
    """x: (N, H, W, C_in), W: (k, k, C_in, C_out), b: (C_out,), mask: (k, k) bool -> (N, H, W, C_out)."""
    n, h, w, _ = x.shape
    k, c_out = mask.shape[0], W.shape[-1]
    all_taps = np.argwhere(np.ones((k, k), dtype=bool))            # all k*k taps, raster order
    W_masked = (W * mask[:, :, None, None]).reshape(-1, c_out)      # (k*k*C_in, C_out)
    return (npc.im2col(x, all_taps, k) @ W_masked + b).reshape(n, h, w, c_out)


saved_B = 1 - 5 / 9          # a 3x3 mask B keeps 5 of 9 taps: 44% of the multiply-adds saved
saved_A = 1 - 24 / 49        # a 7x7 mask A keeps 24 of 49 taps: 51% saved


# Exercise 3: the backward pass of Y = im2col(X) W_kept + b.
def masked_conv_backward(dy, x, W, taps, k):
    """dy: (N, H, W, C_out) -> (dx (N, H, W, C_in), dW (k, k, C_in, C_out) zero where masked, db (C_out,))."""
    c_in, c_out = W.shape[2:]
    cols = npc.im2col(x, taps, k)                                   # C, as in the forward pass
    dY = dy.reshape(-1, c_out)                                      # (N*H*W, C_out)
    W_kept = W[taps[:, 0], taps[:, 1]].reshape(-1, c_out)           # (T*C_in, C_out)
    dW = np.zeros_like(W)                                           # hidden taps: gradient 0
    dW[taps[:, 0], taps[:, 1]] = (cols.T @ dY).reshape(len(taps), c_in, c_out)
    db = dY.sum(axis=0)
    dx = npc.col2im(dY @ W_kept.T, x.shape, taps, k)                # dC = dY W^T, sent home
    return dx, dW, db


# Exercise 4: the 7x7 kernel reaches 3 rows up and 3 columns left, and each 3x3 mask-B layer one
# more of each. To the right a path gains columns only by climbing: the 7x7 kernel's climb (1 to 3
# rows) gains 3, each 3x3 climb 1. d rows up that is d + 2 (the blind spot's edge) while the n
# mask-B layers can make the d - 1 climbs, and n + 3 once they cannot.
def rows_up(n):
    return n + 3


def cols_left(n):
    return n + 3


def cols_right(n, d):
    return min(d + 2, n + 3)


# Exercise 5: one row up and four columns right is in the blind spot; three columns right is seen.
q_blind = (12, 13)
q_seen = (12, 12)
