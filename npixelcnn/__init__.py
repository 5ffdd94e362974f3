"""npixelcnn: PixelCNN from scratch in vectorized NumPy.

The public API:

* layers: :class:`MaskedConv2D`, :class:`Conv2D`, :class:`ReLU`, :class:`ResidualBlock`
* the model: :class:`PixelCNN`
* the loss: :func:`softmax_cross_entropy`, :func:`nats_to_bits`, :func:`nats_per_image`
* optimizers: :class:`Adam`, :class:`SGD`, :func:`clip_by_global_norm`
* masks: :func:`causal_mask`, :func:`kept_taps`
* gradient checks: :mod:`npixelcnn.gradcheck`
"""

from . import gradcheck
from .blocks import ResidualBlock, Sequential
from .im2col import col2im, im2col
from .layers import Conv2D, Layer, MaskedConv2D, Module, ReLU
from .losses import nats_per_image, nats_to_bits, softmax_cross_entropy
from .masks import causal_mask, kept_taps
from .model import PixelCNN
from .optim import SGD, Adam, clip_by_global_norm, global_norm

__version__ = "0.1.0"

__all__ = [
    "Adam", "Conv2D", "Layer", "MaskedConv2D", "Module", "PixelCNN", "ReLU",
    "ResidualBlock", "SGD", "Sequential", "causal_mask", "clip_by_global_norm",
    "col2im", "global_norm", "gradcheck", "im2col", "kept_taps", "nats_per_image",
    "nats_to_bits", "softmax_cross_entropy",
]
