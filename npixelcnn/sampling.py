"""Sampling: drawing new images from a trained PixelCNN, one pixel at a time.

The model gives p(x_i | x_1..x_{i-1}) for every pixel i at once, but only when
the earlier pixels are known. To sample, start from an empty image and visit
the pixels in raster order: run the model, draw pixel i from its predicted
distribution, write it in, move on. H * W forward passes for one batch of images.
"""

import numpy as np
from tqdm.auto import tqdm

from .data import to_model_input
from .model import PixelCNN
from .validation import check_positive_int

METHODS = ("naive",)


def sample(model, n, shape=(28, 28), temperature=1.0, seed=None, method="naive", progress=False):
    """Draw ``n`` images from ``model``.

    Args:
        model: a trained :class:`PixelCNN`.
        n: number of images.
        shape: (H, W) of the images.
        temperature: divides the logits before the softmax; < 1 sharpens the
            distributions (cleaner, less varied digits), > 1 flattens them.
        seed: int or None; the same seed gives the same images.
        method: "naive" (a full forward pass per pixel).
        progress: show a progress bar over the pixels.

    Returns (n, H, W) uint8 levels in [0, model.levels).
    """
    _check_sample_args(model, n, shape, temperature, method)
    rng = np.random.default_rng(seed)
    height, width = shape
    images = np.zeros((n, height, width), dtype=np.uint8)
    was_training = model.training
    model.eval()
    try:
        for i, j in tqdm([(i, j) for i in range(height) for j in range(width)],
                         desc="sampling", unit="px", disable=not progress, leave=False):
            logits = model.forward(to_model_input(images, model.levels))     # (n, H, W, L)
            images[:, i, j] = draw(logits[:, i, j], temperature, rng)
    finally:
        model.train(was_training)
    return images


def draw(logits, temperature, rng):
    """One level per row of ``logits`` (n, L), from softmax(logits / temperature).

    Inverse-CDF sampling: a uniform u in [0, 1) picks the first level whose
    cumulative probability exceeds u. Computed in float64.
    """
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    u = rng.random(len(z))[:, None] * cdf[:, -1:]          # scale u instead of normalising p
    return np.minimum((cdf <= u).sum(axis=1), z.shape[1] - 1).astype(np.uint8)


def _check_sample_args(model, n, shape, temperature, method):
    if not isinstance(model, PixelCNN):
        raise TypeError(f"expected a PixelCNN model, got {type(model).__name__}")
    check_positive_int(n, "n")
    if len(tuple(shape)) != 2:
        raise ValueError(f"shape must be (height, width), got {shape}")
    for size in shape:
        check_positive_int(size, "shape")
    if not (isinstance(temperature, (int, float)) and temperature > 0 and np.isfinite(temperature)):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}; expected one of {METHODS}")
