"""The step protocol: what the cached samplers need from a layer to compute it one pixel at a time.

A cached sampler gives every layer of ``model.pixel_layers()`` a *step*, an
object that computes that layer at one pixel (i, j) for the B images of a
batch and remembers what later pixels will read. It chooses the step by the
layer's kind (its class), never by its name. There are two flavours of step,
each with its own table of kinds:

* :class:`PlainStep`, for :class:`~npixelcnn.plain_sampler.PlainCachedPixelCNN`:
  each step written as the maths (:mod:`npixelcnn.plain_steps`);
* :class:`FastStep`, for :class:`~npixelcnn.cached_sampler.CachedPixelCNN`:
  the same computations, arranged for speed (:mod:`npixelcnn.pixel_steps`).

A step class registers itself for a kind of layer where it is defined, the way
a model registers its architecture with ``arch=``::

    class ReLUStep(PlainStep, layer=ReLU):
        def at(self, x, i, j):
            return np.maximum(x, 0)

A new kind of layer brings its steps in its own module
(:mod:`npixelcnn.gated_steps` for the Gated PixelCNN's layers); nothing else
changes. Importing a module that defines step classes fills the tables, and
changes nothing else in the process.
"""

import numpy as np

from .masks import channel_mask


class PixelStep:
    """One layer at one pixel: the protocol every step follows.

    The sampler calls, at every pixel (i, j) in raster order:

    * ``x = first.compute(i, j)`` for the model's first layer, which reads the
      image before (i, j): the pixels stored with ``first.store_pixel``;
    * ``x = step.at(x, i, j)`` for every later layer, x being the previous
      layer's output at (i, j);
    * ``first.store_pixel(i, j, values)`` once the level of (i, j) is drawn.

    A colour image (C sub-pixels, R, G, B) makes that round once per sub-pixel of
    (i, j): compute and ``at`` at the same (i, j) C times, the first before anything
    of (i, j) is stored, each later one after one more sub-pixel is stored. The two
    flavours differ there:

    * a plain step simply computes (and keeps) its whole output at (i, j) again;
    * a fast step is told the round, ``compute(i, j, g)`` and ``at(x, i, j, g)``
      (not in grey: ``compute(i, j)``, ``at(x, i, j)``, so a step written for grey
      models needs no g), and computes only its output's group g at (i, j): x holds
      the input's group g new (the other columns may hold anything), and the
      groups < g of its input there, which group g may read, it kept itself in
      the earlier rounds (:mod:`npixelcnn.pixel_steps`).

    Either way, the last round's values are final, and stale values in a step's
    memory at (i, j) never reach a result (the comment in the cached loop of
    :mod:`npixelcnn.sampling` says why).

    Before the first pixel, once every step is made, the sampler calls
    ``step.condition(labels)`` on every step (children included, :func:`walk`):
    labels (B,) ints, the class of each image of a class-conditional model
    (``model.classes``), or None for a model without classes. A step whose layer
    adds a bias per class (a gated layer, :mod:`npixelcnn.gated_steps`) keeps the
    rows of its images' classes there; every other step ignores it.

    What flows from step to step is the layer's output at one pixel: (B, C)
    for an ordinary layer (the fast flavour adds a column of ones), a pair
    (v_row, h) between the gated layers of the Gated PixelCNN.

    Everything but :meth:`at` has a default here, right for the layers that
    need nothing more (a ReLU, a 1x1 convolution): a subclass overrides only
    what its layer needs. The fast flavour adds ``full`` (:class:`FastStep`),
    which fills a completion's given part in one batched pass; the plain
    sampler runs that part through ``at`` like the rest.
    """

    registry = None
    """{layer class: step class}, one table per flavour, set by the flavour's base class
    (:class:`PlainStep`, :class:`FastStep`) and filled by ``layer=`` in a class statement."""

    flavour, sampler = None, "a cached sampler"
    """The flavour's name ("plain", "fast") and that of the sampler that runs it, for error messages."""

    reads_own_pixel = True
    """Does the output at (i, j) read the layer's input at (i, j)? The model's first layer
    must not (mask A: the pixel is not drawn yet). True unless a step knows better, so a
    layer that cannot be a first layer is refused as one."""

    inputs = ()
    """The arrays in which the step keeps its input for later pixels (views without
    their zero padding), and a fast step in colour what it keeps of its pixel for the
    later rounds; the tests fill them with garbage to show that nothing is read before
    it is written. A step that keeps nothing: ()."""

    children = ()
    """The steps of a container layer (a sequence, a residual connection), in order;
    () for a leaf layer."""

    def __init_subclass__(cls, layer=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if layer is None:
            return
        if cls.registry is None:
            raise TypeError(f"{cls.__name__}: register a step with a flavour, as a subclass of "
                            f"PlainStep or FastStep, not of PixelStep itself")
        if layer in cls.registry:
            raise ValueError(f"two {cls.flavour} steps for {layer.__name__}: "
                             f"{cls.registry[layer].__name__} and {cls.__name__}")
        cls.registry[layer] = cls

    @classmethod
    def for_layer(cls, layer, *args):
        """The step of this flavour for ``layer``: the step class registered for the
        nearest class of its ancestry (a MaskedConv2D gets the Conv2D step)."""
        for kind in type(layer).__mro__:
            if kind in cls.registry:
                return cls.registry[kind].make(layer, *args)
        known = sorted(kind.__name__ for kind in cls.registry)
        raise TypeError(f"{cls.sampler} cannot compute a {type(layer).__name__} one pixel at a time; "
                        f"it knows {known}")

    @classmethod
    def make(cls, layer, *args):
        """A step of this class for ``layer``. A step class whose layer kind has variants
        (the fast step of a 1x1 convolution differs from a k x k one's) overrides it
        to pick one."""
        return cls(layer, *args)

    def __init__(self, layer):
        self.layer = layer

    def at(self, x, i, j):
        """The layer's output at (i, j) from its input there, x; keeps what later pixels read."""
        raise NotImplementedError(f"{type(self).__name__} must define at(x, i, j)")

    def condition(self, labels):
        """Keep what the images' classes (B,) ints add to this layer (None: a model without
        classes). Called once, before the first pixel. Default: nothing, for a layer that
        has no bias per class."""

    def store_pixel(self, i, j, values):
        """First layer only: store the image's values (B, C_in) at (i, j): a pixel's C_in
        sub-pixels, those drawn so far and whatever the others hold (never read)."""
        raise TypeError(f"{self.sampler}: {type(self.layer).__name__} cannot be a model's first layer")

    def compute(self, i, j):
        """First layer only: its output at (i, j), from the pixels stored before (i, j)."""
        raise TypeError(f"{self.sampler}: {type(self.layer).__name__} cannot be a model's first layer")


class PlainStep(PixelStep):
    """The flavour of :class:`~npixelcnn.plain_sampler.PlainCachedPixelCNN`: steps written
    as the maths, x (B, C_in) -> y (B, C_out).

    Made as ``StepClass(layer, shape, batch, dtype)``: the image shape (H, W), B, and the
    model's dtype, for the arrays the step keeps.
    """

    registry = {}
    flavour, sampler = "plain", "PlainCachedPixelCNN"

    def __init__(self, layer, shape, batch, dtype):
        super().__init__(layer)


class FastStep(PixelStep):
    """The flavour of :class:`~npixelcnn.cached_sampler.CachedPixelCNN`: rows that end in a
    column of ones, x (B, C_in + 1) -> y (B, C_out + 1), written into buffers made once.

    Made as ``StepClass(layer, shape, rows)``: the image shape (H, W) and the
    :class:`~npixelcnn.pixel_steps.Rows` its outputs are written into (``rows.groups``:
    the model's sub-pixels, one round each). In colour ``at(x, i, j, g)`` and
    ``compute(i, j, g)`` take the round g and compute the output's group g (in grey no g
    is passed: the built-in steps default to g = 0, every column); ``at`` may return a row
    that its next call overwrites.
    """

    registry = {}
    flavour, sampler = "fast", "CachedPixelCNN"
    order_error = None
    """Why the step cannot compute its layer sub-pixel by sub-pixel in a colour model (its
    channels are not split into the sub-pixels' ordered groups), or None; the sampler
    raises it (:func:`check_sub_pixel_order`) once the first layer is checked."""
    in_place = False
    """May ``at`` overwrite its input row and return it? Set by ``pixel_steps.allow_in_place``
    for the steps that can, where it is safe."""

    def __init__(self, layer, shape, rows):
        super().__init__(layer)

    def full(self, x, upto):
        """The layer on whole rows, x (B, rows, W, C_in) -> (B, rows, W, C_out), keeping what
        the pixels from raster index ``upto`` on will read (the prefill of a completion).
        Default, for a step that keeps nothing: the layer's own forward pass."""
        return self.layer.forward(x)


def walk(steps):
    """Every step, the children of sequences and residual connections included, in order."""
    for step in steps:
        yield step
        yield from walk(step.children)


def check_causal_taps(layer, sampler):
    """Raise ValueError unless every kept tap of the convolution ``layer`` is at or before
    the centre of its window in raster order: only then can it be computed pixel by pixel.
    The taps are checked where they read, ``layer.window_taps`` (d pixels apart when dilated)."""
    taps = [tuple(t) for t in layer.window_taps.tolist()]
    centre = (layer.window // 2, layer.window // 2)
    if any(t > centre for t in taps):               # (row, col) after the centre in raster order
        raise ValueError(f"{sampler}: {type(layer).__name__} with taps {taps} in its window reads pixels "
                         f"after the one it computes; only causal convolutions can be computed "
                         f"pixel by pixel")
    return centre in taps                           # does it read its own pixel (mask B)?


def check_first_step(first, model, sampler):
    """Raise ValueError unless the model's first layer leaves what it predicts unread.

    A grey model's first layer must not read its own pixel at all (mask A): the
    pixel is not drawn yet. A colour model's may read its own pixel, but only
    through a centre tap whose channel rule is strictly earlier (mask A with
    channel groups, :mod:`npixelcnn.masks`): its outputs of group g, which carry
    sub-pixel g, read the image's sub-pixels g' < g there, and the samplers
    compute sub-pixel g after storing those (:func:`reads_only_earlier_sub_pixels`).
    """
    if not first.reads_own_pixel:
        return
    if model.in_channels == 1:
        raise ValueError(f"{sampler}: the first layer of {type(model).__name__} must be a "
                         f"convolution that does not read the pixel it predicts (mask A), "
                         f"got {first.layer!r}")
    if not reads_only_earlier_sub_pixels(first.layer, model.in_channels):
        raise ValueError(f"{sampler}: the first layer of {type(model).__name__} must not read the "
                         f"sub-pixel it predicts: at its own pixel an output of group g may read only "
                         f"the image's channels g' < g (mask A with in_groups = [0, ..., "
                         f"{model.in_channels - 1}] and out_groups), got {first.layer!r}")


def check_sub_pixel_order(steps):
    """Raise ValueError if a fast step (children included) cannot be computed sub-pixel by
    sub-pixel: its ``order_error`` says why (:func:`~npixelcnn.pixel_steps.sub_pixel_order_error`)."""
    for step in walk(steps):
        if step.order_error is not None:
            raise ValueError(step.order_error)


def reads_only_earlier_sub_pixels(layer, channels):
    """Does ``layer``, a first layer of a model of ``channels`` sub-pixels, read its own
    pixel only through a centre tap that connects output group g to input channels g' < g?

    That is what makes it computable sub-pixel by sub-pixel: sub-pixel c's outputs
    (group c, and every later layer's group c, mask B: g' <= g) then depend on the
    image's sub-pixels before c at (i, j) and on nothing else there. The layer must
    say so itself, as a :class:`~npixelcnn.layers.MaskedConv2D` with channel groups
    and a colour :class:`~npixelcnn.gated.GatedLayer` do: ``centre_mask`` (C_in, C_out),
    ``in_groups`` (C_in,), which must be the image's channels in order (sub-pixel c is
    group c), and ``out_groups`` (C_out,). A layer that declares none of them reads
    every channel of its pixel.
    """
    try:
        centre, in_groups, out_groups = layer.centre_mask, layer.in_groups, layer.out_groups
    except AttributeError:                  # no channel groups declared: the whole pixel
        return False
    if centre is None or in_groups is None or out_groups is None:
        return False
    if not np.array_equal(in_groups, np.arange(channels)):
        return False
    earlier = channel_mask(in_groups, out_groups, "A")                   # g' < g: mask A's rule
    return not (np.asarray(centre, bool) & ~earlier).any()


def check_sub_pixel(sub_pixel, channels, sampler):
    """``sub_pixel`` as a sampler's ``outputs_at`` takes it: an int c in [0, C), C the sub-pixels
    of a pixel; else a clear error naming the sampler. Returns it."""
    if not (isinstance(sub_pixel, (int, np.integer)) and 0 <= sub_pixel < channels):
        raise ValueError(f"{sampler}.outputs_at: sub_pixel must be an int in [0, {channels}), got {sub_pixel!r}")
    return sub_pixel


def check_pixel_levels(levels, batch, channels, sampler):
    """``levels`` as a sampler's ``set_pixel`` takes them, one pixel of B images: (B, C), C the
    sub-pixels (grey: (B,) too); else a clear error, rather than values broadcast over channels."""
    shape = np.shape(levels)
    if shape != (batch, channels) and not (channels == 1 and shape == (batch,)):
        grey = f" or ({batch},)" if channels == 1 else ""
        raise ValueError(f"{sampler}.set_pixel: expected the levels of one pixel of {batch} image(s), "
                         f"({batch}, {channels}){grey}, got shape {shape}")
    return levels
