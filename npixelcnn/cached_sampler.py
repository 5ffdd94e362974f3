"""The cached sampler, fast: one pixel's worth of every layer per generated pixel.

The idea, and its plain version, are in :mod:`npixelcnn.plain_sampler`:
every layer's activation at pixel p depends only on pixels before p, so each
layer is computed once, at the pixel being generated, keeping what later
pixels will read. :class:`CachedPixelCNN` computes the same numbers with the
fast steps of :mod:`npixelcnn.pixel_steps` and :mod:`npixelcnn.gated_steps`,
and fills the part of a completion that is given in one batched forward pass.
:mod:`npixelcnn.sampling` drives it pixel by pixel (``method="cached"``), and in
colour sub-pixel by sub-pixel: each layer at a pixel is computed once, its
channels' groups split over the sub-pixels' rounds; the tests hold it equal to
the plain sampler and to the naive loop.
"""

import numpy as np

from .autoregressive import check_model
from .conditioning import check_labels
from .data import to_model_input
from .pixel_steps import Rows, allow_in_place
from .steps import FastStep, check_first_step, check_pixel_levels, check_sub_pixel, check_sub_pixel_order, walk
from .validation import check_image_shape, check_positive_int

# The steps of every layer kind, each registered where it is defined: importing
# these modules fills FastStep.registry.
from . import gated_steps, pixel_steps  # noqa: F401


class CachedPixelCNN:
    """A model evaluated one pixel at a time, keeping what later pixels read.

    At pixel (i, j), in raster order, :meth:`outputs_at` runs every layer of the
    model at that one position, on all B images at once. For the PixelCNN:

    * the 7x7 mask-A convolution reads the image at its kept taps (all before
      (i, j); in colour also the centre, the sub-pixels of (i, j) stored so far)
      and gives the residual stream x (B, 2h);
    * each residual block: h = relu(x) @ W1 + b1; relu(h) is stored at (i, j)
      for the 3x3 mask-B convolution, which then reads its kept taps (at or
      before (i, j)); x = x + relu(that) @ W3 + b3;
    * the head: relu, 1x1, relu, 1x1, 1x1 gives the outputs (B, C_out): logits, or a mixture's parameters.

    Only the causal convolutions read other pixels than their own, so only
    their INPUTS are kept, and only the rows they can still read: a causal
    window at (i, j) reaches rows i - p .. i, p = window // 2 (k//2 for a k x k
    kernel, (k//2) * d dilated by d), so each such layer keeps its last p + 1
    input rows in a ring (:class:`~npixelcnn.pixel_steps.CausalConvAt`).
    The output at (i, j) is then im2col for one pixel (a copy per kernel row
    into a (B, T*C_in) row) and one matrix product with the layer's kept
    weights: the same products as the full forward pass, one pixel at a time.

    A step costs those products plus a few small NumPy calls per layer, each
    with a fixed cost that does not shrink with the rows (``python
    benchmarks/bench_sampling.py --profile`` shows where the time goes). What
    keeps the rest small:

    * the products run on one BLAS thread (``blas.one_blas_thread``, set by the driver in sampling.py);
    * every row passed from layer to layer, (B, C + 1), carries a trailing 1,
      the input that multiplies the bias, folded into the weights as one more
      row: ``[x, 1] @ [[W], [b]] = x @ W + b``. That saves the bias additions,
      and a ReLU leaves the 1 as it is;
    * each step writes into a buffer of its own, made once, and ReLUs compare
      against a fixed array of zeros;
    * the rings are pixel-major, ``(p + 1, W + 2p, B, C_in)``: one
      pixel's B x C_in values are contiguous. They are small (15 MB instead
      of 214 MB for whole images in the seed architecture), so no step
      stalls on fresh memory pages.

    In colour (C = ``model.in_channels`` sub-pixels, R, G, B) every layer's channels
    are C ordered groups (:mod:`npixelcnn.masks`), and group g of any layer at (i, j)
    depends on the sub-pixels before g there (and on earlier pixels) only. The driver
    calls ``outputs_at(i, j, sub_pixel=c)`` for c = 0, 1, ..., C - 1 in turn, the
    first time before anything of (i, j) is stored, then each time after
    :meth:`set_pixel` has stored one more sub-pixel. Round c computes, in every
    layer, only the output columns of group c, reading its input's groups <= c at
    (i, j) (those < c computed, final, in earlier rounds; the first layer: the
    image's sub-pixels < c) and everything of earlier pixels. Each layer at a pixel
    is thus computed once, split over the rounds: about the multiply-adds of a grey
    pixel (a little less: the centre tap's zero weights of later groups are not
    multiplied), in C times as many small NumPy calls. A step that reads its own
    pixel keeps what it read of it in earlier rounds (:mod:`npixelcnn.pixel_steps`);
    after the last round every group at (i, j) is final and stored for later pixels.

    Args:
        model: an :class:`~npixelcnn.autoregressive.AutoregressiveModel` whose
            first layer does not read what it predicts: a grey model's not its
            own pixel (mask A), a colour model's not the sub-pixels of its own
            pixel from the one it predicts on
            (:func:`~npixelcnn.steps.check_first_step`). The steps copy its
            weights: later changes to the model are not seen, except by
            :meth:`prefill`, which runs the model's own layers.
        batch: B, the number of images generated together.
        shape: (H, W).
        labels: (B,) ints in [0, model.classes), the class of each image, for a
            class-conditional model (and only for one); the steps keep what each
            class adds to their layer (``step.condition``, :mod:`npixelcnn.steps`).

    Attributes:
        steps: one step per entry of ``model.pixel_layers()``.
        labels: (B,) np.intp, or None for a model without classes.
        channels: C, the sub-pixels of a pixel (``model.in_channels``).
        inputs: what the steps keep of their inputs (rings without their
            padding); for a causal convolution (p + 1, W, B, C_in), image
            row r in slot r % (p + 1). ``inputs[0]`` holds the image
            (level / (L - 1)), C_in = C. In colour also what a step keeps of
            its input at the current pixel for the later rounds ((B, C_in) rows).
    """

    def __init__(self, model, batch, shape, labels=None):
        check_model(model, "CachedPixelCNN expects")
        check_positive_int(batch, "batch")
        self.shape = check_image_shape(shape)
        self.labels = check_labels(labels, model.classes, batch, "CachedPixelCNN")
        self.model, self.batch, self.levels, self.dtype = model, batch, model.levels, model.dtype
        self.channels = model.in_channels
        rows = Rows(batch, self.dtype, groups=self.channels)       # one group, and round, per sub-pixel
        self.steps = [FastStep.for_layer(layer, self.shape, rows) for layer in model.pixel_layers()]
        allow_in_place(self.steps)
        self.first = self.steps[0]
        check_first_step(self.first, model, "CachedPixelCNN")
        check_sub_pixel_order(self.steps)
        self.output_width = model.output.channels                 # P, a sub-pixel's outputs
        self._last_round = None                                   # (i, j, c) of the last round computed
        for step in walk(self.steps):
            step.condition(self.labels)
        self.inputs = [ring for step in walk(self.steps) for ring in step.inputs]
        # The model's input for each level, from to_model_input itself (then the
        # model's dtype, as the naive loop does), so both loops see the same numbers.
        every_level = np.arange(model.levels).reshape(1, 1, model.levels)
        self._values = to_model_input(every_level, model.levels).reshape(-1).astype(self.dtype)

    def set_pixel(self, i, j, levels):
        """Write the levels (B, C) of pixel (i, j) (grey: (B,) or (B, 1)) into the image that
        the first layer reads: in colour, the sub-pixels drawn so far (the others are not read)."""
        values = self._values[check_pixel_levels(levels, self.batch, self.channels, "CachedPixelCNN")]
        self.first.store_pixel(i, j, values.reshape(self.batch, self.channels))

    def outputs_at(self, i, j, sub_pixel=None):
        """The model's outputs at pixel (i, j): sub-pixel c's P numbers (B, P) with
        ``sub_pixel=c``, P = ``model.output.channels`` (grey: c = 0, the logits (B, L) of a
        softmax model); every sub-pixel's, (B, C * P), sub-pixel c's at [c*P:(c+1)*P], without.

        Requires every pixel before (i, j) to be set (:meth:`set_pixel`) and
        every pixel before it to have been computed (:meth:`outputs_at` or
        :meth:`prefill`): then the result equals ``model.forward(x)[:, i, j]``
        (``model.forward(x, labels)``) up to float rounding; in colour, sub-pixel c's
        part does once the sub-pixels of (i, j) before c are set. In colour, sub-pixel
        c > 0 of (i, j) must come right after sub-pixel c - 1 of (i, j) (the round
        before computed the groups it reads); without ``sub_pixel`` every round runs
        in turn, from the sub-pixels of (i, j) set so far. Stores the layers' inputs at
        (i, j) that later pixels read. The array returned is a view of a buffer that the
        next call overwrites.
        """
        if sub_pixel is None:
            for c in range(self.channels):
                y = self._round(i, j, c)
            return y[:, :-1]                          # without the trailing 1: (B, C * P)
        check_sub_pixel(sub_pixel, self.channels, "CachedPixelCNN")
        if sub_pixel > 0 and self._last_round != (i, j, sub_pixel - 1):
            raise ValueError(f"CachedPixelCNN.outputs_at: sub-pixel {sub_pixel} of pixel {(i, j)} must come "
                             f"right after sub-pixel {sub_pixel - 1} of the same pixel (its round reads the "
                             f"groups the rounds before computed); the last round was {self._last_round}")
        y = self._round(i, j, sub_pixel)
        return y[:, sub_pixel * self.output_width:(sub_pixel + 1) * self.output_width]

    def _round(self, i, j, c):
        """Round c at (i, j): every layer's group c there (grey: c = 0, everything); the last
        layer's row (B, C * P + 1), its group c computed in this round."""
        if self.channels == 1:                # grey: one round, and the steps are not told it
            x = self.first.compute(i, j)      # the image at (i, j) is not drawn yet: not read
            for step in self.steps[1:]:
                x = step.at(x, i, j)
        else:
            x = self.first.compute(i, j, c)   # the image at (i, j): only its sub-pixels before c are read
            for step in self.steps[1:]:
                x = step.at(x, i, j, c)
        self._last_round = (i, j, c)
        return x

    def prefill(self, images, upto):
        """Fill the caches at every pixel before raster index ``upto`` from given ``images``.

        Runs the model's own layers (a batched forward pass) on the rows up to
        the one that holds pixel ``upto``: a causal layer never reads a lower
        row, so cropping the image below changes nothing above. The pixels of
        that last row from ``upto`` on go through the layers too, but nothing
        before ``upto`` depends on them, and their activations are not stored.
        A conditional model's layers get this sampler's labels first
        (``model.condition``): its class biases read them.

        Args:
            images: (B, H, W) grey or (B, H, W, C) integer levels, final before ``upto``.
            upto: raster index in [0, H*W].
        """
        if upto <= 0:
            return
        rows = min(upto // self.shape[1] + 1, self.shape[0])    # the rows before upto, and its own
        x = self._values[images[:, :rows]].reshape(self.batch, rows, self.shape[1], self.channels)
        was_training = self.model.training
        self.model.eval()                                         # no caches for a backward pass
        self.model.condition(self.labels, self.batch)            # step.full runs the layers' forward
        try:
            for step in self.steps:
                x = step.full(x, upto)
        finally:
            self.model.train(was_training)
