"""Layers with hand-written forward and backward passes.

Every layer follows one contract (the shape of CS231n's and "Deep Learning from
Scratch"'s layers):

* ``layer.params``: dict name -> trainable array;
* ``layer.grads``: dict with the same keys and shapes, filled by ``backward``;
* ``y = layer.forward(x)`` keeps what the backward pass needs in ``layer._cache``
  (every leaf layer uses that one name);
* ``dx = layer.backward(dy)`` returns dL/dx for the most recent forward call and
  writes dL/dparam into ``layer.grads`` (overwriting, not accumulating);
* ``layer.eval()`` switches to inference: forward keeps no cache (evaluation
  and sampling never call backward, and the caches of a big batch cost GBs);
  ``layer.train()`` switches back.

Composite layers (:class:`Module`) expose their children's parameters under
flat dotted names such as ``blocks.3.conv2.W``, so the optimizer, checkpoints
and gradient checks all walk one flat view.

Activations are NHWC (batch, height, width, channels); convolution weights are
(kh, kw, C_in, C_out), as in TensorFlow.

:class:`Conv2D` allocates every parameter of the package's models, so it is
where :func:`parameter_limit` caps how many a model being built may take.
"""

import contextvars
from contextlib import contextmanager

import numpy as np

from . import ops
from .masks import (channel_taps, check_channel_order, check_dilation, check_kernel_size,
                    check_layer_groups, dilated_window, kept_taps)
from .validation import check_activations, check_gradient, check_positive_int


_NO_CACHE = (
    "{}.backward called before forward in training mode: there is no cached "
    "forward pass (forward after eval() keeps none; call train() first)"
)


class Layer:
    """Base class: a leaf layer owns its ``params`` and ``grads`` dicts."""

    training = True     # False after eval(): forward keeps nothing for backward
    _cache = None       # what forward keeps for backward (None before forward and in eval mode)

    def __init__(self):
        self.params = {}
        self.grads = {}

    def train(self, mode=True):
        """Training mode (the default): forward caches what backward needs. Returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Inference mode: forward keeps no cache, so backward cannot run. Returns self."""
        return self.train(False)

    def forward(self, x):
        """x -> y; caches what backward needs."""
        raise NotImplementedError

    def backward(self, dy):
        """dL/dy -> dL/dx for the most recent forward; fills ``grads``."""
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    _dtype = np.dtype(np.float32)      # for layers without parameters, such as ReLU

    @property
    def dtype(self):
        """The dtype of the parameters (float32 unless converted)."""
        for value in self.params.values():
            return value.dtype
        return self._dtype

    def astype(self, dtype):
        """Convert parameters and gradients to ``dtype`` in place; returns self.

        Gradient checks run in float64; training and sampling in float32.
        """
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"parameters must be floating point, got {dtype}")
        for name in self.params:
            self.params[name] = self.params[name].astype(dtype)
            self.grads[name] = self.grads[name].astype(dtype)
        self._dtype = dtype
        return self

    def zero_grad(self):
        """Set every gradient to zero."""
        for grad in self.grads.values():
            grad[...] = 0

    def num_params(self):
        """Number of scalar parameters (masked weight entries included)."""
        return sum(p.size for p in self.params.values())


class Module(Layer):
    """A layer made of named child layers.

    ``params`` and ``grads`` are views of the children's dicts under dotted
    names; the arrays are shared, so updating ``module.params[name]`` in place
    updates the child. Subclasses register children in construction order.
    """

    def __init__(self):
        self._children = []

    def add(self, name, layer):
        """Register ``layer`` as a child called ``name``; returns the layer."""
        self._children.append((str(name), layer))
        return layer

    def train(self, mode=True):
        """Set training mode on this module and every layer below it. Returns self."""
        self.training = bool(mode)
        for _, child in self._children:
            child.train(mode)
        return self

    def named_children(self):
        """[(name, layer), ...] in the order they were added."""
        return list(self._children)

    def named_leaves(self):
        """[(dotted name, layer), ...]: every layer below this one that is not a Module, in order.

        The one walk over a model's layers: checkpoints use it to check masks,
        the benchmarks to time each layer, the tests to inspect caches.
        """
        found = []
        for name, child in self._children:
            if isinstance(child, Module):
                found += [(f"{name}.{leaf_name}", leaf) for leaf_name, leaf in child.named_leaves()]
            else:
                found.append((name, child))
        return found

    def _flat(self, attr):
        """The children's ``params`` or ``grads`` under "child.key" names."""
        return {
            f"{name}.{key}": value
            for name, child in self._children
            for key, value in getattr(child, attr).items()
        }

    @property
    def params(self):
        """{"child.name": array}: every trainable array below this module."""
        return self._flat("params")

    @property
    def grads(self):
        """{"child.name": array}: the gradients, with the keys of ``params``."""
        return self._flat("grads")

    @property
    def dtype(self):
        """The dtype of the first child that has parameters."""
        for _, child in self._children:
            if child.params or isinstance(child, Module):
                return child.dtype
        return np.dtype(np.float32)

    def astype(self, dtype):
        """Convert every child's parameters and gradients; returns self."""
        for _, child in self._children:
            child.astype(dtype)
        return self


class ParameterLimitExceeded(MemoryError):
    """Building a layer would take the parameters built past the limit of :func:`parameter_limit`."""


# {"limit": n, "built": parameters so far} inside parameter_limit, else None. A context
# variable, not a global: a limit set in one thread never stops another building its model.
_parameter_budget = contextvars.ContextVar("parameter_budget", default=None)


@contextmanager
def parameter_limit(limit):
    """Within the block, the layers built may take at most ``limit`` parameters in all.

    A layer that would pass the limit raises :class:`ParameterLimitExceeded` before it
    allocates anything. :func:`~npixelcnn.checkpoint.load_checkpoint` builds a file's model
    under a limit set by the arrays the file holds, so settings edited to ``hidden=100000``
    are refused at once rather than after asking for 80 GB.
    """
    token = _parameter_budget.set({"limit": limit, "built": 0})
    try:
        yield
    finally:
        _parameter_budget.reset(token)


def _claim_parameters(layer, in_channels, out_channels, k, claim=True):
    """Count the k*k*C_in*C_out + C_out parameters of a convolution (``layer``: its class name)
    against the limit, if one is set (``claim=False``: only check that they would fit)."""
    budget = _parameter_budget.get()
    if budget is None:
        return
    count = k * k * in_channels * out_channels + out_channels
    if budget["built"] + count > budget["limit"]:
        raise ParameterLimitExceeded(f"{layer}({in_channels}, {out_channels}, kernel_size={k}) would bring "
                                     f"the parameters built to {budget['built'] + count:,}, past the limit "
                                     f"of {budget['limit']:,}")
    budget["built"] += count if claim else 0


def he_normal(rng, shape, fan_in, gain=1.0):
    """He (Kaiming) normal initialisation: std = gain * sqrt(2 / fan_in).

    He et al. (2015) chose the variance so that a ReLU, which zeroes half of its
    input, passes on the same signal variance it receives. For a masked
    convolution, ``fan_in`` counts only the weights the mask keeps: masked weights
    never touch the input, so counting them would make the weights too small.
    ``fan_in`` may be an array, one per output channel (the last axis of ``shape``).
    """
    std = gain * np.sqrt(2.0 / np.maximum(fan_in, 1))
    return (std * rng.standard_normal(shape)).astype(np.float32)


def as_rng(rng):
    """A np.random.Generator from a Generator (returned as is), a seed or None."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class Conv2D(Layer):
    """A k x k convolution over a chosen set of kernel taps (stride 1, zero "same" padding, NHWC).

    By default it keeps every tap: an ordinary convolution. :class:`MaskedConv2D`
    is the same layer keeping only the taps a causal mask allows. Only the kept
    taps are gathered by im2col and multiplied (see :mod:`npixelcnn.im2col`),
    so the other weight entries never enter the computation: they stay exactly
    zero and get exactly zero gradient. With k = 1 the layer is a matrix product
    over channels at every pixel: an NHWC array reshaped to (N*H*W, C_in)
    already is the im2col matrix.

    With ``dilation`` d > 1 the same k x k taps read the input d pixels apart
    (see :mod:`npixelcnn.masks`): tap (r, c) reads it at offset
    ((r - k//2) * d, (c - k//2) * d). W keeps its shape; only where the taps
    read changes. im2col is told exactly that: the taps' positions in the
    dilated window, ``window_taps``, and its width, ``window``. A 1x1 kernel
    has one tap, at offset 0, which d leaves where it is: a 1x1 takes any d
    and ignores it (its window stays 1).

    Args:
        in_channels, out_channels: C_in and C_out.
        kernel_size: odd k (default 1).
        rng: seed or np.random.Generator for the He-normal weight init.
        gain: multiplies the init's standard deviation.
        taps: (T, 2) kernel positions (row, col) to keep; None keeps all k*k.
        dilation: d >= 1, the distance between neighbouring taps (default 1).
        centre_mask: bool (C_in, C_out), the weights of the centre tap (one of ``taps``) to
            keep (:func:`npixelcnn.masks.channel_mask`); None keeps all. Kept as an attribute.

    Parameters:
        W: (k, k, C_in, C_out), zero at the taps not kept and where ``centre_mask`` is
            False (kept_weights() and the gradient hold those zeros: no step moves them).
        b: (C_out,), zeros at init.

    Attributes:
        taps: (T, 2), the kept positions in the k x k kernel (the rows of W used).
        dilation: d.
        window: (k - 1) * d + 1, the width of the window the taps read (k when d = 1).
        window_taps: (T, 2), ``taps * d``: where each tap reads in that window,
            whose centre is the output pixel.
    """

    def __init__(self, in_channels, out_channels, kernel_size=1, rng=None, gain=1.0, taps=None,
                 dilation=1, centre_mask=None):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        check_kernel_size(kernel_size)
        check_dilation(dilation, kernel_size)
        k = kernel_size
        # Before anything is allocated (the taps too): W holds k*k*C_in*C_out floats, b C_out.
        _claim_parameters(type(self).__name__, in_channels, out_channels, k)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.taps = np.argwhere(np.ones((k, k), dtype=bool)) if taps is None else np.asarray(taps)  # (T, 2)
        self._tap_rows, self._tap_cols = self.taps[:, 0], self.taps[:, 1]
        self.dilation = int(dilation)
        self.window = dilated_window(k, self.dilation)            # k when d = 1
        self.window_taps = self.taps * self.dilation              # (T, 2), in the window
        self._pointwise = k == 1 and len(self.taps) == 1          # a 1x1 that keeps its one tap
        self.centre_mask = None if centre_mask is None else np.array(centre_mask, dtype=bool)
        self._centre = np.flatnonzero((self.taps == k // 2).all(axis=1))[:1]   # [its index in taps], or []
        hidden = np.zeros((in_channels, out_channels), bool) if centre_mask is None else ~self.centre_mask
        if hidden.shape != (in_channels, out_channels) or centre_mask is not None and not len(self._centre):
            raise ValueError(f"centre_mask must be ({in_channels}, {out_channels}), for taps with the centre")
        fan_in = len(self.taps) * in_channels - hidden.sum(axis=0)   # (C_out,): weights that touch the input
        W = np.zeros((k, k, in_channels, out_channels), np.float32)
        W[self._tap_rows, self._tap_cols] = he_normal(
            as_rng(rng), (len(self.taps), in_channels, out_channels), fan_in, gain
        )
        W[k // 2, k // 2][hidden] = 0                             # the centre weights the mask hides
        self.params = {"W": W, "b": np.zeros(out_channels, np.float32)}
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}

    def kept_weights(self):
        """The rows of W for the kept taps, as the (T*C_in, C_out) matrix that multiplies im2col."""
        W = self.params["W"][self._tap_rows, self._tap_cols]      # (T, C_in, C_out), a copy
        if self.centre_mask is not None:
            W[self._centre[0]][~self.centre_mask] = 0             # zeros already, whatever W was given
        return W.reshape(-1, self.out_channels)

    def forward(self, x):
        """x: (N, H, W, C_in) -> y: (N, H, W, C_out)."""
        check_activations(x, self.in_channels, self.dtype, type(self).__name__)
        n, h, w, _ = x.shape
        if self._pointwise:
            cols = x.reshape(n * h * w, self.in_channels)         # already the im2col matrix
        else:                                                     # kept until backward when training
            cols = ops.im2col(x, self.window_taps, self.window, owner=self if self.training else None)
        y = ops.add_bias(cols @ self.kept_weights(), self.params["b"])    # (N*H*W, C_out)
        self._cache = (x.shape, cols) if self.training else None
        return y.reshape(n, h, w, self.out_channels)

    def backward(self, dy):
        """dy: (N, H, W, C_out) -> dx: (N, H, W, C_in); fills grads W and b."""
        name = type(self).__name__
        if self._cache is None:
            raise RuntimeError(_NO_CACHE.format(name))
        x_shape, cols = self._cache
        check_gradient(dy, x_shape[:3] + (self.out_channels,), cols.dtype, name)
        dy2 = dy.reshape(-1, self.out_channels)                   # (N*H*W, C_out)
        dW_kept = (cols.T @ dy2).reshape(len(self.taps), self.in_channels, self.out_channels)
        if self.centre_mask is not None:
            dW_kept[self._centre[0]][~self.centre_mask] = 0       # exactly 0: no step moves them
        self.grads["W"][self._tap_rows, self._tap_cols] = dW_kept
        self.grads["b"][...] = ops.sum_rows(dy2)
        if self._pointwise:
            return (dy2 @ self.kept_weights().T).reshape(x_shape)  # im2col was a reshape
        dcols = ops.matmul_transposed(dy2, self.kept_weights())   # (N*H*W, T*C_in)
        return ops.col2im(dcols, x_shape, self.window_taps, self.window)


class MaskedConv2D(Conv2D):
    """A k x k convolution whose kernel sees only earlier pixels (raster order) and earlier sub-pixels.

    A :class:`Conv2D` that keeps the taps of a causal mask (see
    :mod:`npixelcnn.masks`): mask "A" hides the centre pixel and everything
    after it, mask "B" lets the centre through. Given channel groups (R, G, B),
    the centre tap keeps the weights of :func:`~npixelcnn.masks.channel_mask`:
    an output of group g reads this pixel's inputs of group g' < g (A), g' <= g (B).

    Args:
        in_channels, out_channels: C_in and C_out.
        kernel_size: odd k.
        mask_type: "A" or "B".
        rng, gain, dilation: as for :class:`Conv2D`; a dilated mask keeps the same
            taps, d pixels apart, and is as causal.
        in_groups, out_groups: int arrays (C_in,) and (C_out,), each channel's group
            (:func:`~npixelcnn.masks.channel_groups`); None for both: one group (grey).
        channel_order: "ordered", or "independent" (centre: g' == g under B, none under A).

    Parameters:
        W: (k, k, C_in, C_out), zero where the mask hides a tap or a centre weight.
        b: (C_out,), zeros at init.

    Attributes: mask_type, channel_order, in_groups, out_groups (None: one group) and
        centre_mask: bool (C_in, C_out), or None where the taps say it all (see channel_taps).
    """

    def __init__(self, in_channels, out_channels, kernel_size, mask_type, rng=None, gain=1.0, dilation=1,
                 in_groups=None, out_groups=None, channel_order="ordered"):
        taps, centre = kept_taps(kernel_size, mask_type), None      # one group (checks k and mask_type)
        check_channel_order(channel_order)
        if in_groups is not None or out_groups is not None:         # the limit before the C_in x C_out mask
            in_groups, out_groups = check_layer_groups(in_groups, out_groups, in_channels, out_channels)
            _claim_parameters(type(self).__name__, in_channels, out_channels, kernel_size, claim=False)
            taps, centre = channel_taps(kernel_size, mask_type, in_groups, out_groups, channel_order)
        self.mask_type, self.channel_order = mask_type, channel_order
        self.in_groups, self.out_groups = in_groups, out_groups
        super().__init__(in_channels, out_channels, kernel_size, rng=rng, gain=gain, taps=taps,
                         dilation=dilation, centre_mask=centre)


class ReLU(Layer):
    """y = max(x, 0), elementwise. Backward lets the gradient through where y > 0."""

    def __init__(self):
        super().__init__()
        self._cache = None          # the output y: backward needs only where y > 0

    def forward(self, x):
        """x: any shape, floating -> y: same shape."""
        if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"ReLU: expected a floating-point NumPy array, got {getattr(x, 'dtype', type(x).__name__)}")
        y = ops.relu(x)
        self._cache = y if self.training else None
        return y

    def backward(self, dy):
        """dy: same shape as x -> dx."""
        if self._cache is None:
            raise RuntimeError(_NO_CACHE.format("ReLU"))
        y = self._cache
        check_gradient(dy, y.shape, y.dtype, "ReLU")
        return ops.relu_backward(dy, y)
