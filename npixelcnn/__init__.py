"""npixelcnn: PixelCNN from scratch in vectorized NumPy.

The public API:

* layers: :class:`MaskedConv2D`, :class:`Conv2D`, :class:`ReLU`, :class:`ResidualBlock`
* the model: :class:`PixelCNN`
* the loss: :func:`softmax_cross_entropy`, :func:`nats_to_bits`, :func:`nats_per_image`
* optimizers: :class:`Adam`, :class:`SGD`, :func:`clip_by_global_norm`
* masks: :func:`causal_mask`, :func:`kept_taps`
* gradient checks: :mod:`npixelcnn.gradcheck`
* data: :func:`load_mnist`, :func:`quantize`, :func:`dequantize`, :func:`to_model_input`
* training: :class:`Trainer`, :class:`TrainConfig`, :func:`evaluate`, ``PRESETS``
* checkpoints: :func:`save_checkpoint`, :func:`load_checkpoint`
* sampling: :func:`sample`, :func:`complete`, :class:`CachedPixelCNN`
* plots: :func:`image_grid`, :func:`save_image_grid`, :func:`plot_history`, :func:`show_levels`
"""

import os
import sys

# After each matrix product OpenBLAS's worker threads keep spinning for about
# 2^28 cycles (~0.1 s), holding the cores that our own threads need for the
# element-wise work that follows (see parallel.py). Measured on 2 cores: a seed
# training step took 2.36 s with the default and 1.77 s with a short timeout.
# OpenBLAS reads this once, when NumPy loads it: import npixelcnn before NumPy
# (as the CLI and the benchmarks do), or export the variable yourself.
BLAS_SPIN_SHORTENED = "numpy" not in sys.modules or "OPENBLAS_THREAD_TIMEOUT" in os.environ
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import gradcheck  # noqa: E402
from .blocks import ResidualBlock, Sequential  # noqa: E402
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from .data import MNISTDownloadError, dequantize, load_mnist, quantize, to_model_input  # noqa: E402
from .im2col import col2im, im2col  # noqa: E402
from .layers import Conv2D, Layer, MaskedConv2D, Module, ReLU  # noqa: E402
from .losses import nats_per_image, nats_to_bits, softmax_cross_entropy, total_nll  # noqa: E402
from .masks import causal_mask, kept_taps  # noqa: E402
from .model import PixelCNN  # noqa: E402
from .optim import SGD, Adam, clip_by_global_norm, global_norm  # noqa: E402
from .sampling import CachedPixelCNN, complete, sample  # noqa: E402
from .train import (  # noqa: E402
    PRESETS, Trainer, TrainConfig, TrainingDiverged, evaluate, learning_rate, steps_for_minutes,
)
from .viz import image_grid, plot_completions, plot_history, save_image_grid, show_levels  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Adam", "CachedPixelCNN", "Checkpoint", "CheckpointError", "Conv2D", "Layer", "MNISTDownloadError",
    "MaskedConv2D", "Module", "PRESETS", "PixelCNN", "ReLU", "ResidualBlock", "SGD",
    "Sequential", "TrainConfig", "Trainer", "TrainingDiverged", "causal_mask",
    "clip_by_global_norm", "col2im", "complete", "dequantize", "evaluate", "global_norm", "gradcheck",
    "im2col", "image_grid", "plot_completions", "kept_taps", "learning_rate", "load_checkpoint", "load_mnist",
    "nats_per_image", "nats_to_bits", "plot_history", "quantize", "sample", "save_checkpoint",
    "save_image_grid", "show_levels", "softmax_cross_entropy", "steps_for_minutes", "to_model_input", "total_nll",
]
