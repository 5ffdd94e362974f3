"""The cached sampler, plain: every layer computed once per pixel, written to be read.

The naive loop runs the whole model once per pixel. But every layer's
activation at pixel p depends only on pixels before p (the masks see to that),
so once the pixels before p are drawn it is final. A cached sampler computes
each layer at the one pixel being generated and keeps what later pixels will
read; a whole image then costs about one full forward pass (the idea of Fast
PixelCNN++, Ramachandran et al., 2017, "Fast Generation for Convolutional
Autoregressive Models").

:class:`PlainCachedPixelCNN` is that idea and nothing else: each layer of the
model gets a step (:mod:`npixelcnn.plain_steps`, :mod:`npixelcnn.gated_steps`)
written as the maths. :class:`~npixelcnn.cached_sampler.CachedPixelCNN`
computes the same numbers faster; the tests hold the two, and the naive loop,
equal. :mod:`npixelcnn.sampling` drives either, pixel by pixel
(``method="plain-cached"`` or ``"cached"``), and in colour sub-pixel by
sub-pixel: :meth:`~PlainCachedPixelCNN.outputs_at` once per sub-pixel of a pixel,
after :meth:`~PlainCachedPixelCNN.set_pixel` has stored the ones drawn before it.
"""

import numpy as np

from .autoregressive import check_model
from .conditioning import check_labels
from .data import to_model_input
from .steps import PlainStep, check_first_step, check_pixel_levels, check_sub_pixel, walk
from .validation import check_image_shape, check_positive_int

# The steps of every layer kind, each registered where it is defined: importing
# these modules fills PlainStep.registry.
from . import gated_steps, plain_steps  # noqa: F401


class PlainCachedPixelCNN:
    """A model evaluated one pixel at a time, keeping what later pixels read.

    At pixel (i, j), in raster order, :meth:`outputs_at` runs every layer of the
    model at that one position, on all B images at once: the first layer reads
    the pixels drawn so far (stored by :meth:`set_pixel`), and each later
    layer's step takes the previous layer's output at (i, j), keeps it if later
    pixels will read it, and gives its own.

    In colour (C = ``model.in_channels`` sub-pixels, R, G, B) the first layer reads
    the sub-pixels of (i, j) stored so far, and sub-pixel c's outputs are right once
    those before c are stored: the driver calls ``outputs_at(i, j, sub_pixel=c)`` at
    (i, j) once per sub-pixel, the first time before anything of (i, j) is stored, then
    each time after :meth:`set_pixel`, and every step computes (and keeps) its whole
    output at (i, j) again: C times a grey pixel's work, which the fast sampler
    splits over the sub-pixels instead (:mod:`npixelcnn.cached_sampler`).

    Args:
        model: an :class:`~npixelcnn.autoregressive.AutoregressiveModel` whose first
            layer does not read what it predicts: a grey model's not its own pixel
            (mask A), a colour model's not the sub-pixels of its own pixel from the
            one it predicts on (:func:`~npixelcnn.steps.check_first_step`). The steps
            copy its weights when they are made.
        batch: B, the number of images generated together.
        shape: (H, W).
        labels: (B,) ints in [0, model.classes), the class of each image, for a
            class-conditional model (and only for one); the steps keep what each
            class adds to their layer (``step.condition``, :mod:`npixelcnn.steps`).

    Attributes:
        steps: one step per entry of ``model.pixel_layers()``.
        inputs: the input images the steps keep, (B, H, W, C_in) each.
        labels: (B,) np.intp, or None for a model without classes.
        channels: C, the sub-pixels of a pixel (``model.in_channels``).
    """

    def __init__(self, model, batch, shape, labels=None):
        check_model(model, "PlainCachedPixelCNN expects")
        check_positive_int(batch, "batch")
        self.shape = check_image_shape(shape)
        self.labels = check_labels(labels, model.classes, batch, "PlainCachedPixelCNN")
        self.batch, self.channels = batch, model.in_channels
        self.steps = [PlainStep.for_layer(layer, self.shape, batch, model.dtype)
                      for layer in model.pixel_layers()]
        check_first_step(self.steps[0], model, "PlainCachedPixelCNN")
        for step in walk(self.steps):
            step.condition(self.labels)
        self.inputs = [image for step in walk(self.steps) for image in step.inputs]
        # The model's input for each level, as the naive loop makes it: level / (L - 1).
        every_level = np.arange(model.levels).reshape(1, 1, -1)
        self.values = to_model_input(every_level, model.levels).reshape(-1).astype(model.dtype)

    def set_pixel(self, i, j, levels):
        """Write the levels (B, C) of pixel (i, j) (grey: (B,) or (B, 1)) into the image the
        first layer reads: in colour, the sub-pixels drawn so far (the others are not read)."""
        values = self.values[check_pixel_levels(levels, self.batch, self.channels, "PlainCachedPixelCNN")]
        self.steps[0].store_pixel(i, j, values.reshape(self.batch, self.channels))

    def outputs_at(self, i, j, sub_pixel=None):
        """The model's outputs at pixel (i, j), (B, C * P), P = ``model.output.channels``
        (the logits (B, L) of a grey softmax model): sub-pixel c's P numbers at
        [c*P:(c+1)*P]; with ``sub_pixel=c``, those alone, (B, P).

        Requires every pixel before (i, j) to be set (:meth:`set_pixel`) and
        computed (:meth:`outputs_at`): then the result equals
        ``model.forward(x)[:, i, j]`` (``model.forward(x, labels)``) up to float rounding;
        in colour, sub-pixel c's part does once the sub-pixels of (i, j) before c are set.
        Every call computes every layer at (i, j) whole, whatever ``sub_pixel`` asks for
        (the fast sampler computes sub-pixel c's groups alone).
        """
        x = self.steps[0].compute(i, j)       # the image at (i, j) is not drawn yet: not read
        for step in self.steps[1:]:
            x = step.at(x, i, j)
        if sub_pixel is None:
            return x
        c = check_sub_pixel(sub_pixel, self.channels, "PlainCachedPixelCNN")
        return x.reshape(self.batch, self.channels, -1)[:, c]

    def prefill(self, images, upto):
        """Run every pixel before raster index ``upto`` through the steps, with the levels
        of ``images`` (B, H, W) grey or (B, H, W, C) there: the given part of a completion
        goes through the same steps as the drawn part (the fast sampler runs it as one
        batched forward pass), in colour once per sub-pixel as when they are drawn."""
        for q in range(upto):
            i, j = divmod(q, self.shape[1])
            for _ in range(self.channels):
                self.outputs_at(i, j)
                self.set_pixel(i, j, images[:, i, j])
