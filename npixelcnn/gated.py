"""The Gated PixelCNN (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves and
Kavukcuoglu, 2016, "Conditional Image Generation with PixelCNN Decoders", section 2).

Stacked masked 3x3 convolutions never see a wedge of pixels up and to the right
of the one they predict: the blind spot (lesson 02). The Gated PixelCNN splits
every layer into two stacks that together see every earlier pixel:

* the **vertical stack** convolves a window of the k//2 + 1 rows up to and
  including the current one, all k columns. Its output at row i depends on
  rows <= i, right of the pixel too, so it reaches the horizontal stack only
  **shifted down by one row**: through it, a pixel sees the rows above it;
* the **horizontal stack** convolves the current row, the k//2 + 1 pixels up
  to the current one (without it in the first layer of a grey model): it sees
  the pixels to the left. It adds the shifted vertical features through a 1x1 link.

Both stacks use the **gated activation** tanh(a) * sigmoid(b) over the two
halves of their channels, and the horizontal stack ends in a 1x1 convolution
with a residual connection (none in the first layer, whose input is the image).
Data flows from layer to layer as a pair (v, h).

A model with ``classes=K`` models p(x | y): every layer adds a learned bias per
class to both stacks' pre-activations, inside both halves of their gates
(the paper's equation 4; :class:`~npixelcnn.conditioning.ClassBias`).

**Colour** (the channel masks of "Pixel Recurrent Neural Networks", section 3.4, put
where the Gated PixelCNN needs them, in the horizontal stack): a pixel is three
sub-pixels, R, then G, then B, and every channel of a layer belongs to one of them
(:mod:`npixelcnn.masks`). The vertical stack and the link carry only the rows
above, which every sub-pixel may read: they are the same as for grey images. The
horizontal stack's row convolution keeps its centre tap in every layer, the first
included, under a channel rule: in the first layer (mask A) an output of group g
reads the image's sub-pixels g' < g at its own pixel (R none, G the R, B the R and
G), after it (mask B) g' <= g. Its 2C outputs are the gate's two halves, a and b,
cut into the same groups, so that a_f and b_f, and the gate's output f, belong to
one sub-pixel; the horizontal 1x1 ``out`` and the head's 1x1s keep the groups too
(mask B). ``channel_order="independent"`` is the baseline without connections
between a pixel's sub-pixels: g' == g under mask B, and no centre at all in the
first layer.

A layer may be **dilated** (as in the Gated PixelCNN of the UvA deep learning
tutorials): both stacks keep their taps, d pixels apart (:mod:`npixelcnn.masks`).
The vertical stack at (i, j) then reads rows i - (k//2) d .. i, every d-th, at
columns j - (k//2) d .. j + (k//2) d; the horizontal stack reads columns
j - (k//2) d .. j of row i, every d-th. The shift down stays right: a tap's
row offset is (r - k//2) d with r <= k//2, never above 0, so the vertical
stack at row i still reads no row below i, and after the shift a pixel sees
only rows above its own.
"""

import numpy as np

from . import ops
from .autoregressive import AutoregressiveModel, Preset
from .blocks import ordered_conv
from .conditioning import ClassBias
from .layers import Conv2D, Layer, Module, ReLU, as_rng
from .masks import channel_groups, channel_mask, check_channel_order, check_dilation, check_kernel_size
from .validation import check_dilations, check_gradient, check_levels, check_positive_int

_NO_CACHE = "{}.backward called before forward in training mode"


def vertical_taps(kernel_size):
    """The taps of the vertical stack: rows 0 .. k//2 (up to the centre row), every column."""
    p = kernel_size // 2
    return [(r, c) for r in range(p + 1) for c in range(kernel_size)]


def horizontal_taps(kernel_size, include_centre):
    """The taps of the horizontal stack: the centre row, columns up to the centre
    (the centre itself only when ``include_centre``: every layer but the first)."""
    p = kernel_size // 2
    return [(p, c) for c in range(p + 1 if include_centre else p)]


def gate_groups(channels, groups):
    """The group (sub-pixel) of each of the 2C channels that a gate splits into its halves
    a and b: channel f of each half in the group of the gate's output channel f.

    Returns:
        int array (2C,): ``channel_groups(C, groups)`` twice.
    """
    return np.concatenate([channel_groups(channels, groups)] * 2)


class HorizontalConv(Conv2D):
    """The horizontal stack's row convolution, C_in -> 2C (the gate's two halves).

    It reads the current row up to the pixel. Grey (one group): the centre tap in
    every layer but the first (mask B after it, mask A in it). Colour (``groups``
    sub-pixels): the centre tap in every layer, its weights kept by
    :func:`~npixelcnn.masks.channel_mask` (mask A in the first layer, B after), unless
    that keeps none of them (the first layer of the "independent" order), when the
    tap is dropped as for grey.

    Args:
        in_channels: C_in; channels: C (the output has 2C).
        kernel_size, rng, dilation: as for :class:`~npixelcnn.layers.Conv2D`.
        first: the layer is the model's first (mask A), else mask B.
        groups: the sub-pixels of a colour model (3), or 1 for grey.
        channel_order: "ordered" or "independent" (:mod:`npixelcnn.masks`).

    Attributes: as a :class:`~npixelcnn.layers.MaskedConv2D`'s, what it reads of its own
    pixel: ``mask_type`` ("A" first, else "B"), ``channel_order``, ``in_groups`` (C_in,)
    and ``out_groups`` (2C,) (None for grey), and ``centre_mask`` (C_in, 2C) (None where
    the taps say it all).
    """

    def __init__(self, in_channels, channels, kernel_size, first, rng=None, dilation=1, groups=1,
                 channel_order="ordered"):
        mask_type = "A" if first else "B"
        in_groups = out_groups = centre_mask = None
        include_centre = not first
        if groups > 1:
            in_groups, out_groups = channel_groups(in_channels, groups), gate_groups(channels, groups)
            centre_mask = channel_mask(in_groups, out_groups, mask_type, channel_order)
            include_centre = bool(centre_mask.any())
            if not include_centre:
                centre_mask = None                      # no weight at the centre: no centre tap
        self.mask_type, self.channel_order = mask_type, channel_order
        self.in_groups, self.out_groups = in_groups, out_groups
        super().__init__(in_channels, 2 * channels, kernel_size, rng=rng,
                         taps=horizontal_taps(kernel_size, include_centre), dilation=dilation,
                         centre_mask=centre_mask)


def tanh_and_sigmoid(z):
    """tanh(a) and sigmoid(b), a and b the two halves of z's channels (..., 2C): the gate's factors.
    The sigmoid as 0.5 (1 + tanh(b / 2)), which never overflows as exp(-b) can."""
    c = z.shape[-1] // 2
    return np.tanh(z[..., :c]), 0.5 * (1 + np.tanh(0.5 * z[..., c:]))


class Gate(Layer):
    """y = tanh(a) * sigmoid(b), a and b the first and second half of the channels.

    Shapes: x (..., 2C) -> y (..., C).
    """

    def forward(self, x):
        """x (..., 2C) -> y (..., C)."""
        if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating) or x.shape[-1] % 2:
            raise ValueError(f"Gate: expected a floating-point array with an even number of channels, "
                             f"got {getattr(x, 'shape', type(x).__name__)}")
        t, s = tanh_and_sigmoid(x)
        self._cache = (t, s) if self.training else None
        return t * s

    def backward(self, dy):
        """dy (..., C) -> dx (..., 2C): d tanh = 1 - t^2, d sigmoid = s (1 - s)."""
        if self._cache is None:
            raise RuntimeError(_NO_CACHE.format("Gate"))
        t, s = self._cache
        check_gradient(dy, t.shape, t.dtype, "Gate")
        return np.concatenate([dy * s * (1 - t * t), dy * t * s * (1 - s)], axis=-1)


class ShiftDown(Layer):
    """y[:, i] = x[:, i - 1], y[:, 0] = 0: row i sees only what row i - 1 computed.

    Shapes: x (N, H, W, C) -> y (N, H, W, C).
    """

    def forward(self, x):
        """x (N, H, W, C) -> the same, moved down one row (zeros on top)."""
        y = np.zeros_like(x)
        y[:, 1:] = x[:, :-1]
        return y

    def backward(self, dy):
        """dy (N, H, W, C) -> dx, moved up one row (the last row gets no gradient)."""
        dx = np.zeros_like(dy)
        dx[:, :-1] = dy[:, 1:]
        return dx


class GatedLayer(Module):
    """One layer of both stacks: (v, h) -> (v', h').

        v_pre = vertical(v)                                   (N, H, W, 2C)
        v'    = gate(v_pre)
        h_pre = horizontal(h) + link(shift_down(v_pre))       (N, H, W, 2C)
        h'    = h + out(gate(h_pre))          (first layer: out(gate(h_pre)))

    With ``classes``, both gates get the bias of each image's class y:
    v' = gate(v_pre + V_v[y]) and h_pre = horizontal(h) + link(shift_down(v_pre)) + V_h[y].
    (The link reads v_pre without V_v[y]: link(V_v[y]) would be another bias per class,
    which V_h already is, but for row 0, where the shift brings zeros.)

    Args:
        in_channels: C_in of both inputs (in the first layer the image's channels: 1, or 3 in colour).
        channels: C, the width of both stacks.
        kernel_size: odd k >= 3 (the vertical window is (k//2 + 1) x k).
        first: the first layer: its input is the image x, given as an array
            (v = h = x), its horizontal stack does not see the current pixel
            (in colour: only the sub-pixels before each output's own, mask A),
            and it has no residual connection.
        rng: seed or np.random.Generator.
        out_gain: init gain of the horizontal 1x1 output (the residual branch).
        dilation: d >= 1, the distance between the taps of both stacks (1: side by side).
        classes: K, to add a learned bias per class to both stacks (None: no condition).
        last: the model's last layer, whose vertical output v' nothing reads: its vertical
            gate gets no class bias (it could not change the model's outputs).
        groups: the sub-pixels of a colour model (3: R, G, B), each channel of h, h' and of
            the gates in one of them (:class:`HorizontalConv`, :func:`gate_groups`); 1, the
            default, for grey images.
        channel_order: "ordered" or "independent" (:mod:`npixelcnn.masks`), for colour.

    Parameters: vertical, horizontal, link, out (each W, b); with classes also
    horizontal_class.V and (not in the last layer) vertical_class.V, each (K, 2C).
    In colour, horizontal.W and out.W are zero at the centre weights the channel rule hides.

    Properties (read-only): mask_type, centre_mask, in_groups, out_groups: the horizontal
    stack's (:class:`HorizontalConv`), what the layer reads of its own pixel.
    """

    def __init__(self, in_channels, channels, kernel_size=3, first=False, rng=None, out_gain=1.0,
                 dilation=1, classes=None, last=False, groups=1, channel_order="ordered"):
        super().__init__()
        check_positive_int(channels, "channels")
        check_positive_int(groups, "groups")
        check_channel_order(channel_order)
        if not isinstance(kernel_size, int) or kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"GatedLayer: kernel_size must be an odd int >= 3, got {kernel_size!r}")
        check_kernel_size(kernel_size)          # (and not wider than MAX_KERNEL_SIZE)
        check_dilation(dilation, kernel_size)
        if not first and in_channels != channels:
            raise ValueError(f"GatedLayer: a residual layer maps C to C channels, got {in_channels} -> {channels}")
        rng = as_rng(rng)
        self.first, self.channels, self.kernel_size, self.dilation = first, channels, kernel_size, dilation
        k, c2 = kernel_size, 2 * channels
        self.vertical = self.add("vertical", Conv2D(in_channels, c2, k, rng=rng, taps=vertical_taps(k),
                                                    dilation=dilation))
        self.horizontal = self.add("horizontal", HorizontalConv(in_channels, channels, k, first, rng=rng,
                                                                dilation=dilation, groups=groups,
                                                                channel_order=channel_order))
        self.shift = self.add("shift", ShiftDown())
        self.link = self.add("link", Conv2D(c2, c2, 1, rng=rng))     # rows above only: every sub-pixel's
        self.v_gate = self.add("v_gate", Gate())
        self.h_gate = self.add("h_gate", Gate())
        self.out = self.add("out", ordered_conv(channels, channels, 1, "B", groups=groups,
                                                channel_order=channel_order, rng=rng, gain=out_gain))
        self.vertical_class = self.horizontal_class = None          # no condition
        if classes is not None:
            if not last:
                self.vertical_class = self.add("vertical_class", ClassBias(classes, c2))
            self.horizontal_class = self.add("horizontal_class", ClassBias(classes, c2))

    # The layer reads its own pixel only through the horizontal stack's centre tap (the vertical
    # stack reaches h a row down): that tap's rule is the layer's, as the samplers' first-layer
    # check reads it (steps.reads_only_earlier_sub_pixels). The horizontal conv holds it.
    @property
    def mask_type(self):
        """Mask "A" in the first layer (grey: no centre tap; colour: only earlier sub-pixels), else "B"."""
        return self.horizontal.mask_type

    @property
    def centre_mask(self):
        """bool (C_in, 2C): the centre weights the horizontal stack keeps, or None (grey: its taps say it all)."""
        return self.horizontal.centre_mask

    @property
    def in_groups(self):
        """int (C_in,): the sub-pixel of each input channel, or None for grey."""
        return self.horizontal.in_groups

    @property
    def out_groups(self):
        """int (2C,): the sub-pixel of each channel of the gate's two halves, or None for grey."""
        return self.horizontal.out_groups

    def forward(self, x):
        """(v, h), each (N, H, W, C_in) (the first layer: the image x) -> (v', h'), each (N, H, W, C)."""
        v, h = (x, x) if self.first else x
        v_pre = self.vertical.forward(v)
        h_pre = ops.add(self.horizontal.forward(h), self.link.forward(self.shift.forward(v_pre)))
        v_gate_in = v_pre
        if self.vertical_class is not None:                 # (after the link read v_pre)
            v_gate_in = self.vertical_class.forward(v_pre)
        if self.horizontal_class is not None:
            h_pre = self.horizontal_class.forward(h_pre)
        branch = self.out.forward(self.h_gate.forward(h_pre))
        return self.v_gate.forward(v_gate_in), (branch if self.first else ops.add(h, branch))

    def backward(self, dy):
        """(dv', dh') -> (dv, dh) (the first layer: dx); dv' may be None (nothing read v')."""
        dv_out, dh_out = dy
        dh_pre = self.h_gate.backward(self.out.backward(dh_out))
        if self.horizontal_class is not None:
            dh_pre = self.horizontal_class.backward(dh_pre)
        dv_pre = self.shift.backward(self.link.backward(dh_pre))
        if dv_out is not None:
            dv_gate = self.v_gate.backward(dv_out)
            if self.vertical_class is not None:
                dv_gate = self.vertical_class.backward(dv_gate)
            dv_pre = ops.add(dv_pre, dv_gate)
        dv = self.vertical.backward(dv_pre)
        dh = self.horizontal.backward(dh_pre)
        if self.first:
            return ops.add(dv, dh)                   # v and h were the same x
        return dv, ops.add(dh, dh_out)               # the residual passes dh' through


class TakeHorizontal(Layer):
    """(v, h) -> h: the output of the last gated layer is its horizontal stack.
    Backward: (None, dh): nothing after it reads v."""

    def forward(self, x):
        return x[1]

    def backward(self, dy):
        return None, dy


class GatedPixelCNN(AutoregressiveModel, arch="gated"):
    """Gated layers (no blind spot), then ReLU, 1x1, ReLU, 1x1 -> logits.

    Args:
        levels: number of intensity levels, 2 to 256.
        channels: C, the channels of both stacks (and of each gate's output).
        layers: gated layers, the first included (>= 1).
        kernel_size: k of every layer's stacks, odd >= 3.
        head: width of the 1x1 head.
        output, components, channel_coefficients: the output distribution, as for :class:`PixelCNN`.
        dilations: None (no dilation), or one int d >= 1 per gated layer, the first
            included: the dilation of that layer's stacks (:class:`GatedLayer`).
        classes: None (a model of p(x)), or K >= 2: a model of p(x | y), y in [0, K),
            with a bias per class in every gate (:mod:`npixelcnn.conditioning`); its
            ``forward(x, labels)`` takes the labels (N,).
        in_channels: C_img, the channels of an image: 1 (grey, the default) or 3 (colour, R, G, B).
        channel_order: for colour, "ordered" (the default: sub-pixel G reads R at its own
            pixel, B reads R and G) or "independent" (neither). The horizontal stack carries
            the order (:class:`GatedLayer`): its channels, and the head's, are split into
            C_img groups, one per sub-pixel, and the output layer's group c holds sub-pixel c's
            output.channels numbers; channels and head must be >= C_img.
        seed: int or None.

    With k = 3 the receptive field grows by one row up and one column either
    side per layer, like the PixelCNN's 3x3 layers, but with no blind spot.
    Initialisation as :class:`PixelCNN`: He-normal, each residual branch's 1x1
    scaled by 1/sqrt(layers), the output layer by 0.1.

    Shapes: x (N, H, W, 1) in [0, 1] -> outputs (N, H, W, output.channels): the logits
    (N, H, W, levels) of the default softmax. In colour, x (N, H, W, 3) -> (N, H, W, 3,
    output.channels).
    """

    # "small" won a 3-minute equal-time sweep of four gated configurations. "medium": 10 layers
    # of k = 3 see 11 rows up, and batches of 16 give twice the updates of 32 in the same time.
    # "medium-k5": the same with 5x5 kernels, each step about twice the cost, but 10 layers see
    # 21 rows up; it trained the shipped checkpoints/gated_mnist4.npz. docs/results.md has the runs.
    presets = {
        "small": Preset(model=dict(channels=16, layers=6, kernel_size=3, head=32),
                        training=dict(batch_size=16, lr=6e-3, warmup_steps=100)),
        "medium": Preset(model=dict(channels=32, layers=10, kernel_size=3, head=64),
                         training=dict(batch_size=16, lr=4e-3, warmup_steps=200)),
        "medium-k5": Preset(model=dict(channels=32, layers=10, kernel_size=5, head=64),
                            training=dict(batch_size=16, lr=4e-3, warmup_steps=200)),
        # The UvA deep learning tutorial's Gated PixelCNN (tutorial 12): a first layer, then 7
        # layers of k = 3 dilated 1, 2, 1, 4, 1, 2, 1, with "medium"'s widths and training. The
        # receptive field reaches 14 rows up (each layer d, plus the shift) instead of the 9 of
        # 8 undilated layers: every one of the 406 pixels before the centre of a 28x28 image,
        # and 391 of the 770 before the bottom row's middle (161 undilated; by gradients at
        # random weights), for the cost of 8 layers of k = 3.
        "dilated": Preset(model=dict(channels=32, layers=8, kernel_size=3, head=64,
                                     dilations=[1, 1, 2, 1, 4, 1, 2, 1]),
                          training=dict(batch_size=16, lr=4e-3, warmup_steps=200)),
    }
    renamed_settings = {"hidden": "channels"}       # version-1 checkpoints called C "hidden"

    def __init__(self, levels=4, channels=32, layers=8, kernel_size=3, head=64, output="softmax",
                 components=None, dilations=None, classes=None, in_channels=1, channel_order="ordered",
                 channel_coefficients=False, seed=None):
        super().__init__()
        check_levels(levels)
        check_positive_int(channels, "channels")
        check_positive_int(layers, "layers")
        check_positive_int(head, "head")
        self.config = {"levels": levels, "channels": channels, "layers": layers,
                       "kernel_size": kernel_size, "head": head,
                       **self.choose_output(levels, output, components, channel_coefficients, in_channels,
                                            channel_order),
                       **self.choose_channels(in_channels, channel_order)}
        for name, width in (("channels", channels), ("head", head)):
            if width < in_channels:
                raise ValueError(f"GatedPixelCNN: a colour model splits its {name} into {in_channels} groups, "
                                 f"one per sub-pixel (in_channels={in_channels}): {name} must be >= "
                                 f"{in_channels}, got {width}")
        if dilations is not None:           # recorded only when given: other configs stay as they were
            dilations = self.config["dilations"] = check_dilations(dilations, layers, "gated layer")
        self.classes = self.check_classes(classes)
        if classes is not None:             # (likewise)
            self.config["classes"] = self.classes
        rng = np.random.default_rng(seed)
        gain = 1.0 / np.sqrt(layers)
        order = {"groups": in_channels, "channel_order": channel_order}     # one group per sub-pixel
        for i in range(layers):
            self.add(f"layers.{i}", GatedLayer(in_channels if i == 0 else channels, channels, kernel_size,
                                               first=i == 0, rng=rng, out_gain=1.0 if i == 0 else gain,
                                               dilation=1 if dilations is None else dilations[i],
                                               classes=self.classes, last=i == layers - 1, **order))
        self.add("take_h", TakeHorizontal())
        self.add("head_relu1", ReLU())
        self.add("head1", ordered_conv(channels, head, 1, "B", rng=rng, **order))
        self.add("head_relu2", ReLU())
        self.add("out", ordered_conv(head, in_channels * self.output.channels, 1, "B", rng=rng, gain=0.1, **order))
