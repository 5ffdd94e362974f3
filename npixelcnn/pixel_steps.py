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

In colour (G = 3 groups of channels, R, G, B: :mod:`npixelcnn.masks`) a pixel is
computed in G rounds, one per sub-pixel: ``at(x, i, j, g)`` computes only the
output columns of group g, from its input's groups <= g at (i, j) (those < g
stored in earlier rounds, final) and every channel of earlier pixels, so a
pixel costs the multiply-adds of a grey one. A step that reads its own pixel
keeps its input there across the rounds (a 1x1 a row of its own, a causal
convolution its ring); the rows passed on hold, at round g, only group g's
columns new. In colour a step's gathered row starts with the 1 of the bias
(grey: ends with it) and ends with the centre tap, so what group g reads is a
prefix of it: the bias, the earlier pixels' taps, the centre's first channels,
up to its input's group g (:mod:`npixelcnn.sub_pixel_rounds`). Grey is the
case of one group and one round (g = 0, not passed): every column, as before.

Why each of these helps shows in the cached sampler's profile,
``python benchmarks/bench_sampling.py --profile``: a step is a few small NumPy
calls per layer, so every call and every fresh allocation saved counts.
"""

import numpy as np

from .blocks import Residual, Sequential
from .layers import Conv2D, ReLU
from .steps import FastStep, check_causal_taps
from .sub_pixel_rounds import group_slices, grouped_weights, sub_pixel_order_error


class Rows:
    """The rows (B, width) the steps write into, made once, starting as ones
    (where the last column is the bias input, nothing ever writes over that 1).

    Rows inside a residual step are shared: everything a residual branch
    computes is used up before the step returns, so the blocks of a model,
    which have the same structure, can write the same rows. ``key`` is the
    position of a step inside the nearest enclosing residual branch (None
    outside any: own rows). Sharing keeps a pixel's work in a few hundred KB
    that stay in the CPU's cache (for the seed architecture, 215 KB instead
    of 3.2 MB for rows of its own per step). In colour a shared row holds
    only the current round's group until the next step has read it: what a
    step reads of earlier rounds it keeps in memory of its own.

    ``groups``: G, the sub-pixels of the model's pixels (1 grey, 3 colour): the rounds of a pixel.
    """

    def __init__(self, batch, dtype, key=None, shared=None, groups=1):
        self.batch, self.dtype, self.key, self.groups = batch, dtype, key, groups
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
        return Rows(self.batch, self.dtype, ("scratch",), self.shared, self.groups).get(role, width)

    def at(self, position):
        """The rows for a child at ``position`` (a tuple): shared if this one is."""
        return Rows(self.batch, self.dtype, None if self.key is None else self.key + position, self.shared,
                    self.groups)

    def in_branch(self, position):
        """The rows for a child of a residual branch: shared by position from here down."""
        key = position if self.key is None else self.key + position
        return Rows(self.batch, self.dtype, key, self.shared, self.groups)


class ReLUAt(FastStep, layer=ReLU):
    """max(x, 0) at one pixel (the trailing 1 stays 1); in colour, group g's columns at round g."""

    def __init__(self, layer, shape, rows):
        super().__init__(layer, shape, rows)
        self.rows = rows
        self.y = self.columns = None    # made at the first call, when the width is known

    def at(self, x, i, j, g=0):
        y = x if self.in_place else self._row(x)
        if self.rows.groups == 1:
            return _relu(x, out=y)
        if self.columns is None:
            self.columns = group_slices(x.shape[1] - 1, self.rows.groups)
        columns = self.columns[g]                   # colour: round g's group only
        _relu(x[:, columns], out=y[:, columns])
        return y

    def _row(self, x):
        if self.y is None:
            self.y = self.rows.get("relu", x.shape[1])
        return self.y


class ConvAt(FastStep, layer=Conv2D):
    """A convolution at one pixel: a 1x1 that keeps its one tap reads only its own
    pixel (:class:`PointwiseConvAt`); any other must be causal (:class:`CausalConvAt`)."""

    @classmethod
    def make(cls, layer, shape, rows):
        pointwise = layer.kernel_size == 1 and len(layer.taps) == 1
        return (PointwiseConvAt if pointwise else CausalConvAt)(layer, shape, rows)


class PointwiseConvAt(ConvAt):
    """A 1x1 convolution at one pixel: [x, 1] @ [[W], [b]].

    In colour, round g: output group g from the input's groups <= g at the pixel,
    which the step keeps in a row of its own, [1, x] (the bias input first), filled
    one group per round: ``[1, x[:, :hi]] @ [[b], [W[:hi]]]`` for group g's columns.
    """

    def __init__(self, layer, shape, rows):
        super().__init__(layer, shape, rows)
        self.weights = weights_and_bias(layer)                      # (C_in + 1, C_out)
        self.y = rows.get("1x1", layer.out_channels + 1)
        self.order_error = sub_pixel_order_error(layer, rows.groups, self.sampler)
        self.rounds = None                                          # grey: one round, the whole row
        if rows.groups > 1 and self.order_error is None:
            kept = np.ones((rows.batch, 1 + layer.in_channels), rows.dtype)     # [1, x at this pixel]
            self.rounds = [(new, kept[:, 1 + new.start:1 + new.stop], kept[:, :prefix], weights, self.y[:, out])
                           for new, out, prefix, weights in grouped_weights(layer, rows.groups)]
            self.inputs = [kept[:, 1:]]

    def at(self, x, i, j, g=0):
        if self.rounds is None:
            np.matmul(x, self.weights, out=self.y[:, :-1])
            return self.y
        new, kept_new, kept_read, weights, out = self.rounds[g]
        kept_new[...] = x[:, new]                   # the input's group g at this pixel, kept
        np.matmul(kept_read, weights, out=out)      # group g's columns, from the groups <= g
        return self.y


class CausalConvAt(ConvAt):
    """A k x k convolution over causal taps at one output pixel: its input's
    last rows in a ring, the kept taps of each kernel row, and the kept
    weights (with the bias row).

    In colour, round g computes output group g: at round 0 it gathers every tap
    (the centre's groups > 0 are not read yet); at a later round it copies only
    the centre again, the input at (i, j) with one more group stored, and reads
    the prefix of its gathered row that group g's weights need."""

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
        self.order_error = sub_pixel_order_error(layer, rows.groups, self.sampler)
        # The window at (i, j) reaches rows i - pad .. i: only the last pad + 1
        # input rows are ever read again. They are kept in a ring, image row r
        # in slot r % (pad + 1), zero-padded by pad columns on either side
        # (those are never written, so they stay zero).
        self.ring = np.zeros((self.pad + 1, width + 2 * self.pad, batch, channels), dtype)
        self.input = self.ring[:, self.pad:self.pad + width]              # (pad + 1, W, B, C_in)
        # im2col's row for one pixel and all B images, (B, T*C_in + 1), taps
        # in raster order (the centre, if kept, last) and channels inside each tap,
        # as in the full layer, and the 1 that multiplies the bias row. Grey: [taps, 1],
        # a scratch row, used up at once. Colour: [1, taps], the step's own, which keeps
        # the taps of earlier pixels from round 0 to the last; with the 1 first, what
        # round g reads is a prefix (:mod:`npixelcnn.sub_pixel_rounds`).
        size = 1 + n_taps * channels
        grey = rows.groups == 1 or self.order_error is not None
        self.cols = (rows.scratch(f"{layer.kernel_size}x{layer.kernel_size} im2col row", size) if grey
                     else np.ones((batch, size), dtype))
        tap_values = (self.cols[:, :-1] if grey else self.cols[:, 1:]).reshape(batch, n_taps, channels)
        self.centre = tap_values[:, -1] if self.reads_own_pixel else None   # (B, C_in), the last tap
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
        self.y = rows.get("conv", layer.out_channels + 1)
        # Per round: the input columns stored, the prefix of cols read, the weights, the output columns.
        everything = slice(0, channels)
        self.rounds = [(everything, self.cols, weights_and_bias(layer), self.y[:, :-1])] if grey else [
            (new, self.cols[:, :prefix], w, self.y[:, out])
            for new, out, prefix, w in grouped_weights(layer, rows.groups)]
        self.inputs = [self.input]

    def input_at(self, i, j):
        """The (B, C_in) slot where the layer's input at pixel (i, j) is stored."""
        return self.input[i % (self.pad + 1), j]

    def store_pixel(self, i, j, values):
        """Store the image's values (B, C_in) at (i, j): the input of a first layer, a pixel's
        C_in sub-pixels (1 grey, 3 colour)."""
        self.input_at(i, j)[...] = values

    def at(self, x, i, j, g=0):
        new = self.rounds[g][0]
        self.input_at(i, j)[:, new] = x[:, new]    # round g's group (grey: all) of the input at (i, j)
        return self.compute(i, j, g)

    def compute(self, i, j, g=0):
        """Output group g at (i, j) (grey: the output), (B, C_out + 1), from the inputs stored so far."""
        if g == 0:
            for r, first, end, step, taps in self.kernel_rows:
                row = i + r - self.pad                  # the image row this window row reads
                if row < 0:
                    taps[...] = 0                       # above the image: the convolution's zero padding
                else:
                    # Ring columns j + first .. j + end, every step-th (padded coordinates),
                    # (taps, B, C) -> (B, taps, C): each image's taps side by side.
                    taps[...] = self.ring[row % (self.pad + 1), j + first:j + end:step].transpose(1, 0, 2)
        elif self.centre is not None:
            self.centre[...] = self.input_at(i, j)      # one more group of (i, j) stored since round 0
        _, read, weights, out = self.rounds[g]
        np.matmul(read, weights, out=out)
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

    def at(self, x, i, j, g=None):
        if g is None:                               # grey: the children are not told the round
            for step in self.children:
                x = step.at(x, i, j)
        else:
            for step in self.children:
                x = step.at(x, i, j, g)
        return x

    def full(self, x, upto):
        for step in self.children:
            x = step.full(x, upto)
        return x


class ResidualAt(SequenceAt, layer=Residual):
    """x + branch(x), the branch being the children of a :class:`Residual` (in colour,
    group g's columns at round g)."""

    def __init__(self, layer, shape, rows):
        super().__init__(layer, shape, rows)
        self.groups = rows.groups
        self.y = self.columns = None    # made at the first call, when the width is known

    def child_rows(self, rows, k):
        return rows.in_branch((k,))

    def at(self, x, i, j, g=None):
        branch = super().at(x, i, j, g)
        if self.columns is None:
            width = x.shape[1] - 1
            self.columns = [slice(0, width)] if self.groups == 1 else group_slices(width, self.groups)
        if self.in_place:
            y = x
        else:
            if self.y is None:
                self.y = np.ones_like(x)
            y = self.y
        columns = self.columns[g or 0]
        np.add(x[:, columns], branch[:, columns], out=y[:, columns])
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


