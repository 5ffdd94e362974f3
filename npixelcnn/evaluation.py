"""Evaluation: the mean negative log-likelihood of a set of images, the figure a model is judged by.

In nats per dimension; divided by ln 2 it is the bits per dimension that papers
report (:func:`npixelcnn.losses.nats_to_bits`).
"""

import numpy as np

from .autoregressive import check_model
from .conditioning import check_labels
from .data import to_model_input
from .data_parallel import split_total
from .progress import tqdm
from .validation import check_level_images, check_positive_int


def evaluate(model, levels_images, batch_size=50, progress=False, parallel=False, labels=None):
    """Mean NLL of a set of images in nats per dimension (divide by ln 2 for bits).

    Args:
        model: a :class:`PixelCNN`, or any model of :mod:`npixelcnn.autoregressive`.
        levels_images: (N, H, W) integer levels in [0, model.levels); (N, H, W, C) for a colour
            model, whose NLL is then per sub-pixel (bits/dim over all C x H x W).
        labels: (N,) the images' classes, for a class-conditional model (and only for one):
            the result is then the NLL of p(x | y), each image given its label.
        batch_size: images per forward pass. Small batches keep the activations
            in the CPU's cache (``python benchmarks/bench_evaluate.py`` compares sizes).
        progress: show a progress bar over the batches.
        parallel: each core scores a part of every batch with a replica of the
            model (:mod:`npixelcnn.data_parallel`); by default the whole batch
            runs on the model itself, in the caller's thread.

    The model runs in inference mode (no caches, no backward pass) and is put
    back in the mode it was in.
    """
    check_positive_int(batch_size, "batch_size")
    levels_images = np.asarray(levels_images)
    if len(levels_images) == 0:       # the mean of nothing: say so, rather than divide by zero
        raise ValueError("evaluate: no images to evaluate (got an empty array)")
    check_model(model, "evaluate expects")
    levels_images = check_level_images(levels_images, model.levels, "evaluate", channels=model.in_channels)
    labels = check_labels(labels, model.classes, len(levels_images), "evaluate")
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        starts = range(0, len(levels_images), batch_size)
        for start in tqdm(starts, desc="evaluating", leave=False, disable=not progress):
            batch = levels_images[start:start + batch_size]
            batch_labels = None if labels is None else labels[start:start + batch_size]
            x = to_model_input(batch, model.levels).astype(model.dtype, copy=False)   # float64 models too
            if parallel:
                total += split_total(_batch_nll, model, x, batch, batch_labels)
            else:
                total += _batch_nll(model, x, batch, batch_labels)
    finally:
        model.train(was_training)
    return total / levels_images.size


def _batch_nll(model, x, levels_batch, labels=None):
    """The total NLL in nats of a batch: x (N, H, W, C) model input, levels_batch (N, H, W)
    ((N, H, W, C) in colour), labels (N,) or None."""
    return model.output.total_nll(model.forward(x, labels), levels_batch)
