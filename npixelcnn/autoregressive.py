"""What every model of the PixelCNN family promises, and the table of architectures.

Training, evaluation, checkpoints, both samplers and the CLI never look inside
a model. They rely on this contract only:

* ``model.levels``: L, the number of intensity levels of a pixel;
* ``model.output``: the output distribution (:mod:`npixelcnn.distributions`), which turns
  the model's outputs into a loss and its gradient, an NLL, log-probabilities and draws;
* ``model.in_channels``: C, the channels of an input image: 1 for grey MNIST, 3 for colour,
  whose sub-pixels are generated in the order R, G, B (:mod:`npixelcnn.masks`);
* ``model.config``: a JSON-able dict such that ``type(model)(**model.config)``
  builds the same architecture (checkpoints store it);
* ``model.arch``: the architecture's name in checkpoints and the CLI
  (``ARCHITECTURES[model.arch]`` is its class);
* ``model.classes``: K for a class-conditional model, p(x | y) with y in [0, K);
  None (the default) for a model of p(x) (:mod:`npixelcnn.conditioning`);
* ``model.forward(x)``: x (N, H, W, in_channels) in [0, 1], the levels divided
  by L - 1 -> outputs (N, H, W, output.channels): the output distribution's
  parameters at every pixel (the logits (N, H, W, L) of the default softmax),
  where the outputs at pixel p depend only on the pixels before p in raster order;
  for colour a channel axis, (N, H, W, C, output.channels), and sub-pixel c's outputs
  depend on the earlier pixels and on the sub-pixels before c of pixel p;
  a conditional model takes the labels too, ``model.forward(x, labels)``, labels (N,);
* ``model.log_probs(x)`` (``model.log_probs(x, labels)``): -> (N, H, W, L)
  ((N, H, W, C, L) in colour), log p(level | everything before) for every level of every
  (sub-)pixel: the output's ``log_probs(outputs, images)``, given the levels of x too, which
  a colour mixture with channel coefficients reads (:mod:`npixelcnn.mixture_channels`);
* ``model.backward(dlogits)``, ``params``, ``grads``, ``train()``, ``eval()``,
  ``astype()``: the layer contract of :mod:`npixelcnn.layers`;
* ``model.pixel_layers()``: the layers in the order the data flows through
  them. The cached samplers step through this list one pixel at a time, by
  each layer's kind, never by its name;
* ``presets`` (a class attribute): named :class:`Preset` s, the model's sizes
  and the training settings measured to suit them, for ``train --preset``;
  the first one is the default.

A new architecture is one module: a subclass of :class:`AutoregressiveModel`
that gives its name, ``class GatedPixelCNN(AutoregressiveModel, arch="gated")``,
and its presets. The rest of the package (training, checkpoints, evaluation,
sampling, the CLI) then takes it without any table being edited.
"""

from dataclasses import dataclass, field

import numpy as np

from .blocks import Sequential
from .conditioning import ClassBias, check_labels
from .distributions import SoftmaxOutput, output_distribution
from .masks import channel_groups, check_channel_order
from .validation import check_activations, check_finite, check_positive_int

# name -> class, filled by every subclass that gives arch="..."; importing the
# package imports every model module (npixelcnn/__init__.py), so all are here.
ARCHITECTURES = {}


@dataclass(frozen=True)
class Preset:
    """A model size and the training settings measured to suit it.

    model: the architecture's own settings, e.g. ``{"hidden": 32, "blocks": 5, "head": 64}``
        (not ``levels``: a run chooses its levels).
    training: settings of :class:`~npixelcnn.config.TrainConfig`, e.g.
        ``{"batch_size": 16, "lr": 6e-3, "warmup_steps": 100}``.
    """

    model: dict
    training: dict = field(default_factory=dict)


class AutoregressiveModel(Sequential):
    """Base class of the models: a sequence of layers from image to outputs.

    Subclasses add their layers in ``__init__`` and set ``levels``, ``output`` and ``config``.
    """

    arch = None         # the name in checkpoints and the CLI
    in_channels = 1     # grey images; colour models set C = 3 (choose_channels)
    channel_order = "ordered"
    levels = None
    classes = None      # K of a class-conditional model; None: no condition
    config = None
    _output = None      # set by choose_output
    presets = {}        # name -> Preset; the first is the default of ``train``
    # Settings that checkpoints of earlier versions saved under another name: {old: new}.
    renamed_settings = {}

    def __init_subclass__(cls, arch=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if arch is not None:
            if arch in ARCHITECTURES:
                raise ValueError(f"two architectures are called {arch!r}: "
                                 f"{ARCHITECTURES[arch].__name__} and {cls.__name__}")
            cls.arch = arch
            ARCHITECTURES[arch] = cls

    def forward(self, x, labels=None):
        """x: (N, H, W, in_channels) in [0, 1] -> outputs (N, H, W, output.channels).

        labels: (N,) ints in [0, classes), the class of each image, for a conditional
        model (``classes`` set) and only for one.
        """
        self.check_input(x)
        self.condition(labels, len(x))
        outputs = super().forward(x)                    # (N, H, W, C * output.channels)
        if self.in_channels == 1:
            return outputs
        # The last layer's channels are C groups, sub-pixel c's parameters in group c.
        return outputs.reshape(outputs.shape[:3] + (self.in_channels, -1))

    def backward(self, doutputs):
        """doutputs, shaped like the outputs -> dx (N, H, W, in_channels)."""
        return super().backward(doutputs.reshape(doutputs.shape[:3] + (-1,)))

    def condition(self, labels, count):
        """Hand the labels (count,) of the next batch to every :class:`ClassBias` layer.

        Raises a clear error for labels given to a model without classes, missing for
        one with classes, of another length than the batch, or out of range.
        """
        labels = check_labels(labels, self.classes, count, type(self).__name__)
        if labels is not None:
            for _, layer in self.named_leaves():
                if isinstance(layer, ClassBias):
                    layer.set_labels(labels)
        return labels

    def choose_output(self, levels, output, components, channel_coefficients=False, in_channels=1,
                      channel_order="ordered"):
        """Set ``levels`` and ``output``, the distribution that the settings ``output`` ("softmax"
        or "logistic-mixture"), ``components`` and ``channel_coefficients`` name; see
        :func:`~npixelcnn.distributions.output_distribution`.

        ``channel_coefficients=True`` (PixelCNN++'s linear dependence of a sub-pixel's means on
        the sub-pixels before it, :mod:`npixelcnn.mixture_channels`) needs a colour model
        (``in_channels`` >= 2) with the mixture output and the "ordered" ``channel_order``: the
        "independent" baseline exists to have no link between a pixel's sub-pixels.

        Returns the settings to record in ``config``: none for the default softmax, so the
        configs (and checkpoints) of models from before the choice existed are unchanged;
        ``channel_coefficients`` only when True, so that those of mixture models are too.
        """
        if channel_coefficients is True and (in_channels == 1 or channel_order != "ordered"):
            raise ValueError(f"{type(self).__name__}: channel_coefficients link the sub-pixels of a colour "
                             f"pixel (G's means move with R, B's with R and G): they need in_channels >= 2 "
                             f"and channel_order='ordered', got in_channels={in_channels!r}, "
                             f"channel_order={channel_order!r}")
        self.levels = levels
        self._output = output_distribution(output, levels, components, channel_coefficients, in_channels)
        return {} if output == "softmax" else {"output": output, **self.output.settings()}

    def choose_channels(self, in_channels, channel_order):
        """Set ``in_channels`` (C) and ``channel_order``: "ordered" (sub-pixel c reads the
        sub-pixels before it at its own pixel) or "independent" (none of them: the baseline
        whose channels are independent given the earlier pixels).

        Returns the settings to record in ``config``: none for grey images, so the configs
        (and checkpoints) of grey models are what they were before colour existed.
        """
        check_positive_int(in_channels, "in_channels")
        check_channel_order(channel_order)
        if in_channels == 1 and channel_order != "ordered":
            raise ValueError(f"{type(self).__name__}: channel_order orders the channels of a colour "
                             f"image; a grey model (in_channels=1) has one, got {channel_order!r}")
        self.in_channels, self.channel_order = in_channels, channel_order
        return {} if in_channels == 1 else {"in_channels": in_channels, "channel_order": channel_order}

    def channel_groups(self, channels):
        """The group (sub-pixel) of each of a layer's ``channels`` channels, an int array
        (channels,), for a colour model; None for a grey one (a single group)."""
        return None if self.in_channels == 1 else channel_groups(channels, self.in_channels)

    @property
    def output(self):
        """The output distribution: the one :meth:`choose_output` set, else the softmax over the levels."""
        return self._output if self._output is not None else SoftmaxOutput(self.levels)

    def log_probs(self, x, labels=None):
        """x: (N, H, W, in_channels) in [0, 1] -> (N, H, W, levels), (N, H, W, C, levels) in
        colour: the log-probability of every level of every (sub-)pixel, given everything
        before it (and the labels (N,) of a conditional model); exp sums to 1 over the levels.
        The output is also given the levels of x, (N, H, W) or (N, H, W, C), which an output
        whose sub-pixel c depends directly on the sub-pixels before it reads."""
        outputs = self.forward(x, labels)
        images = np.rint(x * (self.levels - 1)).astype(np.int64)       # x = level / (L - 1), exactly
        return self.output.log_probs(outputs, images.reshape(outputs.shape[:-1]))

    def pixel_layers(self):
        """The layers from image to outputs, in order (what the cached sampler steps through)."""
        return [layer for _, layer in self.named_children()]

    def check_input(self, x):
        """Raise a clear error unless x is a valid model input."""
        name = type(self).__name__
        check_activations(x, self.in_channels, self.dtype, name)
        check_finite(x, name)
        if x.size and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"{name}: expected pixel values in [0, 1] (level / (levels - 1)), got "
                             f"values from {x.min()} to {x.max()}")

    def check_classes(self, classes):
        """``classes`` checked as a model setting: None (no condition) or an int K >= 2."""
        if classes is None:
            return None
        if isinstance(classes, (bool, np.bool_)) or not isinstance(classes, (int, np.integer)) or classes < 2:
            raise ValueError(f"{type(self).__name__}: classes must be None (no condition) or an int >= 2, "
                             f"got {classes!r}")
        return int(classes)                 # a Python int: configs are JSON

    def __repr__(self):
        settings = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return f"{type(self).__name__}({settings}; {self.num_params():,} parameters)"


def architecture(arch):
    """The model class registered under the name ``arch``; a clear error for an unknown name."""
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


def build_model(arch, config, seed=None):
    """A new model of architecture ``arch`` (a name in ARCHITECTURES) with the settings ``config``."""
    return architecture(arch)(**config, seed=seed)


def check_model(model, what="expected"):
    """Raise TypeError unless ``model`` honours the contract (an :class:`AutoregressiveModel`)."""
    if not isinstance(model, AutoregressiveModel):
        raise TypeError(f"{what} a PixelCNN or another npixelcnn model (an AutoregressiveModel), "
                        f"got {type(model).__name__}")
