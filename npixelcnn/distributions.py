"""Output distributions: what a model's last layer means, and everything that follows from it.

A model of the family ends in a 1x1 convolution with ``output.channels`` channels per pixel.
Those numbers are the parameters of a distribution over the L intensity levels of the pixel,
and the output distribution owns what training, evaluation and sampling do with them:

* ``loss(outputs, targets)``: the mean NLL and its gradient (the training step);
* ``total_nll(outputs, targets)``: the summed NLL (evaluation);
* ``pixel_nll(outputs, targets)``: the NLL of every pixel (scores per image);
* ``log_probs(outputs, images=None)``: the normalised log-probability of every level, (..., L);
* ``draw(outputs, temperature, rng, earlier=None)``: one level per row (the samplers).

``images`` (..., C), the levels the outputs were computed from, and ``earlier`` (B, c), the levels
of the sub-pixels before sub-pixel c at the pixel being drawn, are read only by an output whose
distribution of sub-pixel c depends on them directly (:class:`ChannelMixtureOutput`); the others
accept and ignore them, so that callers pass them whatever the output.

Two distributions, chosen by a model's ``output`` setting:

* ``"softmax"`` (:class:`SoftmaxOutput`, the default): L logits, a categorical distribution
  (:mod:`npixelcnn.categorical`).
  Every level is its own class: 127 and 128 are as unlike as 0 and 255 until the data says
  otherwise.
* ``"logistic-mixture"`` (:class:`LogisticMixtureOutput`): PixelCNN++'s discretized mixture of
  K logistics (Salimans et al., 2017), 3K numbers per pixel whatever L is. Neighbouring levels
  get similar probabilities by construction. The maths is in :mod:`npixelcnn.logistic_mixture`.
  A colour model may add PixelCNN++'s channel coefficients (``channel_coefficients=True``,
  :class:`ChannelMixtureOutput`, :mod:`npixelcnn.mixture_channels`): the means of G and B move
  linearly with the values of R (and G) at their pixel.

Every sampling method calls the same ``draw`` of the model's output, so they make the same
draws whatever the output.
"""

import numpy as np

from .categorical import draw, log_softmax
from .logistic_mixture import (check_mixture, mixture_draw, mixture_log_probs, mixture_loss, mixture_nll,
                               mixture_total_nll, params_per_pixel)
from .losses import pixel_nll, softmax_cross_entropy, total_nll
from .mixture_channels import (channel_draw, channel_log_probs, channel_loss, channel_nll,
                               channel_params_per_sub_pixel)
from .validation import check_levels


class SoftmaxOutput:
    """A categorical distribution over the L levels: ``outputs`` (..., L) are its logits."""

    name = "softmax"

    def __init__(self, levels):
        check_levels(levels)
        self.levels = levels
        self.channels = levels           # one logit per level

    def settings(self):
        """The model settings that rebuild this output (none beyond ``output``, the default)."""
        return {}

    def loss(self, outputs, targets):
        """outputs (..., L), targets (...) levels -> (mean NLL in nats, doutputs (..., L))."""
        return softmax_cross_entropy(outputs, targets)

    def total_nll(self, outputs, targets):
        """outputs (..., L), targets (...) -> the summed NLL in nats (a float)."""
        return total_nll(outputs, targets)

    def pixel_nll(self, outputs, targets):
        """outputs (..., L), targets (...) -> (...) float64, the NLL in nats of every pixel."""
        return pixel_nll(outputs, targets)

    def log_probs(self, outputs, images=None):
        """outputs (..., L) logits -> log softmax (..., L): z - logsumexp(z), in their dtype.
        (``images`` is not needed: the logits say everything.)"""
        return log_softmax(outputs)

    def draw(self, outputs, temperature, rng, earlier=None):
        """outputs (B, L) logits -> (B,) uint8 levels, from softmax(logits / temperature).
        (``earlier`` is not needed.)"""
        return draw(outputs, temperature, rng)


class LogisticMixtureOutput:
    """PixelCNN++'s discretized logistic mixture: ``outputs`` (..., 3K) are, per pixel,
    K mixture logits, K means and K log-scales (see :mod:`npixelcnn.logistic_mixture`)."""

    name = "logistic-mixture"

    def __init__(self, levels, components):
        check_mixture(levels, components)
        self.levels, self.components = levels, components
        self.channels = params_per_pixel(components)

    def settings(self):
        """The model settings that rebuild this output besides ``output``."""
        return {"components": self.components}

    def loss(self, outputs, targets):
        """outputs (..., 3K), targets (...) levels -> (mean NLL in nats, doutputs (..., 3K))."""
        return mixture_loss(outputs, targets, self.levels)

    def total_nll(self, outputs, targets):
        """outputs (..., 3K), targets (...) -> the summed NLL in nats (a float)."""
        return mixture_total_nll(outputs, targets, self.levels)

    def pixel_nll(self, outputs, targets):
        """outputs (..., 3K), targets (...) -> (...) float64, the NLL in nats of every pixel."""
        return mixture_nll(outputs, targets, self.levels)

    def log_probs(self, outputs, images=None):
        """outputs (..., 3K) -> (..., L): the log-probability of every level's bin.
        (``images`` is not needed.)"""
        return mixture_log_probs(outputs, self.levels)

    def draw(self, outputs, temperature, rng, earlier=None):
        """outputs (B, 3K) -> (B,) uint8 levels: a component, then a value from its logistic
        (:func:`~npixelcnn.logistic_mixture.mixture_draw`); ``temperature`` divides the mixture
        logits and multiplies the scales. (``earlier`` is not needed.)"""
        return mixture_draw(outputs, self.levels, temperature, rng)


class ChannelMixtureOutput:
    """The logistic mixture of every sub-pixel of a colour image, with PixelCNN++'s channel
    coefficients: ``outputs`` (..., C, P), P = 3K + (C-1)K per sub-pixel, [logits | means |
    log-scales | coefficients], and sub-pixel c's means move by sum_{j<c} tanh(r_j) x_j
    (:mod:`npixelcnn.mixture_channels`). Scoring or drawing sub-pixel c needs the levels of the
    sub-pixels before it at its pixel: the targets, ``images``, or ``earlier``."""

    name = "logistic-mixture"

    def __init__(self, levels, components, in_channels):
        check_mixture(levels, components)
        if isinstance(in_channels, bool) or not isinstance(in_channels, (int, np.integer)) or in_channels < 2:
            raise ValueError(f"channel coefficients link the sub-pixels of a colour pixel: in_channels "
                             f"must be an int >= 2, got {in_channels!r}")
        self.levels, self.components, self.in_channels = levels, components, in_channels
        self.channels = channel_params_per_sub_pixel(components, in_channels)

    def settings(self):
        """The model settings that rebuild this output besides ``output`` (and ``in_channels``)."""
        return {"components": self.components, "channel_coefficients": True}

    def loss(self, outputs, targets):
        """outputs (..., C, P), targets (..., C) levels -> (mean NLL in nats, doutputs (..., C, P))."""
        return channel_loss(outputs, targets, self.levels, self.components)

    def total_nll(self, outputs, targets):
        """outputs (..., C, P), targets (..., C) -> the summed NLL in nats (a float)."""
        return float(self.pixel_nll(outputs, targets).sum())

    def pixel_nll(self, outputs, targets):
        """outputs (..., C, P), targets (..., C) -> (..., C) float64, the NLL of every sub-pixel."""
        return channel_nll(outputs, targets, self.levels, self.components)

    def log_probs(self, outputs, images=None):
        """outputs (..., C, P), images (..., C) levels -> (..., C, L): the log-probability of
        every level of sub-pixel c given the levels images[..., :c] before it at its pixel."""
        if images is None:
            raise ValueError("log_probs of a mixture with channel coefficients needs images (..., C), the "
                             "levels the outputs were computed from: sub-pixel c's means depend on the "
                             "sub-pixels before it (model.log_probs passes them)")
        return channel_log_probs(outputs, images, self.levels, self.components)

    def draw(self, outputs, temperature, rng, earlier=None):
        """outputs (B, P) of sub-pixel c, earlier (B, c) levels of the sub-pixels before it at the
        pixel -> (B,) uint8 levels, from the mixture with its means shifted by them."""
        if earlier is None:
            raise ValueError("draw from a mixture with channel coefficients needs earlier (B, c), the "
                             "levels of the sub-pixels before c at the pixel (an empty (B, 0) for R)")
        return channel_draw(outputs, earlier, self.levels, self.components, temperature, rng)


# The output distributions by the name a model's ``output`` setting gives.
OUTPUTS = {"softmax": SoftmaxOutput, "logistic-mixture": LogisticMixtureOutput}

# K when a mixture is asked for without it (docs/results.md has the sweep that chose it).
DEFAULT_COMPONENTS = 5


def output_distribution(output, levels, components=None, channel_coefficients=False, in_channels=1):
    """The output distribution a model's settings name.

    Args:
        output: "softmax" or "logistic-mixture".
        levels: L, 2 to 256.
        components: K for "logistic-mixture" (an int >= 1; None: :data:`DEFAULT_COMPONENTS`);
            must be None for "softmax".
        channel_coefficients: True for PixelCNN++'s channel coefficients
            (:class:`ChannelMixtureOutput`): only with "logistic-mixture" and in_channels >= 2.
        in_channels: C, the sub-pixels of a pixel (read only with channel_coefficients).
    """
    if not isinstance(channel_coefficients, bool):
        raise TypeError(f"channel_coefficients must be True or False, got {channel_coefficients!r}")
    if output not in OUTPUTS:
        raise ValueError(f"unknown output distribution {output!r}; expected one of {sorted(OUTPUTS)}")
    if output == "softmax":
        if components is not None:
            raise ValueError(f"components is the number of logistics of output='logistic-mixture'; "
                             f"the softmax output has none (got components={components!r})")
        if channel_coefficients:
            raise ValueError("channel_coefficients shift the means of output='logistic-mixture'; "
                             "the softmax output has none")
        return SoftmaxOutput(levels)
    components = DEFAULT_COMPONENTS if components is None else components
    if channel_coefficients:
        return ChannelMixtureOutput(levels, components, in_channels)
    return LogisticMixtureOutput(levels, components)
