"""Sampling: drawing new images from a trained model, one pixel at a time.

The model gives p(x_i | x_1..x_{i-1}) for every pixel i at once, but only when
the earlier pixels are known. To sample, start from an empty image and visit
the pixels in raster order: run the model, draw pixel i from its predicted
distribution, write it in, move on.

A colour pixel is C = 3 sub-pixels, drawn in the order R, G, B: sub-pixel c
from the model's outputs for it given every earlier pixel and the sub-pixels
before c of its own pixel (the masks of :mod:`npixelcnn.masks`). So the loop
visits every pixel, then every sub-pixel of it, one draw each. Grey is the
case C = 1: one draw per pixel.

Three ways to run that loop, with the same random draws and the same result:

* ``method="naive"``: a full forward pass per (sub-)pixel, H * W * C passes
  per batch. Pass number i recomputes every activation of every pixel,
  although only those at pixel i are new.
* ``method="plain-cached"`` (:class:`PlainCachedPixelCNN`, in
  :mod:`npixelcnn.plain_sampler`): every layer's activation at pixel p depends
  only on pixels before p (the masks see to that), so once computed it never
  changes. Compute each layer at the one pixel being generated, keep what
  later pixels will read, and a step costs one pixel's worth of every layer:
  about one full forward pass in total (the idea of Fast PixelCNN++,
  Ramachandran et al., 2017, "Fast Generation for Convolutional
  Autoregressive Models", ICLR workshop); in colour, each layer is computed
  again at the pixel for every sub-pixel, about C passes. Written to be read.
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
        shape: (H, W) of the images (a colour model's have C = ``model.in_channels``
            channels too).
        temperature: < 1 sharpens every pixel's distribution (cleaner, less varied
            digits), > 1 flattens it; the softmax divides its logits by it, the
            logistic mixture its mixture logits, and multiplies its scales by it
            (each output's ``draw``, :mod:`npixelcnn.distributions`).
        seed: int or None; the same seed gives the same images.
        method: "naive" (a full forward pass per pixel), "cached" (each
            layer computed once per pixel, :class:`CachedPixelCNN`) or
            "plain-cached" (the same, written to be read:
            :class:`PlainCachedPixelCNN`). All make the same random draws in
            the same order (one call of ``model.output.draw`` per pixel, raster order,
            and in colour per sub-pixel, R, G, B within a pixel), so they give the
            same images up to float rounding (see :func:`draw`).
        progress: show a progress bar over the pixels.
        labels: (n,) ints in [0, model.classes), the class of each image, for a
            class-conditional model (required by one, refused by any other):
            image k is drawn from p(x | labels[k]).

    Returns:
        (n, H, W) uint8 levels in [0, model.levels) for a grey model, (n, H, W, C) for a
        colour one (channels R, G, B).
    """
    check_model(model)
    check_positive_int(n, "n")
    shape = check_image_shape(shape)
    check_positive_number(temperature, "temperature")
    _check_method(method)
    labels = check_labels(labels, model.classes, n, "sample")
    rng = np.random.default_rng(seed)
    channels = () if model.in_channels == 1 else (model.in_channels,)
    images = np.zeros((n,) + shape + channels, dtype=np.uint8)   # the naive loop starts from zeros
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
    ``images`` holds at hidden pixels are never read. In colour a pixel is
    visible or hidden with all its sub-pixels; a hidden one's are drawn R, G, B.

    Args:
        model: a :class:`PixelCNN` or any model of :mod:`npixelcnn.autoregressive`.
        images: (N, H, W) integer levels in [0, model.levels) for a grey model,
            (N, H, W, C) for a colour one (C = ``model.in_channels``).
        visible: what to keep, pixel by pixel (all sub-pixels of a pixel alike): a
            boolean mask (H, W) shared by all images or (N, H, W) per image, True =
            keep; or an int k in [0, H], keep the top k rows.
        n_samples: completions per image, >= 1.
        temperature, seed, progress: as in :func:`sample`.
        method: "cached" (fills the caches from the visible part, then goes
            pixel by pixel), "plain-cached" (the same, written to be read) or
            "naive" (a full forward pass per hidden pixel).
        labels: (N,) ints in [0, model.classes), the class of each image, for a
            class-conditional model (required by one, refused by any other): all
            n_samples completions of image k are drawn given labels[k].

    Returns:
        (N, n_samples, H, W) uint8, (N, n_samples, H, W, C) in colour: the visible
        pixels as given, the hidden ones sampled.
    """
    check_model(model)
    images = check_level_images(images, model.levels, "complete", channels=model.in_channels)
    n = len(images)
    visible = _check_visible(visible, images.shape[:3])
    check_positive_int(n_samples, "n_samples")
    check_positive_number(temperature, "temperature")
    _check_method(method)
    labels = check_labels(labels, model.classes, n, "complete")
    rng = np.random.default_rng(seed)
    # Each image is repeated n_samples times, so one batch draws every completion.
    work = np.repeat(images.astype(np.uint8), n_samples, axis=0)              # (N*S, H, W[, C])
    hidden = np.repeat(np.broadcast_to(~visible, images.shape[:3]), n_samples, axis=0)
    if labels is not None:
        labels = np.repeat(labels, n_samples)                                  # (N*S,), as the images
    out = _fill(method, model, work, hidden, labels, temperature, rng, progress)
    return out.reshape((n, n_samples) + images.shape[1:])


# --------------------------------------------------------------------------- the loops
#
# Each takes a working batch ``images`` (B, H, W) uint8, (B, H, W, C) in colour,
# holding the given values at visible pixels and anything at hidden ones, ``hidden``
# (B, H, W) bool (a pixel is hidden with all its sub-pixels), and ``labels`` (B,),
# the images' classes (None for a model without classes). It visits, in raster
# order, every pixel that is hidden in at least one image, and in each its
# sub-pixels c = 0 .. C - 1 (R, G, B; grey: c = 0 only); draws one level per image
# for each (one call of ``model.output.draw`` per pixel and sub-pixel, which takes the
# same numbers from the generator whatever the loop, so all loops consume it
# identically; it is given the levels of the sub-pixels before c at the pixel,
# ``earlier`` (B, c), which a mixture with channel coefficients shifts its means by),
# writes it where the pixel is hidden, and returns ``images``, filled in place.


def _raster_pixels(hidden):
    """(i, j) of every pixel hidden in at least one image, in raster order."""
    return [tuple(p) for p in np.argwhere(hidden.any(axis=0))]


def _sub_pixels(images):
    """The working images as (B, H, W, C), a view: grey (B, H, W) is the case C = 1."""
    return images.reshape(images.shape[:3] + (-1,))


def _sub_pixel_outputs(outputs, channels, c):
    """Sub-pixel c's outputs (B, P), P = model.output.channels, from one pixel's: (B, P)
    grey, (B, C, P) from a colour ``model.forward``, (B, C * P) from a cached sampler
    (the last layer's channels are C groups: sub-pixel c's P numbers at [c*P:(c+1)*P])."""
    return outputs.reshape(len(outputs), channels, -1)[:, c]


def _fill(method, model, images, hidden, labels, temperature, rng, progress):
    """Fill ``images`` with the loop that ``method`` names."""
    if method == "naive":
        return _fill_naive(model, images, hidden, labels, temperature, rng, progress)
    # Looked up when called, so that a test can swap a sampler class for its own.
    sampler = CachedPixelCNN if method == "cached" else PlainCachedPixelCNN
    return _fill_cached(sampler, method, model, images, hidden, labels, temperature, rng, progress)


def _fill_naive(model, images, hidden, labels, temperature, rng, progress):
    """A full forward pass per pixel (per sub-pixel in colour): the seed tutorial's loop."""
    sub_pixels = _sub_pixels(images)                    # (B, H, W, C), a view of images
    channels = sub_pixels.shape[-1]
    was_training = model.training
    model.eval()
    try:
        for i, j in tqdm(_raster_pixels(hidden), desc="sampling (naive)", unit="px",
                         disable=not progress, leave=False):
            for c in range(channels):                   # R, G, B: each given the ones before it
                x = to_model_input(images, model.levels).astype(model.dtype, copy=False)
                outputs = model.forward(x, labels)      # (B, H, W, P), (B, H, W, C, P) in colour
                levels = model.output.draw(_sub_pixel_outputs(outputs[:, i, j], channels, c),
                                           temperature, rng, earlier=sub_pixels[:, i, j, :c])
                sub_pixels[:, i, j, c] = np.where(hidden[:, i, j], levels, sub_pixels[:, i, j, c])
    finally:
        model.train(was_training)
    return images


def _fill_cached(sampler, method, model, images, hidden, labels, temperature, rng, progress):
    """One pixel's worth of every layer per pixel (per sub-pixel in colour), with
    ``sampler``: :class:`CachedPixelCNN` (method "cached") or :class:`PlainCachedPixelCNN`
    ("plain-cached")."""
    pixels = _raster_pixels(hidden)
    if not pixels:
        return images                                   # nothing hidden: nothing to draw
    sub_pixels = _sub_pixels(images)                    # (B, H, W, C), a view of images
    batch, height, width, channels = sub_pixels.shape
    first = pixels[0][0] * width + pixels[0][1]         # raster index of the first hidden pixel
    last = pixels[-1][0] * width + pixels[-1][1]        # and of the last: nothing after it is needed
    net = sampler(model, batch, (height, width), labels=labels)
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
            drawn = all_hidden or hidden[:, i, j].any()
            for c in range(channels):
                # Sub-pixel c of (i, j), once those before it are stored (set_pixel
                # after each draw). Every layer's channels are C ordered groups: the
                # first layer's group g (its outputs for sub-pixel g) reads the image's
                # sub-pixels g' < g of (i, j), every later layer's group g its input's
                # groups g' <= g there (npixelcnn/masks.py). So group c of every layer
                # at (i, j) is final once sub-pixels 0 .. c - 1 are stored, and the
                # groups before c were final a round earlier. outputs_at(i, j,
                # sub_pixel=c) is round c, sub-pixel c's outputs:
                # * the fast sampler computes only group c of every layer at (i, j), from
                #   its input's groups <= c there (those < c kept from the earlier
                #   rounds), never reading a later group: a pixel costs about the
                #   multiply-adds of a grey pixel, split over C rounds;
                # * the plain one computes every group again; a later group's values
                #   there (zeros, a hidden pixel's given values, an older row's stale
                #   ones; all finite) meet only exact zero weights (kept_weights).
                # After round C - 1 every group at (i, j) is final and stored: what a
                # forward pass of the finished image has there, which later pixels
                # read. Grey is one round, c = 0. (Round 0 comes before anything of
                # (i, j) is stored, as the steps expect: a gated layer's vertical row
                # is computed then.)
                outputs = net.outputs_at(i, j, sub_pixel=c)                       # (B, P)
                if all_hidden:
                    sub_pixels[:, i, j, c] = model.output.draw(outputs, temperature, rng,
                                                               earlier=sub_pixels[:, i, j, :c])
                elif drawn:
                    levels = model.output.draw(outputs, temperature, rng, earlier=sub_pixels[:, i, j, :c])
                    sub_pixels[:, i, j, c] = np.where(hidden[:, i, j], levels, sub_pixels[:, i, j, c])
                net.set_pixel(i, j, sub_pixels[:, i, j])
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
