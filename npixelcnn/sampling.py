"""Sampling: drawing new images from a trained model, one pixel at a time.

The model gives p(x_i | x_1..x_{i-1}) for every pixel i at once, but only when
the earlier pixels are known. To sample, start from an empty image and visit
the pixels in raster order: run the model, draw pixel i from its predicted
distribution, write it in, move on.

Three ways to run that loop, with the same random draws and the same result:

* ``method="naive"``: a full forward pass per pixel, H * W passes per batch.
  Pass number i recomputes every activation of every pixel, although only
  those at pixel i are new.
* ``method="plain-cached"`` (:class:`PlainCachedPixelCNN`, in
  :mod:`npixelcnn.plain_sampler`): every layer's activation at pixel p depends
  only on pixels before p (the masks see to that), so once computed it never
  changes. Compute each layer at the one pixel being generated, keep what
  later pixels will read, and a step costs one pixel's worth of every layer:
  about one full forward pass in total (the idea of Fast PixelCNN++,
  Ramachandran et al., 2017, "Fast Generation for Convolutional
  Autoregressive Models", ICLR workshop). Written to be read.
* ``method="cached"`` (:class:`CachedPixelCNN`, in :mod:`npixelcnn.cached_sampler`):
  the same computations, arranged for speed.

:func:`complete` fills in the hidden part of given images the same way.

A class-conditional model (``model.classes``, :mod:`npixelcnn.conditioning`)
draws from p(x | y): both take the labels of the images, which every method
gives to the model (the naive loop to ``model.forward(x, labels)``, the cached
samplers to their steps).
"""


import numpy as np

from .autoregressive import check_model
from .blas import one_blas_thread
from .cached_sampler import CachedPixelCNN
from .conditioning import check_labels
from .data import to_model_input
from .categorical import draw  # noqa: F401  (npc.sampling.draw: the softmax's draw, which lessons 04 and 05 call)
from .plain_sampler import PlainCachedPixelCNN
from .progress import tqdm
from .validation import check_image_shape, check_level_images, check_positive_int, check_positive_number

METHODS = ("naive", "cached", "plain-cached")


def sample(model, n, shape=(28, 28), temperature=1.0, seed=None, method="naive", progress=False,
           labels=None):
    """Draw ``n`` images from ``model``.

    Args:
        model: a trained :class:`PixelCNN` or any model of
            :mod:`npixelcnn.autoregressive` (float32, or float64 after
            ``model.astype(np.float64)``).
        n: number of images, >= 1.
        shape: (H, W) of the images.
        temperature: < 1 sharpens every pixel's distribution (cleaner, less varied
            digits), > 1 flattens it; the softmax divides its logits by it, the
            logistic mixture its mixture logits, and multiplies its scales by it
            (each output's ``draw``, :mod:`npixelcnn.distributions`).
        seed: int or None; the same seed gives the same images.
        method: "naive" (a full forward pass per pixel), "cached" (each
            layer computed once per pixel, :class:`CachedPixelCNN`) or
            "plain-cached" (the same, written to be read:
            :class:`PlainCachedPixelCNN`). All make the same random draws in
            the same order (one call of ``model.output.draw`` per pixel, raster order), so
            they give the same images up to float rounding (see :func:`draw`).
        progress: show a progress bar over the pixels.
        labels: (n,) ints in [0, model.classes), the class of each image, for a
            class-conditional model (required by one, refused by any other):
            image k is drawn from p(x | labels[k]).

    Returns:
        (n, H, W) uint8 levels in [0, model.levels).
    """
    check_model(model)
    check_positive_int(n, "n")
    shape = check_image_shape(shape)
    check_positive_number(temperature, "temperature")
    _check_method(method)
    labels = check_labels(labels, model.classes, n, "sample")
    rng = np.random.default_rng(seed)
    images = np.zeros((n,) + shape, dtype=np.uint8)          # the naive loop starts from zeros
    hidden = np.ones((n,) + shape, dtype=bool)                # every pixel is drawn
    return _fill(method, model, images, hidden, labels, temperature, rng, progress)


def complete(model, images, visible, n_samples=1, temperature=1.0, seed=None, method="cached",
             progress=False, labels=None):
    """Keep the visible pixels of ``images`` and sample the hidden ones.

    Hidden pixels are drawn in raster order, each from the model's
    distribution given the pixels before it (visible or already drawn) that
    its receptive field reaches: every earlier pixel in principle, but a
    PixelCNN's stacked masked convolutions see only a window of rows above,
    with a blind spot up and to the right (lesson 05); a Gated PixelCNN's
    window has no blind spot. A visible pixel that comes after a hidden one
    is kept as given, but the hidden pixels before it do not see it: the
    model only conditions on earlier pixels, so completing the top of an
    image from its bottom half is not what this does. The values that
    ``images`` holds at hidden pixels are never read.

    Args:
        model: a :class:`PixelCNN` or any model of :mod:`npixelcnn.autoregressive`.
        images: (N, H, W) integer levels in [0, model.levels).
        visible: what to keep: a boolean mask (H, W) shared by all images or
            (N, H, W) per image, True = keep; or an int k in [0, H], keep the
            top k rows.
        n_samples: completions per image, >= 1.
        temperature, seed, progress: as in :func:`sample`.
        method: "cached" (fills the caches from the visible part, then goes
            pixel by pixel), "plain-cached" (the same, written to be read) or
            "naive" (a full forward pass per hidden pixel).
        labels: (N,) ints in [0, model.classes), the class of each image, for a
            class-conditional model (required by one, refused by any other): all
            n_samples completions of image k are drawn given labels[k].

    Returns:
        (N, n_samples, H, W) uint8: the visible pixels as given, the hidden
        ones sampled.
    """
    check_model(model)
    images = check_level_images(images, model.levels, "complete")
    n, height, width = images.shape
    visible = _check_visible(visible, images.shape)
    check_positive_int(n_samples, "n_samples")
    check_positive_number(temperature, "temperature")
    _check_method(method)
    labels = check_labels(labels, model.classes, n, "complete")
    rng = np.random.default_rng(seed)
    # Each image is repeated n_samples times, so one batch draws every completion.
    work = np.repeat(images.astype(np.uint8), n_samples, axis=0)              # (N*S, H, W)
    hidden = np.repeat(np.broadcast_to(~visible, images.shape), n_samples, axis=0)
    if labels is not None:
        labels = np.repeat(labels, n_samples)                                  # (N*S,), as the images
    out = _fill(method, model, work, hidden, labels, temperature, rng, progress)
    return out.reshape(n, n_samples, height, width)


# --------------------------------------------------------------------------- the loops
#
# Each takes a working batch ``images`` (B, H, W) uint8, holding the given
# values at visible pixels and anything at hidden ones, ``hidden`` (B, H, W)
# bool, and ``labels`` (B,), the images' classes (None for a model without
# classes). It visits, in raster order, every pixel that is hidden in at least one
# image, draws one level per image (one call of ``model.output.draw`` per such pixel, which
# takes the same numbers from the generator whatever the loop, so all loops consume it identically), writes it where it is hidden, and
# returns ``images``, filled in place.


def _raster_pixels(hidden):
    """(i, j) of every pixel hidden in at least one image, in raster order."""
    return [tuple(p) for p in np.argwhere(hidden.any(axis=0))]


def _fill(method, model, images, hidden, labels, temperature, rng, progress):
    """Fill ``images`` with the loop that ``method`` names."""
    if method == "naive":
        return _fill_naive(model, images, hidden, labels, temperature, rng, progress)
    # Looked up when called, so that a test can swap a sampler class for its own.
    sampler = CachedPixelCNN if method == "cached" else PlainCachedPixelCNN
    return _fill_cached(sampler, method, model, images, hidden, labels, temperature, rng, progress)


def _fill_naive(model, images, hidden, labels, temperature, rng, progress):
    """A full forward pass per pixel: the seed tutorial's loop."""
    was_training = model.training
    model.eval()
    try:
        for i, j in tqdm(_raster_pixels(hidden), desc="sampling (naive)", unit="px",
                         disable=not progress, leave=False):
            x = to_model_input(images, model.levels).astype(model.dtype, copy=False)
            outputs = model.forward(x, labels)              # (B, H, W, C_out): logits, or a mixture's parameters
            levels = model.output.draw(outputs[:, i, j], temperature, rng)
            images[:, i, j] = np.where(hidden[:, i, j], levels, images[:, i, j])
    finally:
        model.train(was_training)
    return images


def _fill_cached(sampler, method, model, images, hidden, labels, temperature, rng, progress):
    """One pixel's worth of every layer per pixel, with ``sampler``: :class:`CachedPixelCNN`
    (method "cached") or :class:`PlainCachedPixelCNN` ("plain-cached")."""
    pixels = _raster_pixels(hidden)
    if not pixels:
        return images                                   # nothing hidden: nothing to draw
    height, width = images.shape[1:]
    first = pixels[0][0] * width + pixels[0][1]         # raster index of the first hidden pixel
    last = pixels[-1][0] * width + pixels[-1][1]        # and of the last: nothing after it is needed
    net = sampler(model, len(images), (height, width), labels=labels)
    # Everything before the first hidden pixel is given: its activations are
    # computed first (by the fast sampler in one batched pass over its rows).
    net.prefill(images, first)
    all_hidden = bool(hidden.all())
    # The products of one pixel are small: waking a second BLAS thread for
    # each would cost more than it saves (npixelcnn/blas.py).
    with one_blas_thread():
        for q in tqdm(range(first, last + 1), desc=f"sampling ({method})", unit="px",
                      disable=not progress, leave=False):
            i, j = divmod(q, width)
            # Every pixel up to the last hidden one is computed, hidden or not:
            # later pixels read the activations at this one.
            outputs = net.outputs_at(i, j)                                 # (B, C_out)
            if all_hidden:
                images[:, i, j] = model.output.draw(outputs, temperature, rng)
            elif hidden[:, i, j].any():
                levels = model.output.draw(outputs, temperature, rng)
                images[:, i, j] = np.where(hidden[:, i, j], levels, images[:, i, j])
            net.set_pixel(i, j, images[:, i, j])
    return images


# --------------------------------------------------------------------------- checks


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}; expected one of {METHODS}")


def _check_visible(visible, images_shape):
    """-> bool (H, W) or (N, H, W): True where the pixel is kept."""
    n, height, width = images_shape
    if isinstance(visible, (int, np.integer)) and not isinstance(visible, (bool, np.bool_)):
        if not 0 <= visible <= height:
            raise ValueError(f"complete: visible as a number of top rows must be in [0, {height}], "
                             f"got {visible}")
        mask = np.zeros((height, width), dtype=bool)
        mask[:visible] = True
        return mask
    if not isinstance(visible, np.ndarray) or visible.dtype != bool:
        got = visible.dtype if isinstance(visible, np.ndarray) else type(visible).__name__
        raise TypeError(f"complete: visible must be a boolean mask (H, W) or (N, H, W) or an int "
                        f"number of top rows, got {got}")
    if visible.shape not in ((height, width), (n, height, width)):
        raise ValueError(f"complete: visible must have shape ({height}, {width}) or "
                         f"({n}, {height}, {width}) to match the images, got {visible.shape}")
    return visible
