"""Containers of layers (a sequence, a residual connection), and the residual block of PixelCNN
(van den Oord et al., 2016, figure 5)."""

from . import ops
from .layers import Conv2D, MaskedConv2D, Module, ReLU, as_rng
from .masks import channel_groups
from .validation import check_positive_int


class Sequential(Module):
    """Children applied one after another; backward walks them in reverse."""

    def forward(self, x):
        """x -> the last child's output; each child's output feeds the next."""
        for _, layer in self._children:
            x = layer.forward(x)
        return x

    def backward(self, dy):
        """dy (shaped like the output) -> dx (shaped like the input), by the chain rule."""
        for _, layer in reversed(self._children):
            dy = layer.backward(dy)
        return dy


class Residual(Sequential):
    """x + branch(x): the children form the branch, and the input skips past them.

    Backward: the skip passes dy through unchanged, the branch adds its part.
    """

    def forward(self, x):
        """x: (N, H, W, C) -> x + branch(x), same shape."""
        return ops.add(x, super().forward(x))

    def backward(self, dy):
        """dy: (N, H, W, C) -> dx = dy + (the branch's backward of dy)."""
        return ops.add(dy, super().backward(dy))


class ResidualBlock(Residual):
    """ReLU -> 1x1 (2h -> h) -> ReLU -> 3x3 mask B (h -> h) -> ReLU -> 1x1 (h -> 2h), plus x.

    The 1x1 convolutions squeeze the 2h channels of the residual stream to h
    before the (more expensive) masked 3x3 convolution and expand them again.
    Mask B is right here: after the first mask-A layer, position p only carries
    information about pixels before p, so it may look at itself.

    Args:
        h: bottleneck width; the block maps (N, H, W, 2h) -> (N, H, W, 2h).
        rng: np.random.Generator (or seed) for the weights.
        out_gain: init gain of the last 1x1. Each block adds its output to the
            residual stream; with gain 1 every block would double the stream's
            variance (2^15 over 15 blocks). PixelCNN passes 1/sqrt(blocks): in
            the seed architecture the variance then grows from 0.7 to 2.3
            (images of random levels; see PixelCNN).
        dilation: d of the 3x3 mask-B convolution: its taps d pixels apart, so the
            block reaches d rows further up and d columns further sideways
            (1: the seed's block).
        groups, channel_order: a colour model's sub-pixels (3: R, G, B) and their order
            (:func:`ordered_conv`); 1, the default, for grey images.

    Parameters: conv1.{W,b}, conv2.{W,b}, conv3.{W,b}.
    """

    def __init__(self, h, rng=None, out_gain=1.0, dilation=1, groups=1, channel_order="ordered"):
        super().__init__()
        check_positive_int(h, "h")
        rng = as_rng(rng)
        self.h, self.dilation = h, dilation
        order = {"groups": groups, "channel_order": channel_order, "rng": rng}
        self.relu1 = self.add("relu1", ReLU())
        self.conv1 = self.add("conv1", ordered_conv(2 * h, h, 1, "B", **order))
        self.relu2 = self.add("relu2", ReLU())
        self.conv2 = self.add("conv2", ordered_conv(h, h, 3, "B", dilation=dilation, **order))
        self.relu3 = self.add("relu3", ReLU())
        self.conv3 = self.add("conv3", ordered_conv(h, 2 * h, 1, "B", gain=out_gain, **order))



def ordered_conv(in_channels, out_channels, kernel_size, mask_type, groups=1, channel_order="ordered", **kwargs):
    """A causal convolution whose channels are split into ``groups`` ordered groups, the
    sub-pixels of a colour image (R, G, B: groups=3; see :mod:`npixelcnn.masks`).

    One group (grey) gives the grey models' layers: a 1x1 mask-B convolution reads only its
    own pixel, which every layer after the first may, so it is a plain :class:`Conv2D`; a
    k x k one a :class:`MaskedConv2D`. With several groups both are a :class:`MaskedConv2D`
    whose centre tap reads the earlier groups (mask A) or the earlier and its own (mask B).
    ``kwargs``: rng, gain, dilation, as for :class:`MaskedConv2D`.
    """
    if groups == 1:
        if kernel_size == 1 and mask_type == "B":
            kwargs.pop("dilation", None)            # a 1x1 reads one pixel whatever d is
            return Conv2D(in_channels, out_channels, 1, **kwargs)
        return MaskedConv2D(in_channels, out_channels, kernel_size, mask_type, **kwargs)
    return MaskedConv2D(in_channels, out_channels, kernel_size, mask_type,
                        in_groups=channel_groups(in_channels, groups),
                        out_groups=channel_groups(out_channels, groups), channel_order=channel_order, **kwargs)
