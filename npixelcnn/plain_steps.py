"""One layer at one pixel, written as the maths: the steps of the plain cached sampler.

Each step computes its layer at pixel (i, j) for the B images of a batch,
x (B, C_in) -> y (B, C_out), and keeps what later pixels will read:

* a convolution (:class:`ConvStep`) keeps its whole input image; at (i, j) it
  gathers its kept taps there (im2col for one pixel) and makes one matrix
  product, plus the bias. A 1x1 convolution reads only its own pixel and keeps
  nothing;
* a ReLU is ``np.maximum(x, 0)``;
* a sequence runs its children's steps one after another, and a residual
  connection adds its input to what they give.

The fast twins of these steps are in :mod:`npixelcnn.pixel_steps`; the Gated
PixelCNN's steps, plain and fast, in :mod:`npixelcnn.gated_steps`.
"""

import numpy as np

from .blocks import Residual, Sequential
from .layers import Conv2D, ReLU
from .steps import PlainStep, check_causal_taps


def padded_image(batch, shape, window, channels, dtype):
    """Zeros (B, H + p, W + 2p, C), p = window // 2: room for a layer's input image with
    the convolution's zero padding, p rows above and p columns on either side (a causal
    window never reaches below its own row, so none below).

    ``window`` is the width of the convolution's window, ``layer.window``: k for a
    k x k kernel, (k - 1) * d + 1 for one dilated by d."""
    p = window // 2
    return np.zeros((batch, shape[0] + p, shape[1] + 2 * p, channels), dtype)


def without_padding(padded, window):
    """The image part of a :func:`padded_image`: a view (B, H, W, C)."""
    p = window // 2
    return padded[:, p:, p:padded.shape[2] - p]


def gather_taps(padded, taps, i, j):
    """im2col at output pixel (i, j): the input at the kept taps, side by side.

    Tap (r, c) of a window of width 2p + 1 reads, for output pixel (i, j), the input at
    (i + r - p, j + c - p), which is ``padded[:, i + r, j + c]`` in the padded image.
    (A dilated kernel's taps are given where they read in its window: ``layer.window_taps``.)

    Args:
        padded: (B, H + p, W + 2p, C), a :func:`padded_image`.
        taps: (T, 2) positions (row, col) in the window, in the order of the weight rows.
        i: the output row.
        j: the output column, or an array of columns (W,) for a whole row at once.

    Returns:
        (B, T*C) for one pixel, (B, W, T*C) for a row: taps in order, channels inside each.
    """
    rows = i + taps[:, 0]                               # (T,)
    cols = np.asarray(j)[..., None] + taps[:, 1]        # (T,), or (W, T) for a row
    values = padded[:, rows, cols]                      # (B, T, C), or (B, W, T, C)
    return values.reshape(values.shape[:-2] + (-1,))


class ConvStep(PlainStep, layer=Conv2D):
    """A convolution at (i, j): its kept taps times its kept weights, plus the bias.

    What it remembers: its whole input image, zero-padded, written pixel by pixel
    as the inputs arrive. Then the taps of pixel (i, j) sit where im2col finds them,
    with no ring to wrap around. (A causal window of width 2p + 1 only ever reads its
    last p + 1 input rows, and the fast step keeps just those, to save memory; here
    code that reads as the maths matters more.) A 1x1 convolution keeps nothing.
    A dilated convolution is no different: its taps are read where they sit in its
    window (``layer.window_taps``, ``layer.window``).
    """

    def __init__(self, layer, shape, batch, dtype):
        super().__init__(layer, shape, batch, dtype)
        self.reads_own_pixel = check_causal_taps(layer, self.sampler)   # mask B: yes; mask A: no
        self.p, self.taps = layer.window // 2, layer.window_taps
        self.weights = layer.kept_weights()                         # (T*C_in, C_out)
        self.bias = layer.params["b"].copy()                        # (C_out,)
        self.image = None                                           # a 1x1 convolution keeps nothing
        if self.taps.tolist() != [[self.p, self.p]]:                # it reads other pixels than its own
            self.image = padded_image(batch, shape, layer.window, layer.in_channels, dtype)
            self.inputs = [without_padding(self.image, layer.window)]

    def at(self, x, i, j):
        """x (B, C_in), the input at (i, j) -> the output there (B, C_out)."""
        if self.image is None:
            return x @ self.weights + self.bias
        self.image[:, i + self.p, j + self.p] = x
        return self.compute(i, j)

    def store_pixel(self, i, j, values):
        """A first layer: the image's values (B, C_in) at (i, j), its C_in sub-pixels."""
        self.image[:, i + self.p, j + self.p] = values

    def compute(self, i, j):
        """The output at (i, j), (B, C_out), from the input stored so far."""
        return gather_taps(self.image, self.taps, i, j) @ self.weights + self.bias


class ReLUStep(PlainStep, layer=ReLU):
    """max(x, 0) at one pixel."""

    def at(self, x, i, j):
        return np.maximum(x, 0)


class SequenceStep(PlainStep, layer=Sequential):
    """The children of a :class:`Sequential`, one after another."""

    def __init__(self, layer, shape, batch, dtype):
        super().__init__(layer, shape, batch, dtype)
        self.children = [PlainStep.for_layer(child, shape, batch, dtype)
                         for _, child in layer.named_children()]

    def at(self, x, i, j):
        for step in self.children:
            x = step.at(x, i, j)
        return x


class ResidualStep(SequenceStep, layer=Residual):
    """x + branch(x), the branch being the children of a :class:`Residual`."""

    def at(self, x, i, j):
        return x + super().at(x, i, j)
