"""A class-conditional model as a classifier, by Bayes' rule.

A model with classes gives log p(x | y) for an image x and any class y: the sum of its
per-pixel log-probabilities when it is told y. Bayes' rule turns that around:

    p(y | x) = p(x | y) p(y) / sum_k p(x | k) p(k),

so scoring an image once per class is a classifier, with no classifier trained. The prior
p(y) is uniform, or the share of each class in the training set.

The same works for part of an image. The first r rows are a prefix in raster order, and the
model's conditionals over that prefix multiply to the marginal p(top r rows | y) exactly:
what the model thinks a half-drawn digit could still become is p(y | top r rows).
"""

import numpy as np

from .autoregressive import check_model
from .categorical import log_softmax
from .data import to_model_input
from .data_parallel import split_per_image
from .progress import tqdm
from .validation import check_level_images, check_positive_int


def class_log_likelihoods(model, levels_images, rows=None, batch_size=50, progress=False, parallel=False):
    """log p(x | y) in nats for every image and every class: (N, K).

    Args:
        model: a class-conditional model (``model.classes`` = K).
        levels_images: (N, H, W) integer levels in [0, model.levels) ((N, H, W, C) in colour).
        rows: score only the top ``rows`` rows, log p(top rows | y) (None: the whole image).
        batch_size: images per forward pass; each batch runs once per class.
        progress: a progress bar over the batches.
        parallel: each core scores a part of every batch (:mod:`npixelcnn.data_parallel`).

    Returns:
        (N, K) float64: one forward pass per class, so K times the cost of an evaluation.
    """
    check_model(model, "class_log_likelihoods expects")
    if model.classes is None:
        raise ValueError(f"class_log_likelihoods: {type(model).__name__} has no classes; Bayes' rule needs a "
                         f"class-conditional model (built with classes=K)")
    check_positive_int(batch_size, "batch_size")
    levels_images = check_level_images(np.asarray(levels_images), model.levels, "class_log_likelihoods",
                                       channels=model.in_channels)
    height = levels_images.shape[1]
    if rows is None:
        rows = height
    elif isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or not 1 <= rows <= height:
        raise ValueError(f"class_log_likelihoods: rows must be an int in [1, {height}] (the top rows to "
                         f"score), got {rows!r}")
    def score(replica, x, targets, labels):
        """-(the NLL of each image's top rows): (n,)."""
        nll = replica.output.pixel_nll(replica.forward(x, labels)[:, :rows], targets[:, :rows])
        return -nll.reshape(len(nll), -1).sum(axis=1)        # over the pixels (and sub-pixels in colour)

    was_training = model.training
    model.eval()
    scores = np.empty((len(levels_images), model.classes))
    try:
        starts = range(0, len(levels_images), batch_size)
        for start in tqdm(starts, desc="scoring every class", leave=False, disable=not progress):
            batch = levels_images[start:start + batch_size]
            # A causal model's top rows depend only on the rows above: the rest is not computed.
            x = to_model_input(batch[:, :rows], model.levels).astype(model.dtype, copy=False)
            for k in range(model.classes):
                labels = np.full(len(batch), k)
                if parallel:
                    scores[start:start + len(batch), k] = split_per_image(score, model, x, batch, labels)
                else:
                    scores[start:start + len(batch), k] = score(model, x, batch, labels)
    finally:
        model.train(was_training)
    return scores


def classify(model, levels_images, prior=None, rows=None, batch_size=50, progress=False, parallel=False):
    """log p(y | x) for every image and class, by Bayes' rule: (N, K).

    Args:
        model, levels_images, rows, batch_size, progress, parallel: as :func:`class_log_likelihoods`.
        prior: p(y), (K,) positive numbers that sum to 1 (e.g. :func:`class_prior` of the
            training labels); None: uniform, 1/K each.

    Returns:
        (N, K) float64 log-probabilities; exp sums to 1 over the classes, and
        ``argmax(axis=1)`` is the predicted class.
    """
    scores = class_log_likelihoods(model, levels_images, rows, batch_size, progress, parallel)
    classes = scores.shape[1]
    if prior is None:
        log_prior = np.full(classes, -np.log(classes))
    else:
        prior = np.asarray(prior, dtype=np.float64)
        if prior.shape != (classes,) or not np.isfinite(prior).all() or (prior <= 0).any() \
                or abs(prior.sum() - 1) > 1e-6:
            raise ValueError(f"classify: prior must be {classes} positive probabilities that sum to 1, "
                             f"got {prior!r}")
        log_prior = np.log(prior)
    return log_softmax(scores + log_prior)      # log p(x, y), normalised over the classes: log p(y | x)


def class_prior(labels, classes):
    """The share of each class in ``labels`` (N,) ints in [0, classes): (K,), sums to 1."""
    counts = np.bincount(np.asarray(labels), minlength=classes)[:classes]
    if (counts == 0).any():
        raise ValueError(f"class_prior: classes {np.flatnonzero(counts == 0).tolist()} never occur in the labels")
    return counts / counts.sum()


def confusion_matrix(true_labels, predicted, classes):
    """(K, K) counts: row = the true class, column = the predicted one."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true_labels), np.asarray(predicted)), 1)
    return matrix
