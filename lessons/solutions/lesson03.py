"""The worked solutions of lesson 03 (building PixelCNN): try each exercise yourself first.

The notebook imports these names when SOLUTIONS is True. They are self-contained (NumPy and
npixelcnn), so the block's backward pass repeats in a few lines the ReLU and 1x1 backward
passes that the notebook writes in its sections 1 and 2.
"""

import numpy as np

import npixelcnn as npc

TAPS_B = npc.kept_taps(3, "B")


# Exercise 1: conv1 (2h -> h) + conv2 (3x3, h -> h) + conv3 (h -> 2h), weights and biases.
def block_params(h):
    return (2 * h * h + h) + (9 * h * h + h) + (h * 2 * h + 2 * h)     # 13 h^2 + 4 h


def live_params(h):
    return block_params(h) - 4 * h * h          # mask B hides 4 of the 3x3's 9 taps


# Exercise 2: the residual block's backward pass.
def _relu_backward(dy, y):
    return dy * (y > 0)


def _conv1x1_backward(dy, x, W):
    X, dY = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    return (dY @ W[0, 0].T).reshape(x.shape), (X.T @ dY).reshape(W.shape), dY.sum(axis=0)


def _masked3x3_backward(dy, x, W):
    """The 3x3 mask-B convolution's backward pass, through im2col/col2im (lesson 2)."""
    c = x.shape[-1]
    dY = dy.reshape(-1, dy.shape[-1])
    W_kept = W[TAPS_B[:, 0], TAPS_B[:, 1]].reshape(-1, W.shape[-1])
    dW = np.zeros_like(W)
    dW[TAPS_B[:, 0], TAPS_B[:, 1]] = (npc.im2col(x, TAPS_B, 3).T @ dY).reshape(len(TAPS_B), c, -1)
    dx = npc.col2im(dY @ W_kept.T, x.shape, TAPS_B, 3)
    return dx, dW, dY.sum(axis=0)


def block_backward(dy, x, acts, p):
    """dy: (N, H, W, 2h) -> (dx (N, H, W, 2h), {"conv1.W": ..., ..., "conv3.b": ...})."""
    a1, z1, z2 = acts
    g = {}
    d, g["conv3.W"], g["conv3.b"] = _conv1x1_backward(dy, z2, p["conv3.W"])
    d, g["conv2.W"], g["conv2.b"] = _masked3x3_backward(_relu_backward(d, z2), z1, p["conv2.W"])
    d, g["conv1.W"], g["conv1.b"] = _conv1x1_backward(_relu_backward(d, z1), a1, p["conv1.W"])
    return dy + _relu_backward(d, a1), g          # the skip adds dy


# Exercise 3: at t = 1, m_hat = g and v_hat = g^2, so the step is lr * g / |g| = lr; without the
# correction it is lr * 0.1 g / (sqrt(0.001) |g|), about 3.16 lr.
first_step = 1e-3
first_step_uncorrected = 1e-3 * 0.1 / np.sqrt(0.001)


# Exercise 4: out(head2(z)) = (z W2 + b2) W3 + b3 = z (W2 W3) + (b2 W3 + b3).
def merge_head(W2, b2, W3, b3):
    """(1, 1, head, head), (head,), (1, 1, head, L), (L,) -> W (1, 1, head, L), b (L,)."""
    return (W2[0, 0] @ W3[0, 0])[None, None], b2 @ W3[0, 0] + b3


# Exercise 5: an array of shape (..., 1) broadcasts one constant over a pixel's L levels.
def shift_per_pixel(logits, rng):
    return logits + 5 * rng.standard_normal(logits.shape[:-1] + (1,)).astype(logits.dtype)
