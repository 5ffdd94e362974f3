"""The operations the layers are made of, written as the maths.

The layers (and the sampler's draw) call these names. Each one is plain NumPy that reads as its
formula; each also has a fast twin in :mod:`npixelcnn.fast` (threads over the
batch, reused buffers, sums as products) that gives the same numbers
(tests/test_fast.py). The twins run by default, so training, evaluation,
sampling, the CLI and the benchmarks are fast; inside ``with plain():`` every
layer runs the lines below instead, as a reader follows them.
"""

from contextlib import contextmanager

import numpy as np

from . import fast
from .im2col import col2im as plain_col2im
from .im2col import im2col as plain_im2col

_use_fast = True


@contextmanager
def plain():
    """Within the block, the layers run the plain operations, not their fast twins."""
    global _use_fast
    before, _use_fast = _use_fast, False
    try:
        yield
    finally:
        _use_fast = before


def relu(x):
    """max(x, 0), elementwise."""
    return fast.relu(x) if _use_fast else np.maximum(x, 0)


def relu_backward(dy, y):
    """The gradient of ReLU: dy where the output y was positive, 0 elsewhere."""
    return fast.relu_backward(dy, y) if _use_fast else dy * (y > 0)


def add(a, b):
    """a + b (a residual connection: x + f(x))."""
    return fast.add(a, b) if _use_fast else a + b


def add_bias(y, b):
    """y + b for y (M, C) and a bias b (C,) (the fast twin adds into y)."""
    return fast.add_bias(y, b) if _use_fast else y + b


def sum_rows(a):
    """a (M, C) -> (C,): the sum over rows (a bias gradient)."""
    return fast.sum_rows(a) if _use_fast else a.sum(axis=0)


def exp_and_row_sums(z, z_max):
    """exp(z - z_max) (M, L) and its row sums (M,), for z (M, L) and z_max (M, 1): a softmax's parts."""
    if _use_fast:
        return fast.exp_and_row_sums(z, z_max)
    exp = np.exp(z - z_max)
    return exp, exp.sum(axis=1)


def cumsum_rows(p):
    """p (M, L) -> its running sums along each row (M, L): from probabilities, a CDF."""
    return fast.cumsum_rows(p) if _use_fast else np.cumsum(p, axis=1)


def im2col(x, taps, kernel_size, owner=None):
    """x (N, H, W, C) -> cols (N*H*W, T*C); see :mod:`npixelcnn.im2col`.

    ``owner``: the layer that keeps the matrix until its backward pass (the
    fast twin refills that layer's own buffer), or None for a matrix used at
    once (a buffer shared by all layers).
    """
    if _use_fast:
        return fast.im2col(x, taps, kernel_size, owner=owner)
    return plain_im2col(x, taps, kernel_size)


def matmul_transposed(dy, W):
    """dy @ W.T: the gradient of ``cols @ W`` with respect to cols (used at once, by col2im)."""
    return fast.matmul_into_scratch(dy, W.T) if _use_fast else dy @ W.T


def col2im(cols, x_shape, taps, kernel_size):
    """cols (N*H*W, T*C) -> dx (N, H, W, C), the adjoint of im2col."""
    if _use_fast:
        return fast.col2im(cols, x_shape, taps, kernel_size)
    return plain_col2im(cols, x_shape, taps, kernel_size)


_split_batches = True


@contextmanager
def whole_batches():
    """Within the block, training steps and evaluation run the whole batch on the model itself,
    no replicas: bit for bit a hand-written loop (the replicas' sums round differently)."""
    global _split_batches
    before, _split_batches = _split_batches, False
    try:
        yield
    finally:
        _split_batches = before


def forward_backward(step, model, x, targets):
    """``step(model, x, targets)``: one training step's forward and backward passes on a batch,
    returning its mean loss and filling ``model.grads``. The fast twin gives each core a part of
    the batch and a replica of the model (:class:`npixelcnn.fast.DataParallel`)."""
    if _use_fast and _split_batches:
        return fast.forward_backward(step, model, x, targets)
    return step(model, x, targets)


def batch_total(score, model, x, targets):
    """``score(model, x, targets)``: a sum over the images of a batch, such as its total NLL. The
    fast twin gives each core a part of the batch and a replica of the model, as in training."""
    if _use_fast and _split_batches:
        return fast.batch_total(score, model, x, targets)
    return score(model, x, targets)


def one_blas_thread():
    """A context in which matrix products run on one BLAS thread: for many small
    products, as the cached sampler makes, where waking a second thread costs
    more than it saves (see :func:`npixelcnn.fast.limit_blas_threads`)."""
    return fast.limit_blas_threads(1)
