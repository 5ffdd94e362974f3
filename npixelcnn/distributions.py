"""Output distributions: what a model's last layer means, and everything that follows from it.

A model of the family ends in a 1x1 convolution with ``output.channels`` channels per pixel.
Those numbers are the parameters of a distribution over the L intensity levels of the pixel,
and the output distribution owns what training, evaluation and sampling do with them:

* ``loss(outputs, targets)``: the mean NLL and its gradient (the training step);
* ``total_nll(outputs, targets)``: the summed NLL (evaluation);
* ``pixel_nll(outputs, targets)``: the NLL of every pixel (scores per image);
* ``log_probs(outputs)``: the normalised log-probability of every level, (..., L);
* ``draw(outputs, temperature, rng)``: one level per row (the samplers).

Two distributions, chosen by a model's ``output`` setting:

* ``"softmax"`` (:class:`SoftmaxOutput`, the default): L logits, a categorical distribution
  (:mod:`npixelcnn.categorical`).
  Every level is its own class: 127 and 128 are as unlike as 0 and 255 until the data says
  otherwise.
* ``"logistic-mixture"`` (:class:`LogisticMixtureOutput`): PixelCNN++'s discretized mixture of
  K logistics (Salimans et al., 2017), 3K numbers per pixel whatever L is. Neighbouring levels
  get similar probabilities by construction. The maths is in :mod:`npixelcnn.logistic_mixture`.

Every sampling method calls the same ``draw`` of the model's output, so they make the same
draws whatever the output.
"""

from .categorical import draw, log_softmax
from .logistic_mixture import (check_mixture, mixture_draw, mixture_log_probs, mixture_loss, mixture_nll,
                               mixture_total_nll, params_per_pixel)
from .losses import pixel_nll, softmax_cross_entropy, total_nll
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

    def log_probs(self, outputs):
        """outputs (..., L) logits -> log softmax (..., L): z - logsumexp(z), in their dtype."""
        return log_softmax(outputs)

    def draw(self, outputs, temperature, rng):
        """outputs (B, L) logits -> (B,) uint8 levels, from softmax(logits / temperature)."""
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

    def log_probs(self, outputs):
        """outputs (..., 3K) -> (..., L): the log-probability of every level's bin."""
        return mixture_log_probs(outputs, self.levels)

    def draw(self, outputs, temperature, rng):
        """outputs (B, 3K) -> (B,) uint8 levels: a component, then a value from its logistic
        (:func:`~npixelcnn.logistic_mixture.mixture_draw`); ``temperature`` divides the mixture
        logits and multiplies the scales."""
        return mixture_draw(outputs, self.levels, temperature, rng)


# The output distributions by the name a model's ``output`` setting gives.
OUTPUTS = {"softmax": SoftmaxOutput, "logistic-mixture": LogisticMixtureOutput}

# K when a mixture is asked for without it (docs/results.md has the sweep that chose it).
DEFAULT_COMPONENTS = 5


def output_distribution(output, levels, components=None):
    """The output distribution a model's settings name.

    Args:
        output: "softmax" or "logistic-mixture".
        levels: L, 2 to 256.
        components: K for "logistic-mixture" (an int >= 1; None: :data:`DEFAULT_COMPONENTS`);
            must be None for "softmax".
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output distribution {output!r}; expected one of {sorted(OUTPUTS)}")
    if output == "softmax":
        if components is not None:
            raise ValueError(f"components is the number of logistics of output='logistic-mixture'; "
                             f"the softmax output has none (got components={components!r})")
        return SoftmaxOutput(levels)
    return LogisticMixtureOutput(levels, DEFAULT_COMPONENTS if components is None else components)
