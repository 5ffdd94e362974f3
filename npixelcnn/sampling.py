"""Sampling: drawing new images from a trained PixelCNN, one pixel at a time.

The model gives p(x_i | x_1..x_{i-1}) for every pixel i at once, but only when
the earlier pixels are known. To sample, start from an empty image and visit
the pixels in raster order: run the model, draw pixel i from its predicted
distribution, write it in, move on.

Two ways to run that loop, with the same random draws and the same result:

* ``method="naive"``: a full forward pass per pixel, H * W passes per batch.
  Pass number i recomputes every activation of every pixel, although only
  those at pixel i are new.
* ``method="cached"`` (:class:`CachedPixelCNN`): every layer's activation at
  pixel p depends only on pixels before p (the masks see to that), so once
  computed it never changes. Compute each layer at the one pixel being
  generated, keep what later pixels will read, and a step costs one pixel's
  worth of every layer: about one full forward pass in total (the idea of
  Fast PixelCNN++, Ramachandran et al., 2017, "Fast Generation for
  Convolutional Autoregressive Models", ICLR workshop).

:func:`complete` fills in the hidden part of given images the same way.
"""

import numbers

import numpy as np
from tqdm.auto import tqdm

from .blocks import ResidualBlock, Sequential
from .data import to_model_input
from .layers import Conv2D, MaskedConv2D, ReLU
from .model import PixelCNN
from .validation import check_positive_int

METHODS = ("naive", "cached")


def sample(model, n, shape=(28, 28), temperature=1.0, seed=None, method="naive", progress=False):
    """Draw ``n`` images from ``model``.

    Args:
        model: a trained :class:`PixelCNN` (float32, or float64 after
            ``model.astype(np.float64)``).
        n: number of images, >= 1.
        shape: (H, W) of the images.
        temperature: divides the logits before the softmax; < 1 sharpens the
            distributions (cleaner, less varied digits), > 1 flattens them.
        seed: int or None; the same seed gives the same images.
        method: "naive" (a full forward pass per pixel) or "cached" (each
            layer computed once per pixel, :class:`CachedPixelCNN`). Both make
            the same random draws in the same order (one ``rng.random(n)`` per
            pixel, raster order), so they give the same images up to float
            rounding (see :func:`draw`).
        progress: show a progress bar over the pixels.

    Returns:
        (n, H, W) uint8 levels in [0, model.levels).
    """
    _check_model(model)
    check_positive_int(n, "n")
    shape = _check_shape(shape)
    _check_temperature(temperature)
    _check_method(method)
    rng = np.random.default_rng(seed)
    images = np.zeros((n,) + shape, dtype=np.uint8)          # the naive loop starts from zeros
    hidden = np.ones((n,) + shape, dtype=bool)                # every pixel is drawn
    fill = _fill_naive if method == "naive" else _fill_cached
    return fill(model, images, hidden, temperature, rng, progress)


def complete(model, images, visible, n_samples=1, temperature=1.0, seed=None, method="cached",
             progress=False):
    """Keep the visible pixels of ``images`` and sample the hidden ones.

    Hidden pixels are drawn in raster order, each conditioned on every pixel
    before it (visible or already drawn). A visible pixel that comes after a
    hidden one is kept as given, but the hidden pixels before it do not see
    it: the model only conditions on earlier pixels, so completing the top of
    an image from its bottom half is not what this does. The values that
    ``images`` holds at hidden pixels are never read.

    Args:
        model: a :class:`PixelCNN`.
        images: (N, H, W) integer levels in [0, model.levels).
        visible: what to keep: a boolean mask (H, W) shared by all images or
            (N, H, W) per image, True = keep; or an int k in [0, H], keep the
            top k rows.
        n_samples: completions per image, >= 1.
        temperature, seed, progress: as in :func:`sample`.
        method: "cached" (fills the caches from the visible part, then goes
            pixel by pixel) or "naive" (a full forward pass per hidden pixel).

    Returns:
        (N, n_samples, H, W) uint8: the visible pixels as given, the hidden
        ones sampled.
    """
    _check_model(model)
    images = _check_images(images, model.levels)
    n, height, width = images.shape
    visible = _check_visible(visible, images.shape)
    check_positive_int(n_samples, "n_samples")
    _check_temperature(temperature)
    _check_method(method)
    rng = np.random.default_rng(seed)
    # Each image is repeated n_samples times, so one batch draws every completion.
    work = np.repeat(images.astype(np.uint8), n_samples, axis=0)              # (N*S, H, W)
    hidden = np.repeat(np.broadcast_to(~visible, images.shape), n_samples, axis=0)
    fill = _fill_naive if method == "naive" else _fill_cached
    out = fill(model, work, hidden, temperature, rng, progress)
    return out.reshape(n, n_samples, height, width)


def draw(logits, temperature, rng):
    """One level per row of ``logits`` (n, L), from softmax(logits / temperature).

    Inverse-CDF sampling: a uniform u in [0, 1) picks the first level whose
    cumulative probability exceeds u. Computed in float64. Two logit arrays
    that differ in the last bits (float32 sums taken in another order) give
    the same levels unless a u lands within that distance of a class boundary.

    Returns:
        (n,) uint8 levels.
    """
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    u = rng.random(len(z))[:, None] * cdf[:, -1:]          # scale u instead of normalising p
    return np.minimum((cdf <= u).sum(axis=1), z.shape[1] - 1).astype(np.uint8)


# --------------------------------------------------------------------------- the two loops
#
# Both take a working batch ``images`` (B, H, W) uint8, holding the given
# values at visible pixels and anything at hidden ones, and ``hidden`` (B, H, W)
# bool. They visit, in raster order, every pixel that is hidden in at least one
# image, draw one level per image (one rng.random(B) per such pixel, so both
# loops consume the generator identically), write it where it is hidden, and
# return ``images``, filled in place.


def _raster_pixels(hidden):
    """(i, j) of every pixel hidden in at least one image, in raster order."""
    return [tuple(p) for p in np.argwhere(hidden.any(axis=0))]


def _fill_naive(model, images, hidden, temperature, rng, progress):
    """A full forward pass per pixel: the seed tutorial's loop."""
    was_training = model.training
    model.eval()
    try:
        for i, j in tqdm(_raster_pixels(hidden), desc="sampling (naive)", unit="px",
                         disable=not progress, leave=False):
            x = to_model_input(images, model.levels).astype(model.dtype, copy=False)
            logits = model.forward(x)                                      # (B, H, W, L)
            levels = draw(logits[:, i, j], temperature, rng)
            images[:, i, j] = np.where(hidden[:, i, j], levels, images[:, i, j])
    finally:
        model.train(was_training)
    return images


def _fill_cached(model, images, hidden, temperature, rng, progress):
    """One pixel's worth of every layer per pixel (see :class:`CachedPixelCNN`)."""
    pixels = _raster_pixels(hidden)
    if not pixels:
        return images                                   # nothing hidden: nothing to draw
    height, width = images.shape[1:]
    first = pixels[0][0] * width + pixels[0][1]         # raster index of the first hidden pixel
    last = pixels[-1][0] * width + pixels[-1][1]        # and of the last: nothing after it is needed
    net = CachedPixelCNN(model, len(images), (height, width))
    # Everything before the first hidden pixel is given: its activations are
    # computed in one batched pass over the rows that hold it.
    net.prefill(images, first)
    all_hidden = bool(hidden.all())
    for q in tqdm(range(first, last + 1), desc="sampling (cached)", unit="px",
                  disable=not progress, leave=False):
        i, j = divmod(q, width)
        # Every pixel up to the last hidden one is computed, hidden or not:
        # later pixels read the activations at this one.
        logits = net.logits_at(i, j)                                       # (B, L)
        if all_hidden:
            images[:, i, j] = draw(logits, temperature, rng)
        elif hidden[:, i, j].any():
            levels = draw(logits, temperature, rng)
            images[:, i, j] = np.where(hidden[:, i, j], levels, images[:, i, j])
        net.set_pixel(i, j, images[:, i, j])
    return images


# --------------------------------------------------------------------------- the cache


class CachedPixelCNN:
    """A PixelCNN evaluated one pixel at a time, keeping what later pixels read.

    At pixel (i, j), in raster order, :meth:`logits_at` runs every layer of the
    model at that one position:

    * the first layer (7x7 mask A) reads the image at its kept taps, all
      before (i, j);
    * each residual block: ReLU, 1x1, ReLU, then the 3x3 mask-B layer, whose
      input at (i, j) is written into its buffer before it reads its kept taps
      (all at or before (i, j)), ReLU, 1x1, plus the skip;
    * the head (ReLU, 1x1, ReLU, 1x1, 1x1) gives the logits (B, L).

    A 1x1 layer or a ReLU at one pixel needs only that pixel's input, so its
    output is used at once and forgotten. A masked layer reads its input at
    earlier pixels too: for each one we keep a buffer of its INPUT, zero-padded
    like the convolution pads it, ``(B, H + p, W + 2p, C_in)`` with p = k // 2
    (no padding below: a causal mask never reads a lower row). Reading the
    kept taps at (i, j) is then a few slices (one per kernel row) with no
    bounds logic, and a matrix product with the layer's (T*C_in, C_out)
    kept-weight matrix: the same products as the full forward pass, one
    pixel at a time.

    Args:
        model: a :class:`PixelCNN` (its layers are read, not changed; later
            changes to its weights are not seen).
        batch: B, the number of images generated together.
        shape: (H, W).

    Attributes:
        inputs: the masked layers' input buffers without their padding, each
            (B, H, W, C_in); ``inputs[0]`` is the image (level / (L - 1)).
    """

    def __init__(self, model, batch, shape):
        _check_model(model)
        check_positive_int(batch, "batch")
        self.shape = height, width = _check_shape(shape)
        self.batch, self.levels, self.dtype = batch, model.levels, model.dtype
        children = model.named_children()
        first = children[0][1] if children else None
        if not (isinstance(first, MaskedConv2D) and first.mask_type == "A"):
            raise ValueError("CachedPixelCNN: the model must start with a mask-A convolution, "
                             "so that no pixel sees itself")
        self._first = _MaskedAt(first, self)
        self._steps = [self._compile(layer, name) for name, layer in children[1:]]
        self.inputs = [self._first.input] + [
            s.input for s in _walk(self._steps) if isinstance(s, _MaskedAt)
        ]
        # The model's input for each level, computed as to_model_input does it
        # (float32 division, then the model's dtype), so both loops see the same numbers.
        self._values = (np.arange(model.levels, dtype=np.float32)
                        / np.float32(model.levels - 1)).astype(self.dtype)

    def _compile(self, layer, name):
        if isinstance(layer, MaskedConv2D):
            return _MaskedAt(layer, self)
        if isinstance(layer, Conv2D) and layer.kernel_size == 1:
            return _DenseAt(layer, self.batch)
        if isinstance(layer, ReLU):
            return _ReluAt(layer)
        if isinstance(layer, ResidualBlock):
            return _ResidualAt(layer, [self._compile(c, n) for n, c in layer.named_children()],
                               self.batch, self.dtype)
        if isinstance(layer, Sequential):
            return _SequentialAt(layer, [self._compile(c, n) for n, c in layer.named_children()])
        raise TypeError(f"CachedPixelCNN: cannot run layer {name!r} ({type(layer).__name__}) "
                        "one pixel at a time; expected masked convolutions, 1x1 convolutions, "
                        "ReLUs and residual blocks")

    def set_pixel(self, i, j, levels):
        """Write the levels (B,) of pixel (i, j) into the image that the first layer reads."""
        self._first.input[:, i, j, 0] = self._values[levels]

    def logits_at(self, i, j):
        """The model's logits (B, L) at pixel (i, j).

        Requires every pixel before (i, j) to be set (:meth:`set_pixel`) and
        every pixel before it to have been computed (:meth:`logits_at` or
        :meth:`prefill`): then the result equals ``model.forward(x)[:, i, j]``
        up to float rounding. Stores the masked layers' inputs at (i, j).
        The array returned is a buffer that the next call overwrites.
        """
        x = self._first.read(i, j)                  # the image before (i, j): nothing to store
        for step in self._steps:
            x = step(x, i, j)
        return x

    def prefill(self, images, upto):
        """Fill the caches at every pixel before raster index ``upto`` from given ``images``.

        Runs the model's own layers (a batched forward pass) on the rows up to
        the one that holds pixel ``upto``: a causal layer never reads a lower
        row, so cropping the image below changes nothing above. The pixels of
        that last row from ``upto`` on go through the layers too, but nothing
        before ``upto`` depends on them, and their activations are not stored.

        Args:
            images: (B, H, W) integer levels, final before ``upto``.
            upto: raster index in [0, H*W].
        """
        height, width = self.shape
        if upto <= 0:
            return
        rows = min(upto // width + 1, height)       # the rows before upto, and its own row
        x = self._values[images[:, :rows]][..., None]                   # (B, rows, W, 1)
        self._first.store_before(x, upto)
        model_layers = [self._first.layer] + [s.layer for s in self._steps]
        was_training = [layer.training for layer in model_layers]
        for layer in model_layers:
            layer.eval()                            # no caches for a backward pass
        try:
            x = self._first.layer.forward(x)
            for step in self._steps:
                x = step.full(x, upto)
        finally:
            for layer, mode in zip(model_layers, was_training):
                layer.train(mode)


def _walk(steps):
    """Every step in ``steps``, depth first."""
    for step in steps:
        yield step
        yield from _walk(getattr(step, "steps", ()))


class _MaskedAt:
    """A masked convolution at one pixel: its padded input buffer, tap slices and kept weights."""

    def __init__(self, layer, net):
        self.layer = layer
        batch, (height, width) = net.batch, net.shape
        pad = layer.kernel_size // 2
        channels = layer.in_channels
        self.padded = np.zeros((batch, height + pad, width + 2 * pad, channels), net.dtype)
        self.input = self.padded[:, pad:, pad:pad + width]                # (B, H, W, C_in)
        self.flat = self.padded.reshape(batch, -1)                        # a view, same memory
        # The kept taps of one kernel row are side by side in the buffer (a
        # causal mask keeps whole rows above the centre, and the left part of
        # the centre row), taps x channels contiguous: one slice per kernel row
        # gathers them, in im2col's column order (taps in raster order,
        # channels inside each tap). Offsets are from the window's top-left
        # corner, which for pixel (i, j) is padded position (i, j).
        self.row_stride = (width + 2 * pad) * channels
        self.segments = []                                                # (from, to, col, col + length)
        col = 0
        for r in np.unique(layer.taps[:, 0]):
            c = layer.taps[layer.taps[:, 0] == r, 1]
            if not np.array_equal(c, np.arange(c[0], c[-1] + 1)):
                raise ValueError(f"CachedPixelCNN: the kept taps of kernel row {r} are not "
                                 f"contiguous ({c.tolist()}); expected a causal mask")
            start, length = (r * (width + 2 * pad) + c[0]) * channels, len(c) * channels
            self.segments.append((start, start + length, col, col + length))
            col += length
        self.channels, self.width = channels, width
        self.weights = layer._kept_weights().copy()                        # (T*C_in, C_out)
        self.bias = layer.params["b"].copy()
        self.cols = np.empty((batch, col), net.dtype)                     # (B, T*C_in), im2col's row
        self.out = np.empty((batch, layer.out_channels), net.dtype)

    def read(self, i, j):
        """Output (B, C_out) at (i, j) from the kept taps of the stored input."""
        base = i * self.row_stride + j * self.channels
        for start, stop, col, col_end in self.segments:
            self.cols[:, col:col_end] = self.flat[:, base + start:base + stop]
        np.matmul(self.cols, self.weights, out=self.out)
        self.out += self.bias
        return self.out

    def __call__(self, x, i, j):
        self.input[:, i, j] = x                    # stored first: mask B reads (i, j) itself
        return self.read(i, j)

    def store_before(self, x, upto):
        """Store x (B, rows, W, C_in) at the raster positions before ``upto``."""
        row, col = divmod(upto, self.width)
        self.input[:, :row] = x[:, :row]
        if col:
            self.input[:, row, :col] = x[:, row, :col]

    def full(self, x, upto):
        self.store_before(x, upto)
        return self.layer.forward(x)


class _DenseAt:
    """A 1x1 convolution at one pixel: a (B, C_in) @ (C_in, C_out) product."""

    def __init__(self, layer, batch):
        self.layer = layer
        self.weights = layer.params["W"].reshape(layer.in_channels, layer.out_channels).copy()
        self.bias = layer.params["b"].copy()
        self.out = np.empty((batch, layer.out_channels), self.weights.dtype)

    def __call__(self, x, i, j):
        np.matmul(x, self.weights, out=self.out)
        self.out += self.bias
        return self.out

    def full(self, x, upto):
        return self.layer.forward(x)


class _ReluAt:
    """A ReLU at one pixel, into its own buffer (allocated at the first call,
    when the width of its input is known)."""

    def __init__(self, layer):
        self.layer = layer
        self.out = None

    def __call__(self, x, i, j):
        if self.out is None:
            self.out = np.empty_like(x)
        return np.maximum(x, 0, out=self.out)

    def full(self, x, upto):
        return self.layer.forward(x)


class _SequentialAt:
    """Children one after another, at one pixel or (``full``) on whole rows."""

    def __init__(self, layer, steps):
        self.layer, self.steps = layer, steps

    def __call__(self, x, i, j):
        for step in self.steps:
            x = step(x, i, j)
        return x

    def full(self, x, upto):
        for step in self.steps:
            x = step.full(x, upto)
        return x


class _ResidualAt(_SequentialAt):
    """x + branch(x) at one pixel."""

    def __init__(self, layer, steps, batch, dtype):
        super().__init__(layer, steps)
        self.out = np.empty((batch, 2 * layer.h), dtype)        # the residual stream, 2h wide

    def __call__(self, x, i, j):
        return np.add(x, super().__call__(x, i, j), out=self.out)

    def full(self, x, upto):
        return x + super().full(x, upto)


# --------------------------------------------------------------------------- checks


def _check_model(model):
    if not isinstance(model, PixelCNN):
        raise TypeError(f"expected a PixelCNN model, got {type(model).__name__}")


def _check_shape(shape):
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be (height, width), got {shape!r}") from None
    if len(shape) != 2:
        raise ValueError(f"shape must be (height, width), got {shape}")
    for size in shape:
        check_positive_int(size, "shape")
    return tuple(int(s) for s in shape)


def _check_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}; expected one of {METHODS}")


def _check_images(images, levels):
    if not isinstance(images, np.ndarray) or not np.issubdtype(images.dtype, np.integer):
        got = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise TypeError(f"complete: images must be an integer NumPy array of levels (N, H, W), "
                        f"got {got}; quantize grey values with npixelcnn.quantize(images, {levels})")
    if images.ndim != 3 or 0 in images.shape:
        raise ValueError(f"complete: images must be (N, H, W) with N, H, W >= 1, got shape {images.shape}")
    if images.min() < 0 or images.max() > levels - 1:
        raise ValueError(f"complete: images must hold levels in [0, {levels - 1}] for this "
                         f"{levels}-level model, got values from {images.min()} to {images.max()}")
    return images


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
