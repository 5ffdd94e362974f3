"""The worked solutions of lesson 06 (the blind spot and the Gated PixelCNN): try each exercise
yourself first.

The notebook imports these names when SOLUTIONS is True.
"""

import numpy as np

import npixelcnn as npc
from npixelcnn.gated import horizontal_taps, vertical_taps


# Exercise 1: y = t * s with t = tanh(a), s = sigmoid(b); tanh' = 1 - t^2, sigmoid' = s (1 - s).
def gate_backward(dy, x):
    """dy (..., C), x (..., 2C) -> dx (..., 2C): the gradients for a, then for b."""
    c = x.shape[-1] // 2
    t = np.tanh(x[..., :c])
    s = 0.5 * (1 + np.tanh(0.5 * x[..., c:]))          # sigmoid(b), without overflow in exp
    return np.concatenate([dy * s * (1 - t * t), dy * t * s * (1 - s)], axis=-1)


# Exercise 2: the pieces the notebook writes (its gate, shift_down, conv_taps and their backward
# passes), repeated here so that this file stands alone; then gated_layer_forward's steps in reverse.
def _gate(x):
    c = x.shape[-1] // 2
    return np.tanh(x[..., :c]) * 0.5 * (1 + np.tanh(0.5 * x[..., c:]))


def _shift_down(x):
    y = np.zeros_like(x)
    y[:, 1:] = x[:, :-1]
    return y


def _shift_down_backward(dy):
    dx = np.zeros_like(dy)
    dx[:, :-1] = dy[:, 1:]
    return dx


def _conv_taps(x, W, b, taps, k):
    n, h, w, _ = x.shape
    taps = np.asarray(taps)
    W_kept = W[taps[:, 0], taps[:, 1]].reshape(-1, W.shape[-1])
    return (npc.im2col(x, taps, k) @ W_kept + b).reshape(n, h, w, -1)


def _conv_taps_backward(dy, x, W, taps, k):
    taps = np.asarray(taps)
    c_in, c_out = W.shape[2:]
    dY = dy.reshape(-1, c_out)
    W_kept = W[taps[:, 0], taps[:, 1]].reshape(-1, c_out)
    dW = np.zeros_like(W)
    dW[taps[:, 0], taps[:, 1]] = (npc.im2col(x, taps, k).T @ dY).reshape(len(taps), c_in, c_out)
    return npc.col2im(dY @ W_kept.T, x.shape, taps, k), dW, dY.sum(axis=0)


def gated_layer_backward(dy, x, p, k, first):
    """The backward pass of the notebook's gated_layer_forward(x, p, k, first): (dv', dh') -> (dx, grads)."""
    dv_out, dh_out = dy
    v, h = (x, x) if first else x
    v_taps, h_taps = vertical_taps(k), horizontal_taps(k, not first)
    # the forward pass again, keeping what the backward pass needs
    v_pre = _conv_taps(v, p["vertical.W"], p["vertical.b"], v_taps, k)
    shifted = _shift_down(v_pre)
    h_pre = (_conv_taps(h, p["horizontal.W"], p["horizontal.b"], h_taps, k)
             + _conv_taps(shifted, p["link.W"], p["link.b"], [(0, 0)], 1))
    gated_h = _gate(h_pre)
    grads = {}
    # h' = h + out(gate(h_pre)): through the 1x1 output and the horizontal gate to dh_pre
    d_gated_h, grads["out.W"], grads["out.b"] = _conv_taps_backward(dh_out, gated_h, p["out.W"], [(0, 0)], 1)
    dh_pre = gate_backward(d_gated_h, h_pre)
    # h_pre feeds on two branches: the horizontal convolution, and the link from the shifted v_pre
    dh, grads["horizontal.W"], grads["horizontal.b"] = _conv_taps_backward(dh_pre, h, p["horizontal.W"], h_taps, k)
    d_shifted, grads["link.W"], grads["link.b"] = _conv_taps_backward(dh_pre, shifted, p["link.W"], [(0, 0)], 1)
    # v_pre has two consumers, the vertical gate (v') and the shift (moved back up a row): the gradients add
    dv_pre = _shift_down_backward(d_shifted) + gate_backward(dv_out, v_pre)
    dv, grads["vertical.W"], grads["vertical.b"] = _conv_taps_backward(dv_pre, v, p["vertical.W"], v_taps, k)
    if first:
        return dv + dh, grads                      # both stacks read the same image
    return (dv, dh + dh_out), grads                # the residual passes dh' through


# Exercise 3: p = k // 2. Each vertical layer climbs p rows, and the shift one more row, crossed
# once; either stack moves p columns per layer, to the left or (above the pixel) to the right.
def field_rows_up(L, k):
    return (k // 2) * L + 1


def field_cols_left(L, k):
    return (k // 2) * L


def field_cols_right(L, k):
    return (k // 2) * L
