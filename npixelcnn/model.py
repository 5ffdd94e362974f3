"""PixelCNN (van den Oord, Kalchbrenner and Kavukcuoglu, 2016).

The model predicts, for every pixel, a categorical distribution over its
intensity levels, given only the pixels before it in raster order:

    log p(x) = sum_i log p(x_i | x_1, ..., x_{i-1})

All conditionals are computed in one forward pass because every convolution
is causally masked (see :mod:`npixelcnn.masks`).
"""

import numpy as np

from .autoregressive import AutoregressiveModel, Preset
from .blocks import ResidualBlock, ordered_conv
from .layers import ReLU
from .validation import check_dilations, check_levels, check_positive_int


class PixelCNN(AutoregressiveModel, arch="pixelcnn"):
    """7x7 mask-A conv -> residual blocks -> ReLU, 1x1, ReLU, 1x1, 1x1 -> logits.

    The defaults are the seed tutorial's architecture: 15 residual blocks of
    width h = 64 (128 channels in the residual stream), a 128-wide head and 4
    intensity levels.

    Args:
        levels: number of intensity levels of a pixel, 2 to 256.
        hidden: h, the residual blocks' bottleneck width; the stream has 2h channels.
        blocks: number of residual blocks.
        head: width of the two 1x1 layers of the output head.
        output: the output distribution, "softmax" (L logits per pixel) or "logistic-mixture"
            (PixelCNN++'s discretized mixture: 3 * components numbers per pixel); see
            :mod:`npixelcnn.distributions`.
        components: K, the logistics of the mixture; only with output="logistic-mixture".
        dilations: None (the seed's model), or one int d >= 1 per residual block: the
            dilation of the block's 3x3 mask-B convolution (:class:`ResidualBlock`), so
            that the receptive field grows by d rows per block instead of one.
        in_channels: C, the channels of an image: 1 (grey, the default) or 3 (colour, R, G, B).
        channel_order: for colour, "ordered" (the default: sub-pixel G reads R at its own
            pixel, B reads R and G) or "independent" (neither: the channels are independent
            given the earlier pixels). Every layer's channels are split into C groups, one per
            sub-pixel (:mod:`npixelcnn.masks`), and the output layer's group c holds sub-pixel
            c's output.channels numbers.
        channel_coefficients: False (the default), or True for PixelCNN++'s channel coefficients
            with output="logistic-mixture" in colour (channel_order "ordered"): the means of G
            move linearly with R's value at the pixel, B's with R's and G's, by coefficients
            the model gives (3K + 2K numbers per sub-pixel; :mod:`npixelcnn.mixture_channels`).
            Off unless asked for, so that a config or checkpoint that does not name it means
            the model it meant before it existed; recorded in ``config`` only when True.
        seed: int or None; the same seed builds the same weights.

    Initialisation: He-normal weights (std sqrt(2 / fan_in)), the right scale
    for layers followed by a ReLU (He et al., 2015); a masked layer's fan-in
    counts only the taps its mask keeps. Biases start at zero. The last 1x1 of
    every residual branch is scaled by 1/sqrt(blocks), so that adding 15
    branches to the stream does not multiply its variance by 2^15 (measured at
    init on images of uniformly random levels: it grows from 0.7 after the
    first layer to 2.3 after the last block; on MNIST, mostly black, from 0.2
    to 0.8). The output layer is scaled by 0.1 so that the first predictions
    are close to uniform: the initial loss is close to ln(levels) (for the mixture: every
    component near mid-grey with a scale near 1, about the whole range wide).

    Shapes: ``forward`` maps x (N, H, W, 1) float32 in [0, 1], the level image
    divided by (levels - 1), to outputs (N, H, W, output.channels): the logits
    (N, H, W, levels) of the default softmax. In colour, x (N, H, W, 3) -> (N, H, W, 3,
    output.channels).
    """

    # "small" is what two CPU cores train well in minutes (it won an equal-time sweep), "medium"
    # what they train well in two hours, "seed" the seed tutorial's architecture; docs/results.md
    # has the measurements behind them.
    presets = {
        "small": Preset(model=dict(hidden=32, blocks=5, head=64),
                        training=dict(batch_size=16, lr=6e-3, warmup_steps=100)),
        "medium": Preset(model=dict(hidden=32, blocks=10, head=64),
                         training=dict(batch_size=32, lr=3e-3, warmup_steps=200)),
        "seed": Preset(model=dict(hidden=64, blocks=15, head=128),
                       training=dict(batch_size=64, lr=2e-3, warmup_steps=200)),
        # "small" with its blocks' 3x3 convolutions dilated by 1, 2, 4, 8, 1: the same weights
        # and work per step, but the receptive field reaches 19 rows up instead of 8 (the 7x7
        # input layer 3, each block d). On 28x28 images the outputs at the bottom row's middle
        # pixel read 491 of the 770 pixels before it instead of 129 (measured by gradients at
        # random weights). The last 1 mixes neighbours again after the widest block.
        "small-dilated": Preset(model=dict(hidden=32, blocks=5, head=64, dilations=[1, 2, 4, 8, 1]),
                                training=dict(batch_size=16, lr=6e-3, warmup_steps=100)),
    }

    def __init__(self, levels=4, hidden=64, blocks=15, head=128, output="softmax", components=None,
                 dilations=None, in_channels=1, channel_order="ordered", channel_coefficients=False, seed=None):
        super().__init__()
        check_levels(levels)
        check_positive_int(hidden, "hidden")
        check_positive_int(blocks, "blocks", minimum=0)
        check_positive_int(head, "head")
        self.config = {"levels": levels, "hidden": hidden, "blocks": blocks, "head": head,
                       **self.choose_output(levels, output, components, channel_coefficients,
                                            in_channels, channel_order),
                       **self.choose_channels(in_channels, channel_order)}
        if dilations is not None:           # recorded only when given: other configs stay as they were
            dilations = self.config["dilations"] = check_dilations(dilations, blocks, "residual block")
        rng = np.random.default_rng(seed)
        stream = 2 * hidden
        order = {"groups": in_channels, "channel_order": channel_order, "rng": rng}   # one group per sub-pixel
        self.add("input_conv", ordered_conv(in_channels, stream, 7, "A", **order))
        out_gain = 1.0 / np.sqrt(max(blocks, 1))
        for i in range(blocks):
            dilation = 1 if dilations is None else dilations[i]
            self.add(f"blocks.{i}", ResidualBlock(hidden, out_gain=out_gain, dilation=dilation, **order))
        self.add("head_relu1", ReLU())
        self.add("head1", ordered_conv(stream, head, 1, "B", **order))
        self.add("head_relu2", ReLU())
        self.add("head2", ordered_conv(head, head, 1, "B", **order))
        self.add("out", ordered_conv(head, in_channels * self.output.channels, 1, "B", gain=0.1, **order))
