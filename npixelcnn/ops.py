"""The operations the layers are made of, written as the maths.

The layers (and the loss and the sampler's draw) call these names. Each one is
plain NumPy that reads as its formula, and that is what runs by default: a
learner stepping through a layer sees these lines, in their own thread.

Each also has a fast twin in :mod:`npixelcnn.fast_ops` (threads over the batch,
reused buffers, sums as products) that gives the same numbers
(tests/test_fast.py). ``use_fast(True)``, or a ``with fast():`` block, switches
every layer to the twins; the command line does so for training, evaluation
and sampling.
"""

from contextlib import contextmanager

import numpy as np

from . import fast_ops
from .im2col import col2im as plain_col2im
from .im2col import im2col as plain_im2col

_use_fast = False


def use_fast(enabled=True):
    """From now on, the layers run the fast twins (True) or the plain operations (False)."""
    global _use_fast
    _use_fast = bool(enabled)


def using_fast():
    """True when the layers run the fast twins."""
    return _use_fast


@contextmanager
def fast(enabled=True):
    """Within the block, the layers run the fast twins (or, with ``enabled=False``, the plain operations)."""
    before = using_fast()
    use_fast(enabled)
    try:
        yield
    finally:
        use_fast(before)


def plain():
    """Within the block, the layers run the plain operations (the default), whatever was set outside it."""
    return fast(False)


def relu(x):
    """max(x, 0), elementwise."""
    return fast_ops.relu(x) if _use_fast else np.maximum(x, 0)


def relu_backward(dy, y):
    """The gradient of ReLU: dy where the output y was positive, 0 elsewhere."""
    return fast_ops.relu_backward(dy, y) if _use_fast else dy * (y > 0)


def add(a, b):
    """a + b (a residual connection: x + f(x))."""
    return fast_ops.add(a, b) if _use_fast else a + b


def add_bias(y, b):
    """y + b for y (M, C) and a bias b (C,) (the fast twin adds into y)."""
    return fast_ops.add_bias(y, b) if _use_fast else y + b


def sum_rows(a):
    """a (M, C) -> (C,): the sum over rows (a bias gradient)."""
    return fast_ops.sum_rows(a) if _use_fast else a.sum(axis=0)


def exp_and_row_sums(z, z_max):
    """exp(z - z_max) (M, L) and its row sums (M,), for z (M, L) and z_max (M, 1): a softmax's parts."""
    if _use_fast:
        return fast_ops.exp_and_row_sums(z, z_max)
    exp = np.exp(z - z_max)
    return exp, exp.sum(axis=1)


def cumsum_rows(p):
    """p (M, L) -> its running sums along each row (M, L): from probabilities, a CDF."""
    return fast_ops.cumsum_rows(p) if _use_fast else np.cumsum(p, axis=1)


def im2col(x, taps, kernel_size, owner=None):
    """x (N, H, W, C) -> cols (N*H*W, T*C); see :mod:`npixelcnn.im2col`.

    ``owner``: the layer that keeps the matrix until its backward pass (the
    fast twin refills that layer's own buffer), or None for a matrix used at
    once (a buffer shared by all layers).
    """
    if _use_fast:
        return fast_ops.im2col(x, taps, kernel_size, owner=owner)
    return plain_im2col(x, taps, kernel_size)


def matmul_transposed(dy, W):
    """dy @ W.T: the gradient of ``cols @ W`` with respect to cols (used at once, by col2im)."""
    return fast_ops.matmul_into_scratch(dy, W.T) if _use_fast else dy @ W.T


def col2im(cols, x_shape, taps, kernel_size):
    """cols (N*H*W, T*C) -> dx (N, H, W, C), the adjoint of im2col."""
    if _use_fast:
        return fast_ops.col2im(cols, x_shape, taps, kernel_size)
    return plain_col2im(cols, x_shape, taps, kernel_size)
