"""The cached sampler: one pixel's worth of every layer per generated pixel.

Every layer's activation at pixel p depends only on pixels before p (the masks
see to that), so once computed it never changes. :class:`CachedPixelCNN`
computes each layer at the one pixel being generated and keeps only what later
pixels will read; a whole image then costs about one full forward pass (the
idea of Fast PixelCNN++, Ramachandran et al., 2017, "Fast Generation for
Convolutional Autoregressive Models"). :mod:`npixelcnn.sampling` drives it
pixel by pixel; it is tested equal to the naive loop there.
"""

import numpy as np

from .blocks import ResidualBlock
from .data import to_model_input
from .layers import Conv2D, MaskedConv2D
from .model import PixelCNN
from .validation import check_image_shape, check_positive_int


def check_model(model):
    """Raise TypeError unless ``model`` is a :class:`PixelCNN` (what the samplers know how to run)."""
    if not isinstance(model, PixelCNN):
        raise TypeError(f"expected a PixelCNN model, got {type(model).__name__}")


class CachedPixelCNN:
    """A PixelCNN evaluated one pixel at a time, keeping what later pixels read.

    At pixel (i, j), in raster order, :meth:`logits_at` runs every layer of the
    model at that one position, on all B images at once:

    * the 7x7 mask-A convolution reads the image at its kept taps (all before
      (i, j)) and gives the residual stream x (B, 2h);
    * each residual block: h = relu(x) @ W1 + b1; relu(h) is stored at (i, j)
      for the 3x3 mask-B convolution, which then reads its kept taps (at or
      before (i, j)); x = x + relu(that) @ W3 + b3;
    * the head: relu, 1x1, relu, 1x1, 1x1 gives the logits (B, L).

    Only the masked convolutions read other pixels than their own, so only
    their INPUTS are kept, and only the rows they can still read: a k x k
    causal window at (i, j) reaches rows i - k//2 .. i, so each masked layer
    keeps its last k//2 + 1 input rows in a ring (:class:`_MaskedConvAt`).
    The output at (i, j) is then im2col for one pixel (a copy per kernel row
    into a (B, T*C_in) row) and one matrix product with the layer's kept
    weights: the same products as the full forward pass, one pixel at a time.

    A step costs those products plus about ten NumPy calls per block, each a
    few microseconds; what keeps the rest small (measured on the seed
    architecture, 64 images: 1.9 s per batch before these, 0.9 s after):

    * the products run on one BLAS thread (see :func:`limit_blas_threads`);
    * the input row of every product carries a trailing 1, the input that
      multiplies the bias, folded into the weights as one more row:
      ``[x, 1] @ [[W], [b]] = x @ W + b``. That saves the bias additions, and
      a ReLU applied to the whole row leaves the 1 as it is;
    * products write straight where their result is read next (into the
      ring, or into the next layer's input row), and ReLUs work in place;
    * the rings are pixel-major, ``(k//2 + 1, W + 2*(k//2), B, C_in)``: one
      pixel's B x C_in values are contiguous. They are small (15 MB instead
      of 214 MB for whole images), so no step stalls on fresh memory pages;
    * the blocks share their scratch rows (each is used up before the next
      block writes it), so a step reuses a few KB that stay in the CPU cache.

    Args:
        model: a :class:`PixelCNN` (its weights are copied: later changes to
            the model are not seen).
        batch: B, the number of images generated together.
        shape: (H, W).

    Attributes:
        inputs: the masked layers' input rings without their padding, each
            (k//2 + 1, W, B, C_in), image row r in slot r % (k//2 + 1);
            ``inputs[0]`` holds the image (level / (L - 1)).
    """

    def __init__(self, model, batch, shape):
        check_model(model)
        check_positive_int(batch, "batch")
        self.shape = check_image_shape(shape)
        self.batch, self.levels, self.dtype = batch, model.levels, model.dtype
        layers = _pixelcnn_layers(model)
        rows = _Rows(batch, self.dtype)
        self.input_conv = _MaskedConvAt(layers["input_conv"], self.shape, rows)
        self.blocks = [_ResidualBlockAt(block, self.shape, rows) for block in layers["blocks"]]
        self.stream = rows.get("stream", 2 * model.config["hidden"])            # x (B, 2h)
        self.head_in = rows.get("head input", self.stream.shape[1] + 1)
        self.head1, self.head2, self.out = (_weights_and_bias(layers[name])
                                            for name in ("head1", "head2", "out"))
        self.head_mid = rows.get("head middle", self.head1.shape[1] + 1)
        self.head_last = rows.get("head last", self.head2.shape[1] + 1)
        self.logits = rows.get("logits", model.levels)
        self.inputs = [self.input_conv.input] + [block.conv2.input for block in self.blocks]
        # The model's input for each level, from to_model_input itself (then the
        # model's dtype, as the naive loop does), so both loops see the same numbers.
        every_level = np.arange(model.levels).reshape(1, 1, model.levels)
        self._values = to_model_input(every_level, model.levels).reshape(-1).astype(self.dtype)

    def set_pixel(self, i, j, levels):
        """Write the levels (B,) of pixel (i, j) into the image that the first layer reads."""
        self.input_conv.input_at(i, j)[:, 0] = self._values[levels]

    def logits_at(self, i, j):
        """The model's logits (B, L) at pixel (i, j).

        Requires every pixel before (i, j) to be set (:meth:`set_pixel`) and
        every pixel before it to have been computed (:meth:`logits_at` or
        :meth:`prefill`): then the result equals ``model.forward(x)[:, i, j]``
        up to float rounding. Stores the masked layers' inputs at (i, j).
        The array returned is a buffer that the next call overwrites.
        """
        x = self.stream                                           # (B, 2h)
        self.input_conv.at(i, j, out=x)                           # from the image before (i, j)
        for block in self.blocks:
            block.add_at(x, i, j)                                 # x += the block's branch
        _relu(x, out=self.head_in[:, :-1])                        # the head: relu, 1x1,
        np.matmul(self.head_in, self.head1, out=self.head_mid[:, :-1])
        _relu(self.head_mid, out=self.head_mid)                   # relu, 1x1,
        np.matmul(self.head_mid, self.head2, out=self.head_last[:, :-1])
        return np.matmul(self.head_last, self.out, out=self.logits)   # 1x1 -> (B, L)

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
        if upto <= 0:
            return
        rows = min(upto // self.shape[1] + 1, self.shape[0])    # the rows before upto, and its own
        x = self._values[images[:, :rows]][..., None]             # (B, rows, W, 1)
        self.input_conv.store_before(x, upto)
        layers = [self.input_conv.layer] + [block.layer for block in self.blocks]
        was_training = [layer.training for layer in layers]
        for layer in layers:
            layer.eval()                            # no caches for a backward pass
        try:
            x = self.input_conv.layer.forward(x)
            for block in self.blocks:
                x = block.full(x, upto)
        finally:
            for layer, mode in zip(layers, was_training):
                layer.train(mode)


def _pixelcnn_layers(model):
    """The layers of a PixelCNN by role, checking that it has the structure we cache."""
    children = dict(model.named_children())
    blocks = [layer for name, layer in model.named_children() if name.startswith("blocks.")]
    expected = {"input_conv": MaskedConv2D, "head1": Conv2D, "head2": Conv2D, "out": Conv2D}
    if (any(not isinstance(children.get(name), kind) for name, kind in expected.items())
            or children["input_conv"].mask_type != "A"
            or any(children[name].kernel_size != 1 for name in ("head1", "head2", "out"))
            or not all(isinstance(block, ResidualBlock) for block in blocks)
            or len(children) != len(blocks) + 6):
        raise ValueError("CachedPixelCNN: expected the layers of PixelCNN (a 7x7 mask-A "
                         "convolution, residual blocks, then ReLU, 1x1, ReLU, 1x1, 1x1); "
                         f"got {[name for name, _ in model.named_children()]}")
    return {"input_conv": children["input_conv"], "blocks": blocks,
            "head1": children["head1"], "head2": children["head2"], "out": children["out"]}


def _weights_and_bias(layer):
    """A convolution's kept weights with its bias as the last row: (K + 1, C_out).

    K = T * C_in for a masked layer (its kept taps, as im2col orders them),
    C_in for a 1x1 layer.
    """
    return np.concatenate([layer.kept_weights(), layer.params["b"][None, :]])


def _relu(x, out):
    """max(x, 0) into ``out``; a trailing 1 stays 1. Against an array of zeros,
    which is faster than against the scalar 0 on rows this small (1.5 us
    instead of 2.4 us for 64 x 128 values)."""
    zeros = _ZEROS.get((x.shape, x.dtype))
    if zeros is None:
        zeros = _ZEROS[x.shape, x.dtype] = np.zeros(x.shape, x.dtype)
        zeros.flags.writeable = False
    return np.maximum(x, zeros, out=out)


_ZEROS = {}     # (shape, dtype) -> read-only zeros, made once per shape


class _Rows:
    """Rows of activations (B, width) shared by the layers of one CachedPixelCNN,
    by role and width. They start as ones: where the last column is the bias
    input, nothing ever writes over that 1."""

    def __init__(self, batch, dtype):
        self.batch, self.dtype, self.rows = batch, dtype, {}

    def get(self, role, width):
        if (role, width) not in self.rows:
            self.rows[role, width] = np.ones((self.batch, width), self.dtype)
        return self.rows[role, width]


class _MaskedConvAt:
    """A masked convolution at one output pixel: its input rows, the kept
    taps of each kernel row, and the kept weights (with the bias row)."""

    def __init__(self, layer, shape, rows):
        self.layer = layer
        height, width = shape
        batch, dtype = rows.batch, rows.dtype
        self.pad, channels = layer.kernel_size // 2, layer.in_channels
        # The window at (i, j) reaches rows i - pad .. i: only the last pad + 1
        # input rows are ever read again. They are kept in a ring, image row r
        # in slot r % (pad + 1), zero-padded by pad columns on either side
        # (those are never written, so they stay zero).
        self.ring = np.zeros((self.pad + 1, width + 2 * self.pad, batch, channels), dtype)
        self.input = self.ring[:, self.pad:self.pad + width]              # (pad + 1, W, B, C_in)
        # im2col's row for one pixel and all B images, (B, T*C_in + 1), taps
        # in raster order and channels inside each tap, as in the full layer;
        # the last column is the 1 that multiplies the bias row.
        taps = len(layer.taps)
        self.cols = rows.get(f"{layer.kernel_size}x{layer.kernel_size} im2col row", taps * channels + 1)
        tap_values = self.cols[:, :-1].reshape(batch, taps, channels)      # a view
        # A causal mask keeps whole kernel rows above the centre and the left
        # part of the centre row: in every kernel row the kept taps are side
        # by side, so one slice of the ring gathers them.
        self.kernel_rows = []           # (kernel row, first col, end col, where its taps go in cols)
        for r in np.unique(layer.taps[:, 0]):
            in_row = np.flatnonzero(layer.taps[:, 0] == r)
            c = layer.taps[in_row, 1]
            if not np.array_equal(c, np.arange(c[0], c[-1] + 1)):
                raise ValueError(f"CachedPixelCNN: the kept taps of kernel row {r} are not "
                                 f"contiguous ({c.tolist()}); expected a causal mask")
            self.kernel_rows.append((int(r), int(c[0]), int(c[-1]) + 1,
                                     tap_values[:, in_row[0]:in_row[-1] + 1]))
        self.weights = _weights_and_bias(layer)                           # (T*C_in + 1, C_out)

    def input_at(self, i, j):
        """The (B, C_in) slot where the layer's input at pixel (i, j) is stored."""
        return self.input[i % (self.pad + 1), j]

    def at(self, i, j, out):
        """The layer's output at (i, j) into ``out`` (B, C_out), from its stored input."""
        for r, first, end, taps in self.kernel_rows:
            row = i + r - self.pad                  # the image row this kernel row reads
            if row < 0:
                taps[...] = 0                       # above the image: the convolution's zero padding
            else:
                # Ring columns j + first .. j + end (padded coordinates), (taps, B, C)
                # -> (B, taps, C): each image's taps side by side.
                taps[...] = self.ring[row % (self.pad + 1), j + first:j + end].transpose(1, 0, 2)
        return np.matmul(self.cols, self.weights, out=out)

    def store_before(self, x, upto):
        """Store x (B, rows, W, C_in), the input on whole rows, at the raster
        positions before ``upto`` that later pixels can still read."""
        row, col = divmod(upto, self.input.shape[1])
        for r in range(max(0, row - self.pad), row):          # at most pad whole rows
            self.input[r % (self.pad + 1)] = x[:, r].transpose(1, 0, 2)
        if col:
            self.input[row % (self.pad + 1), :col] = x[:, row, :col].transpose(1, 0, 2)


class _ResidualBlockAt:
    """x + conv3(relu(conv2(relu(conv1(relu(x)))))) at one pixel; conv2 is the
    3x3 mask-B convolution, whose input is stored at (i, j) before it reads."""

    def __init__(self, block, shape, rows):
        self.layer = block
        h = block.h
        self.conv1 = _weights_and_bias(block.conv1)                # (2h + 1, h)
        self.conv2 = _MaskedConvAt(block.conv2, shape, rows)       # 3x3 mask B, h -> h
        self.conv3 = _weights_and_bias(block.conv3)                # (h + 1, 2h)
        self.relu_x = rows.get("block input", 2 * h + 1)
        self.relu_h = rows.get("block middle", h + 1)
        self.branch = rows.get("block output", 2 * h)

    def add_at(self, x, i, j):
        """x (B, 2h), the residual stream at (i, j): x += branch(x), in place."""
        _relu(x, out=self.relu_x[:, :-1])                             # relu1
        h = self.conv2.input_at(i, j)                                 # conv1 writes into the ring:
        np.matmul(self.relu_x, self.conv1, out=h)                     # 1x1, 2h -> h
        _relu(h, out=h)                                               # relu2, in place
        self.conv2.at(i, j, out=self.relu_h[:, :-1])                  # 3x3 mask B: reads (i, j) too
        _relu(self.relu_h, out=self.relu_h)                           # relu3 (the trailing 1 stays)
        x += np.matmul(self.relu_h, self.conv3, out=self.branch)      # 1x1, h -> 2h

    def full(self, x, upto):
        """The block on whole rows x (B, rows, W, 2h), storing conv2's input before ``upto``."""
        block = self.layer
        h = block.relu2.forward(block.conv1.forward(block.relu1.forward(x)))
        self.conv2.store_before(h, upto)
        return x + block.conv3.forward(block.relu3.forward(block.conv2.forward(h)))


