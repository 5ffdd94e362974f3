"""npixelcnn: PixelCNN from scratch in vectorized NumPy.

The public API:

* layers: :class:`MaskedConv2D`, :class:`Conv2D`, :class:`ReLU`, :class:`Sequential`,
  :class:`Residual`, :class:`ResidualBlock`
* the models: :class:`PixelCNN`, :class:`GatedPixelCNN` (no blind spot), each with its ``presets``;
  what every model promises: :class:`AutoregressiveModel`, its architectures by name:
  ``ARCHITECTURES``, :func:`build_model`, a model size with its training settings: :class:`Preset`
* the output distributions, each model's ``output`` (:mod:`npixelcnn.distributions`): the softmax
  (:func:`softmax_cross_entropy`) or PixelCNN++'s discretized logistic mixture
  (:mod:`npixelcnn.logistic_mixture`); :func:`nats_to_bits`, :func:`nats_per_image`
* optimizers: :class:`Adam`, :class:`SGD`, :func:`clip_by_global_norm`; a moving average of the
  weights: :class:`WeightAverage`
* a condition: a class-conditional model (``classes=K``, ``model.forward(x, labels)``) adds
  :class:`ClassBias` in its gates (:mod:`npixelcnn.conditioning`); Bayes' rule makes it a
  classifier: :func:`classify`, :func:`class_log_likelihoods`, :func:`confusion_matrix`
* masks: :func:`causal_mask`, :func:`kept_taps`
* gradient checks: :mod:`npixelcnn.gradcheck`
* the operations the layers are made of: :mod:`npixelcnn.ops`, plain NumPy by default
  (``npc.ops.use_fast(True)`` switches to their fast twins, :mod:`npixelcnn.fast_ops`)
* data: :func:`load_mnist`, :func:`load_fashion_mnist`, :func:`quantize`, :func:`dequantize`, :func:`to_model_input`
* colour data, (N, H, W, 3) uint8 RGB: :func:`load_coloured_mnist` (MNIST's digits in colour, by a
  seeded recipe: :func:`coloured_mnist_colours`) and :func:`load_cifar10`
* training: :class:`Trainer`, :func:`evaluate` (``parallel=True``: the batch split over the cores);
  its settings: :class:`TrainConfig` (``TrainConfig.from_preset``)
* checkpoints: :func:`save_checkpoint`, :func:`load_checkpoint`
* sampling: :func:`sample`, :func:`complete`; the cached samplers: :class:`PlainCachedPixelCNN`
  (the idea, to be read) and :class:`CachedPixelCNN` (its fast twin)
* plots: :func:`image_grid`, :func:`save_image_grid`, :func:`plot_history`, :func:`show_levels`,
  :func:`plot_completions`, :func:`plot_class_grid`, :func:`plot_confusion`
"""

from . import distributions, gradcheck, logistic_mixture, ops
from .autoregressive import ARCHITECTURES, AutoregressiveModel, Preset, build_model
from .blocks import Residual, ResidualBlock, Sequential
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .cifar10 import CIFAR10DownloadError, load_cifar10
from .classify import class_log_likelihoods, class_prior, classify, confusion_matrix
from .coloured_mnist import coloured_mnist_colours, load_coloured_mnist
from .conditioning import ClassBias
from .data import (FashionMNISTDownloadError, MNISTDownloadError, dequantize, load_fashion_mnist, load_mnist,
                   quantize, to_model_input)
from .im2col import col2im, im2col
from .layers import Conv2D, Layer, MaskedConv2D, Module, ReLU
from .losses import nats_per_image, nats_to_bits, softmax_cross_entropy, total_nll
from .masks import causal_mask, kept_taps
from .gated import GatedPixelCNN
from .model import PixelCNN
from .optim import SGD, Adam, WeightAverage, clip_by_global_norm, global_norm
from .sampling import CachedPixelCNN, PlainCachedPixelCNN, complete, sample
from .config import TrainConfig, learning_rate
from .run_control import steps_for_minutes
from .train import Trainer, TrainingDiverged, evaluate
from .viz import (image_grid, plot_class_grid, plot_completions, plot_confusion, plot_history, save_image_grid,
                  show_levels)

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES", "AutoregressiveModel", "GatedPixelCNN", "Residual", "build_model",
    "Adam", "CachedPixelCNN", "PlainCachedPixelCNN", "Checkpoint", "CheckpointError", "Conv2D", "Layer", "MNISTDownloadError", "FashionMNISTDownloadError",
    "MaskedConv2D", "Module", "PixelCNN", "Preset", "ReLU", "ResidualBlock", "SGD",
    "Sequential", "TrainConfig", "Trainer", "TrainingDiverged", "causal_mask",
    "clip_by_global_norm", "col2im", "distributions", "logistic_mixture", "ops", "complete", "dequantize", "evaluate", "global_norm", "gradcheck",
    "im2col", "image_grid", "plot_completions", "kept_taps", "learning_rate", "load_checkpoint", "load_mnist", "load_fashion_mnist",
    "nats_per_image", "nats_to_bits", "plot_history", "quantize", "sample", "save_checkpoint",
    "save_image_grid", "show_levels", "softmax_cross_entropy", "steps_for_minutes", "to_model_input", "total_nll",
    "WeightAverage", "ClassBias", "class_log_likelihoods", "class_prior", "classify", "confusion_matrix",
    "plot_class_grid", "plot_confusion",
    "CIFAR10DownloadError", "load_cifar10", "coloured_mnist_colours", "load_coloured_mnist",
]
