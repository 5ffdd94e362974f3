"""One layer at one pixel, fast: the steps the cached sampler (:mod:`npixelcnn.cached_sampler`) runs.

The same computations as the plain steps of :mod:`npixelcnn.plain_steps`
(read those first), arranged so that a pixel's work stays small:

* a causal convolution (:class:`CausalConvAt`) keeps only its input's last
  p + 1 rows, in a ring, p = window // 2 (k//2 for a k x k kernel, (k//2) * d
  dilated by d), and reads its kept taps there;
* a 1x1 convolution and a ReLU (:class:`PointwiseConvAt`, :class:`ReLUAt`)
  need nothing but the pixel itself;
* a residual connection and a sequence (:class:`ResidualAt`,
  :class:`SequenceAt`) run their children's steps.

Each step class registers itself for its kind of layer (``layer=``, see
:mod:`npixelcnn.steps`). Every row a step passes on, (B, C + 1), ends in a
column of ones that multiplies the bias, folded into the weights as one more
row; each step writes into rows of its own (:class:`Rows`), made once, and
``at`` returns a row that its next call overwrites (or, when ``in_place`` is
set, its input row).

Why each of these helps shows in the cached sampler's profile,
``python benchmarks/bench_sampling.py --profile``: a step is a few small NumPy
calls per layer, so every call and every fresh allocation saved counts.
"""

import numpy as np

from .blocks import Residual, Sequential
from .layers import Conv2D, ReLU
from .steps import FastStep, check_causal_taps


class Rows:
    """The rows (B, width) the steps write into, made once, starting as ones
    (where the last column is the bias input, nothing ever writes over that 1).

    Rows inside a residual step are shared: everything a residual branch
    computes is used up before the step returns, so the blocks of a model,
    which have the same structure, can write the same rows. ``key`` is the
    position of a step inside the nearest enclosing residual branch (None
    outside any: own rows). Sharing keeps a pixel's work in a few hundred KB
    that stay in the CPU's cache (for the seed architecture, 215 KB instead
    of 3.2 MB for rows of its own per step).
    """

    def __init__(self, batch, dtype, key=None, shared=None):
        self.batch, self.dtype, self.key = batch, dtype, key
        self.shared = {} if shared is None else shared

    def get(self, role, width):
        """A row (B, width) for ``role``, this step's own or shared by position."""
        if self.key is None:
            return np.ones((self.batch, width), self.dtype)
        if (self.key, role, width) not in self.shared:
            self.shared[self.key, role, width] = np.ones((self.batch, width), self.dtype)
        return self.shared[self.key, role, width]

    def scratch(self, role, width):
        """A row used up within one step's computation: one for all steps."""
        return Rows(self.batch, self.dtype, ("scratch",), self.shared).get(role, width)

    def at(self, position):
        """The rows for a child at ``position`` (a tuple): shared if this one is."""
        return Rows(self.batch, self.dtype, None if self.key is None else self.key + position, self.shared)

    def in_branch(self, position):
        """The rows for a child of a residual branch: shared by position from here down."""
        key = position if self.key is None else self.key + position
        return Rows(self.batch, self.dtype, key, self.shared)


class ReLUAt(FastStep, layer=ReLU):
    """max(x, 0) at one pixel (the trailing 1 stays 1)."""

    def __init__(self, layer, shape, rows):
        super().__init__(layer, shape, rows)
        self.rows = rows
        self.y = None                   # made at the first call, when the width is known

    def at(self, x, i, j):
        if self.in_place:
            return _relu(x, out=x)
        if self.y is None:
            self.y = self.rows.get("relu", x.shape[1])
        return _relu(x, out=self.y)


class ConvAt(FastStep, layer=Conv2D):
    """A convolution at one pixel: a 1x1 that keeps its one tap reads only its own
    pixel (:class:`PointwiseConvAt`); any other must be causal (:class:`CausalConvAt`)."""

    @classmethod
    def make(cls, layer, shape, rows):
        pointwise = layer.kernel_size == 1 and len(layer.taps) == 1
        return (PointwiseConvAt if pointwise else CausalConvAt)(layer, shape, rows)


class PointwiseConvAt(ConvAt):
    """A 1x1 convolution at one pixel: [x, 1] @ [[W], [b]]."""

    def __init__(self, layer, shape, rows):
        super().__init__(layer, shape, rows)
        self.weights = weights_and_bias(layer)                      # (C_in + 1, C_out)
        self.y = rows.get("1x1", layer.out_channels + 1)

    def at(self, x, i, j):
        np.matmul(x, self.weights, out=self.y[:, :-1])
        return self.y


class CausalConvAt(ConvAt):
    """A k x k convolution over causal taps at one output pixel: its input's
    last rows in a ring, the kept taps of each kernel row, and the kept
    weights (with the bias row)."""

    def __init__(self, layer, shape, rows):
        super().__init__(layer, shape, rows)
        height, width = shape
        batch, dtype = rows.batch, rows.dtype
        # The taps where they read, in the layer's window (2 pad + 1 wide): for a
        # kernel dilated by d, the kernel's taps times d, so pad = (k//2) * d.
        self.pad, channels = layer.window // 2, layer.in_channels
        taps, step = layer.window_taps, layer.dilation
        n_taps = len(taps)
        self.reads_own_pixel = check_causal_taps(layer, self.sampler)    # mask B: yes; mask A: no
        # The window at (i, j) reaches rows i - pad .. i: only the last pad + 1
        # input rows are ever read again. They are kept in a ring, image row r
        # in slot r % (pad + 1), zero-padded by pad columns on either side
        # (those are never written, so they stay zero).
        self.ring = np.zeros((self.pad + 1, width + 2 * self.pad, batch, channels), dtype)
        self.input = self.ring[:, self.pad:self.pad + width]              # (pad + 1, W, B, C_in)
        # im2col's row for one pixel and all B images, (B, T*C_in + 1), taps
        # in raster order and channels inside each tap, as in the full layer;
        # the last column is the 1 that multiplies the bias row.
        self.cols = rows.scratch(f"{layer.kernel_size}x{layer.kernel_size} im2col row",
                                 n_taps * channels + 1)
        tap_values = self.cols[:, :-1].reshape(batch, n_taps, channels)   # a view
        # A causal mask keeps whole kernel rows above the centre and the left
        # part of the centre row: in every kernel row the kept taps are side
        # by side (d pixels apart when dilated), so one slice of the ring,
        # with a step of d, gathers them.
        self.kernel_rows = []           # (window row, first col, end col, step, where its taps go in cols)
        for r in np.unique(taps[:, 0]):
            in_row = np.flatnonzero(taps[:, 0] == r)
            c = taps[in_row, 1]
            if not np.array_equal(c, np.arange(c[0], c[-1] + 1, step)):
                raise ValueError(f"{self.sampler}: the kept taps of window row {r} are not "
                                 f"evenly spaced {step} apart ({c.tolist()}); expected a causal mask")
            self.kernel_rows.append((int(r), int(c[0]), int(c[-1]) + 1, step,
                                     tap_values[:, in_row[0]:in_row[-1] + 1]))
        self.weights = weights_and_bias(layer)                           # (T*C_in + 1, C_out)
        self.y = rows.get("conv", layer.out_channels + 1)
        self.inputs = [self.input]

    def input_at(self, i, j):
        """The (B, C_in) slot where the layer's input at pixel (i, j) is stored."""
        return self.input[i % (self.pad + 1), j]

    def store_pixel(self, i, j, values):
        """Store the image's values (B, C_in) at (i, j): the input of a first layer, a pixel's
        C_in sub-pixels (1 grey, 3 colour)."""
        self.input_at(i, j)[...] = values

    def at(self, x, i, j):
        self.input_at(i, j)[...] = x[:, :-1]
        return self.compute(i, j)

    def compute(self, i, j):
        """The output at (i, j), (B, C_out + 1), from the inputs stored so far."""
        for r, first, end, step, taps in self.kernel_rows:
            row = i + r - self.pad                  # the image row this window row reads
            if row < 0:
                taps[...] = 0                       # above the image: the convolution's zero padding
            else:
                # Ring columns j + first .. j + end, every step-th (padded coordinates),
                # (taps, B, C) -> (B, taps, C): each image's taps side by side.
                taps[...] = self.ring[row % (self.pad + 1), j + first:j + end:step].transpose(1, 0, 2)
        np.matmul(self.cols, self.weights, out=self.y[:, :-1])
        return self.y

    def full(self, x, upto):
        """Store x (B, rows, W, C_in), the input on whole rows, at the raster
        positions before ``upto`` that later pixels can still read; run the layer."""
        row, col = divmod(upto, self.input.shape[1])
        for r in range(max(0, row - self.pad), row):          # at most pad whole rows
            self.input[r % (self.pad + 1)] = x[:, r].transpose(1, 0, 2)
        if col:
            self.input[row % (self.pad + 1), :col] = x[:, row, :col].transpose(1, 0, 2)
        return self.layer.forward(x)


class SequenceAt(FastStep, layer=Sequential):
    """The children of a :class:`Sequential`, one after another."""

    def __init__(self, layer, shape, rows):
        super().__init__(layer, shape, rows)
        self.children = [FastStep.for_layer(child, shape, self.child_rows(rows, k))
                         for k, (_, child) in enumerate(layer.named_children())]
        allow_in_place(self.children)

    def child_rows(self, rows, k):
        return rows.at((k,))

    def at(self, x, i, j):
        for step in self.children:
            x = step.at(x, i, j)
        return x

    def full(self, x, upto):
        for step in self.children:
            x = step.full(x, upto)
        return x


class ResidualAt(SequenceAt, layer=Residual):
    """x + branch(x), the branch being the children of a :class:`Residual`."""

    def __init__(self, layer, shape, rows):
        super().__init__(layer, shape, rows)
        self.y = None                   # made at the first call unless in place

    def child_rows(self, rows, k):
        return rows.in_branch((k,))

    def at(self, x, i, j):
        branch = super().at(x, i, j)
        if self.in_place:
            y = x
        else:
            if self.y is None:
                self.y = np.ones_like(x)
            y = self.y
        np.add(x[:, :-1], branch[:, :-1], out=y[:, :-1])
        return y

    def full(self, x, upto):
        return x + super().full(x, upto)


def allow_in_place(steps):
    """Let a ReLU or a residual step that follows another step of ``steps``
    overwrite its input: that row is the previous step's own, and only this
    step reads it (an empty sequence owns no row: it passes its input on).
    The first step of a residual branch must not: the skip reads its input again."""
    for before, step in zip(steps, steps[1:]):
        if isinstance(step, (ReLUAt, ResidualAt)) and not (isinstance(before, SequenceAt)
                                                             and not before.children):
            step.in_place = True


def weights_and_bias(layer):
    """A convolution's kept weights with its bias as the last row: (K + 1, C_out).

    K = T * C_in for a masked layer (its kept taps, as im2col orders them),
    C_in for a 1x1 layer.
    """
    return np.concatenate([layer.kept_weights(), layer.params["b"][None, :]])


def _relu(x, out):
    """max(x, 0) into ``out``; a trailing 1 stays 1. Against an array of zeros, not
    the scalar 0: NumPy turns a Python scalar into an array of the right dtype at
    every call, which on rows this small costs more than the maximum itself (the
    ``_relu`` line of ``python benchmarks/bench_sampling.py --profile``)."""
    zeros = _ZEROS.get((x.shape, x.dtype))
    if zeros is None:
        zeros = _ZEROS[x.shape, x.dtype] = np.zeros(x.shape, x.dtype)
        zeros.flags.writeable = False
    return np.maximum(x, zeros, out=out)


_ZEROS = {}     # (shape, dtype) -> read-only zeros, made once per shape


