"""The Gated PixelCNN's layers at one pixel: the steps of both cached samplers.

A gated layer (:class:`~npixelcnn.gated.GatedLayer`) computes (gated.py)::

    v_pre = vertical(v);  v' = gate(v_pre)
    h_pre = horizontal(h) + link(shift_down(v_pre));  h' = h + out(gate(h_pre))

(the first layer: v = h = the image, and no residual); with classes, the bias
of each image's class y inside both gates: v' = gate(v_pre + V_v[y]) and
h_pre = horizontal(h) + link(shift_down(v_pre)) + V_h[y], the link reading v_pre
without V_v[y]. The sampler's labels reach the steps once, before the first
pixel (``condition``). Its two stacks are cached differently:

* the **vertical stack** at row r reads rows r - k//2 .. r, right of the pixel
  too, and reaches the horizontal stack only at row r + 1. So it is computed a
  whole row at a time: at the first pixel of row i, once row i - 1 is
  complete, each layer computes its vertical output on row i - 1 (all W
  columns, all B images, one matrix product) and passes it to the next layer;
  the 1x1 link of that row is what the horizontal stack adds at every pixel
  of row i;
* the **horizontal stack** reads the current row up to the pixel: it is
  computed pixel by pixel, like a causal convolution.

In colour (gated.py) only the horizontal stack carries the channel order: its
centre tap, kept in every layer, reads the sub-pixels of (i, j) that its
channel rule allows (the zeros of the centre mask are in ``kept_weights()``).
The sampler computes a pixel once per sub-pixel, each time after storing one
more of them (:mod:`npixelcnn.steps`): the plain step computes the horizontal
stack at (i, j) again, whole; the fast one, at round g, only group g's columns
of it, a_g and b_g of the gate's two halves (kept side by side: the
pre-activation's columns come group by group), the gate's group g and out's
group g, reading h's groups <= g at (i, j) (the first layer: the image's
sub-pixels < g) and the gate's, which it keeps over the rounds. The vertical
stack reads no sub-pixel of row i, so its row i - 1 is the same at every visit
of (i, 0): the plain step computes it again, the fast one only at the first.

The plain step keeps both stacks' whole input images; the fast one keeps only
what is still read: the vertical input's last p + 1 rows in a ring, the
horizontal input's current row. (The first layer's image reaches it pixel by
pixel, through ``store_pixel``, and a sampler may store the first pixel of row i
before it computes it, over row i - 1 - p of the ring: so the fast first layer
copies each image row, once complete, into a ring of its own for the vertical
stack.) Both read the taps where they sit in the
stacks' window, 2p + 1 wide: p = k//2, or (k//2) * d for a layer dilated by d
(``layer.vertical.window``, ``window_taps``; :mod:`npixelcnn.masks`).

Between the steps of the gated layers flows a pair (v_row, h): v_row is the
previous layer's vertical output gate(v_pre) on row i - 1 at the first pixel
of a row i >= 1, else None; h is the horizontal stack at (i, j).

:class:`GatedLayerStep` and :class:`TakeHorizontalStep` are the plain steps
(:mod:`npixelcnn.plain_steps`): v_row (B, W, C), h (B, C). :class:`GatedLayerAt`
and :class:`TakeHorizontalAt` are their fast twins (:mod:`npixelcnn.pixel_steps`):
v_row (W, B, C), h (B, C + 1) with a trailing 1.
"""

import numpy as np

from .gated import GatedLayer, TakeHorizontal, gate_groups, tanh_and_sigmoid
from .pixel_steps import weights_and_bias
from .plain_steps import gather_taps, padded_image, without_padding
from .steps import FastStep, PlainStep, check_causal_taps
from .sub_pixel_rounds import bias_and_weights, centre_reads, group_slices, reads_centre, sub_pixel_order_error


def gate(z):
    """tanh(a) * sigmoid(b), a and b the two halves of z's channels: (..., 2C) -> (..., C)."""
    t, s = tanh_and_sigmoid(z)
    return t * s


class GatedLayerStep(PlainStep, layer=GatedLayer):
    """A :class:`GatedLayer` at one pixel, plain: the vertical stack by rows, the horizontal by pixels.

    What it remembers: both stacks' whole input images, zero-padded (as a
    convolution's plain step does), link(v_pre) of the row above, which the
    horizontal stack adds at every pixel of the current row, and the class
    biases V_v[y] and V_h[y] of its images (zeros for a model without classes).
    """

    def __init__(self, layer, shape, batch, dtype):
        super().__init__(layer, shape, batch, dtype)
        # Both stacks read a window of the same width: k, or (k - 1) * d + 1 when dilated.
        self.window, self.batch, self.width = layer.vertical.window, batch, shape[1]
        self.p = self.window // 2
        c_in = layer.vertical.in_channels
        # Through the horizontal stack's centre tap: not in a grey first layer (mask A), but
        # in a colour one (its channel rule then reads only earlier sub-pixels: steps.check_first_step).
        self.reads_own_pixel = check_causal_taps(layer.horizontal, self.sampler)
        self.v_image = padded_image(batch, shape, self.window, c_in, dtype)     # the vertical stack's input
        self.h_image = padded_image(batch, shape, self.window, c_in, dtype)     # the horizontal stack's input
        self.inputs = [without_padding(self.v_image, self.window), without_padding(self.h_image, self.window)]
        self.link_above = None                          # link(v_pre) on row i - 1: (B, W, 2C)
        # Each convolution's kept weights (K, C_out) and bias (C_out,), K = taps x C_in.
        self.vertical = (layer.vertical.kept_weights(), layer.vertical.params["b"].copy())
        self.horizontal = (layer.horizontal.kept_weights(), layer.horizontal.params["b"].copy())
        self.link = (layer.link.kept_weights(), layer.link.params["b"].copy())
        self.out = (layer.out.kept_weights(), layer.out.params["b"].copy())
        # The bias each image's class adds to v_pre and to h_pre (B, 2C): none until condition.
        self.v_class = np.zeros((batch, 2 * layer.channels), dtype)
        self.h_class = np.zeros((batch, 2 * layer.channels), dtype)

    def condition(self, labels):
        """labels (B,): keep each image's rows of the layer's class biases, V_v[y] and V_h[y] (B, 2C)."""
        if self.layer.vertical_class is not None:           # (none in the last layer: v' is not read)
            self.v_class = self.layer.vertical_class.params["V"][labels]
        if self.layer.horizontal_class is not None:
            self.h_class = self.layer.horizontal_class.params["V"][labels]

    def store_pixel(self, i, j, values):
        """The first layer: the image's values (B, C_in) at (i, j), its sub-pixels, read by both stacks."""
        self.v_image[:, i + self.p, j + self.p] = values
        self.h_image[:, i + self.p, j + self.p] = values

    def compute(self, i, j):
        """The first layer at (i, j), from the image before (i, j): (v_row, h') (no residual)."""
        v_row = self.vertical_row(i - 1) if j == 0 else None
        return v_row, self.horizontal_branch(i, j)

    def at(self, x, i, j):
        """(v_row, h) from the layer before -> (v_row', h') at (i, j)."""
        v_row, h = x
        if v_row is not None:                           # j == 0: row i - 1 of v is complete
            self.v_image[:, i - 1 + self.p, self.p:self.p + self.width] = v_row
        self.h_image[:, i + self.p, j + self.p] = h
        v_row = self.vertical_row(i - 1) if j == 0 else None
        return v_row, h + self.horizontal_branch(i, j)

    def vertical_row(self, r):
        """The vertical stack on row r, every column at once: keeps link(v_pre) for the
        horizontal stack of row r + 1, and returns gate(v_pre + V_v[y]) (B, W, C), the
        next layer's vertical input on row r. Above the image (r = -1) shift_down gives
        zeros, whose link is its bias, and there is no row to pass on: None."""
        link_weights, link_bias = self.link
        if r < 0:
            self.link_above = np.zeros((self.batch, self.width, len(link_bias)), link_bias.dtype) + link_bias
            return None
        weights, bias = self.vertical
        v_pre = gather_taps(self.v_image, self.layer.vertical.window_taps, r, np.arange(self.width)) @ weights + bias
        self.link_above = v_pre @ link_weights + link_bias                 # (B, W, 2C)
        return gate(v_pre + self.v_class[:, None])     # the class bias after the link read v_pre

    def horizontal_branch(self, i, j):
        """out(gate(horizontal(h) + link(v_pre above) + V_h[y])) at (i, j): (B, C)."""
        (weights, bias), (out_weights, out_bias) = self.horizontal, self.out
        h_pre = gather_taps(self.h_image, self.layer.horizontal.window_taps, i, j) @ weights + bias
        return gate(h_pre + self.link_above[:, j] + self.h_class) @ out_weights + out_bias


class TakeHorizontalStep(PlainStep, layer=TakeHorizontal):
    """(v_row, h) -> h."""

    def at(self, x, i, j):
        return x[1]


class GatedLayerAt(FastStep, layer=GatedLayer):
    """A :class:`GatedLayer` at one pixel, fast: the vertical stack by rows, the horizontal by pixels.

    A conditional layer's class biases are folded where they cost nothing per pixel
    (:meth:`condition`): V_h[y] into the link's bias, V_v[y] into v_pre once per row.
    """

    def __init__(self, layer, shape, rows):
        super().__init__(layer, shape, rows)
        self.first = layer.first
        self.reads_own_pixel = check_causal_taps(layer.horizontal, self.sampler)    # as GatedLayerStep's
        width = shape[1]
        batch, dtype = rows.batch, rows.dtype
        self.pad = p = layer.vertical.window // 2                    # k//2, or (k//2) * d dilated
        c_in, c = layer.vertical.in_channels, layer.channels
        # Vertical: the last p + 1 input rows, zero-padded by p columns either side.
        self.v_ring = np.zeros((p + 1, width + 2 * p, batch, c_in), dtype)
        # The rows the vertical stack reads: that ring, where the layer before writes whole
        # rows. The first layer's ring is where store_pixel writes the image, pixel by pixel,
        # and a sampler may store (i, 0) before it computes (i, 0) (a given pixel of a
        # completion), over row i - 1 - p, which the vertical row i - 1 still reads. So the
        # first layer's vertical stack reads a ring of its own, v_rows, into which each image
        # row is copied, complete, at the first pixel of the next row (compute).
        self.v_rows = np.zeros_like(self.v_ring) if layer.first else self.v_ring
        self.v_weights = weights_and_bias(layer.vertical)            # (T_v*C_in + 1, 2C)
        self.v_taps = layer.vertical.window_taps                     # (row, col) in the 2p + 1 window
        # The horizontal gate at one pixel in three NumPy calls (tanh, add, multiply)
        # instead of six: with sigmoid(b) = (1 + tanh(b / 2)) / 2,
        #     gate = tanh(a) * (1 + tanh(b / 2)) / 2,
        # and the two halvings move into the weights: b's columns of the horizontal
        # convolution and of the link (so the pre-activation holds [a, b / 2]), and
        # the output 1x1's weight rows (its bias row not). Scaling by a power of two
        # is exact in floating point: the result is the same to the last bit.
        # The pre-activation's 2C columns come group by group, [a_0, b_0, a_1, b_1, ...]
        # (grey: [a, b]): a colour round computes group g's a and b side by side.
        groups = rows.groups
        self.order_error = (sub_pixel_order_error(layer.horizontal, groups, self.sampler,
                                                  gate_groups(c, groups) if groups > 1 else None)
                            or sub_pixel_order_error(layer.out, groups, self.sampler))
        if self.order_error is not None:
            groups = 1                                               # refused by the sampler before any use
        h_groups, in_groups = group_slices(c, groups), group_slices(c_in, groups)
        order = np.concatenate([np.r_[g.start:g.stop, c + g.start:c + g.stop] for g in h_groups])
        self.halve_b = halve_b = np.concatenate([np.ones(c, dtype), np.full(c, 0.5, dtype)])[order]
        self.order = order
        self.link = weights_and_bias(layer.link)[:, order] * halve_b    # (2C + 1, 2C)
        # What link_row adds to every row's link: the link's bias (2C,), or, once
        # condition has folded each image's V_h[y] in, (B, 2C).
        self.link_bias = self.link[-1]
        self.v_class = None                                          # V_v[y] (B, 2C); None: no classes
        self.link_row = np.zeros((width, batch, 2 * c), dtype)       # link(v_pre of row i - 1), b half halved
        self.v_out = np.zeros((width, batch, c), dtype)              # gate(v_pre of row i - 1)
        self.v_cols = np.zeros((width, batch, len(self.v_taps), c_in), dtype)   # one row's im2col, reused
        self.v_pre = np.zeros((width, batch, 2 * c), dtype)
        # Horizontal: the current row's inputs, p zero columns on the left. Its taps
        # are window columns 0, d, 2d, ... up to p (the centre) or p - d: at (i, j)
        # they read h_row[j], h_row[j + d], ..., one slice with a step of d.
        self.h_row = np.zeros((width + p, batch, c_in), dtype)
        self.h_tap_count = len(layer.horizontal.taps)
        self.h_step = layer.dilation
        self.h_span = (self.h_tap_count - 1) * self.h_step + 1     # the columns from the first tap to the last
        # im2col's row at (i, j), the taps (the centre, if kept, last) and the 1 that multiplies
        # the bias row. Grey: [taps, 1], a scratch row. Colour: [1, taps], the step's own, which
        # keeps the earlier pixels' taps over the rounds; with the 1 first, what round g reads is
        # a prefix (:mod:`npixelcnn.sub_pixel_rounds`). The gate's row [2 gate, 1] likewise.
        lead = groups > 1
        with_bias = bias_and_weights if lead else weights_and_bias
        h_weights = with_bias(layer.horizontal)[:, order] * halve_b  # (T_h*C_in + 1, 2C)
        size = 1 + self.h_tap_count * c_in
        self.h_cols = np.ones((batch, size), dtype) if lead else rows.scratch("gated horizontal im2col row", size)
        taps = self.h_cols[:, 1:] if lead else self.h_cols[:, :-1]
        self.h_tap_values = taps.reshape(batch, self.h_tap_count, c_in)     # a view
        centre = reads_centre(layer.horizontal)
        self.h_centre = self.h_tap_values[:, -1] if centre else None  # (B, C_in)
        self.h_pre = rows.get("gated h_pre", 2 * c)
        self.gated = np.ones((batch, 1 + c), dtype)                  # 2 gate, and the 1
        gate_at = 1 if lead else 0                                   # where the gate's columns start
        out = with_bias(layer.out)                                   # (C + 1, C)
        out[gate_at:gate_at + c] *= 0.5                              # its weight rows, not its bias
        self.y = rows.get("gated h out", c + 1)
        # Per round g (grey: one): the input's columns stored (group g), the prefix of
        # h_cols read, the horizontal weights, the pre-activation's columns of group g (a_g,
        # b_g side by side; the link's too), its halves, the gate's columns, the prefix of
        # gated that out's group g reads, out's weights, and the output's columns.
        self.rounds = []
        for new, f in zip(in_groups, h_groups):
            pre = slice(2 * f.start, 2 * f.stop)
            halves = np.r_[f.start:f.stop, c + f.start:c + f.stop]             # a_g and b_g, natural order
            h_read = size - (c_in if centre else 0) + centre_reads(layer.horizontal, halves)
            out_read = 1 + centre_reads(layer.out, f)
            middle = pre.start + f.stop - f.start
            self.rounds.append((new, self.h_cols[:, :h_read], np.ascontiguousarray(h_weights[:h_read, pre]),
                                self.h_pre[:, pre], pre, self.h_pre[:, pre.start:middle],
                                self.h_pre[:, middle:pre.stop], self.gated[:, gate_at + f.start:gate_at + f.stop],
                                self.gated[:, :out_read], np.ascontiguousarray(out[:out_read, f]), self.y[:, f]))
        self.inputs = [self.v_ring[:, p:p + width], self.h_row[p:]]
        if layer.first:
            self.inputs.append(self.v_rows[:, p:p + width])
        if lead:                                    # the gate at (i, j), which out's groups read over the rounds
            self.inputs.append(self.gated[:, gate_at:gate_at + c])
        self.v_row_ready = False                    # v_out holds a row the next layer has not had
        # The row _vertical_row last computed (None: none yet). A colour pixel comes back once
        # per sub-pixel, and its vertical row i - 1 is the same at every visit of (i, 0): it
        # is computed at the first and kept.
        self.v_row_done = None

    def condition(self, labels):
        """labels (B,): fold each image's class biases into what the steps add anyway.

        V_h[y] is the same at every pixel of an image, and so is the link's bias: their
        sum goes into link_row, which the horizontal stack adds at every pixel already,
        so a pixel's step is the same as without classes. Its b half is halved like the
        link's bias (see __init__). V_v[y] enters the vertical gate but not the link
        (gated.py), so it is added to v_pre between the two: once per row.
        """
        if self.layer.horizontal_class is not None:
            v_h = self.layer.horizontal_class.params["V"][labels][:, self.order]     # (B, 2C), group by group
            self.link_bias = self.link[-1] + v_h * self.halve_b
        if self.layer.vertical_class is not None:           # (none in the last layer: v' is not read)
            self.v_class = self.layer.vertical_class.params["V"][labels]

    # --------------------------------------------------------------- the first layer's input

    def store_pixel(self, i, j, values):
        """The image's values (B, C_in) at (i, j), its sub-pixels, read by both stacks of the first layer."""
        self.v_ring[i % (self.pad + 1), self.pad + j] = values
        self.h_row[self.pad + j] = values

    def compute(self, i, j, g=0):
        """The first layer at (i, j), from the image before (i, j) (colour: group g, from the
        sub-pixels before g there)."""
        if j == 0 and self.v_row_done != i - 1:
            if i > 0:                               # image row i - 1 is complete: the vertical stack's
                slot = (i - 1) % (self.pad + 1)
                self.v_rows[slot] = self.v_ring[slot]
            self._vertical_row(i - 1)
        return self._horizontal(i, j, None, g)

    # --------------------------------------------------------------- any layer

    def at(self, x, i, j, g=0):
        v_row, h = x
        if j == 0 and self.v_row_done != i - 1:     # (colour: at the first round of (i, 0))
            if v_row is not None:                   # the previous layer's row i - 1
                self.v_ring[(i - 1) % (self.pad + 1), self.pad:self.pad + v_row.shape[0]] = v_row
            self._vertical_row(i - 1)
        new = self.rounds[g][0]
        self.h_row[self.pad + j, :, new] = h[:, new]        # round g's group (grey: all) of h at (i, j)
        return self._horizontal(i, j, h, g)

    def _vertical_row(self, r):
        """The vertical stack on row r (all columns): its gated output for the next
        layer and the link that the horizontal stack adds on row r + 1."""
        self.v_row_done = r
        if r < 0:                                   # above the image: the shifted input is zero,
            self.link_row[...] = self.link_bias     # its link the bias (with classes, + V_h[y])
            self.v_out[...] = 0
            self.v_row_ready = False
            return
        # im2col of one row: (W, B, taps, C_in), kernel row t_r reads image row r + t_r - p.
        cols, v_pre, width = self.v_cols, self.v_pre, self.v_out.shape[0]
        for t, (tr, tc) in enumerate(self.v_taps):
            row = r + tr - self.pad
            if row >= 0:
                cols[:, :, t] = self.v_rows[row % (self.pad + 1), tc:tc + width]
            else:
                cols[:, :, t] = 0                   # above the image: zero padding
        np.matmul(cols.reshape(v_pre.shape[0], v_pre.shape[1], -1), self.v_weights[:-1], out=v_pre)
        v_pre += self.v_weights[-1]                                     # (W, B, 2C)
        np.matmul(v_pre, self.link[:-1], out=self.link_row)
        self.link_row += self.link_bias                                 # (with V_h[y]: condition)
        if self.v_class is not None:                # the link has read v_pre: now the class's V_v[y]
            v_pre += self.v_class
        # The gate, as Gate computes it, in place: tanh(a) * (0.5 (1 + tanh(0.5 b))),
        # with the last factor 0.5 applied at the end (exact: a power of two).
        c = self.v_out.shape[-1]
        a, b = v_pre[..., :c], v_pre[..., c:]
        np.tanh(a, out=a)
        b *= 0.5
        np.tanh(b, out=b)
        b += 1
        np.multiply(a, b, out=self.v_out)
        self.v_out *= 0.5
        self.v_row_ready = True

    def _horizontal(self, i, j, h, g=0):
        """h' at (i, j), (B, C + 1): h + out(gate(horizontal(h) + link)), no h in the first layer;
        in colour only group g's columns, from h's groups <= g at (i, j) (< g in the first layer)."""
        if g == 0:
            # Columns j - p .. j (mask A: .. j - d), every d-th: (taps, B, C) -> (B, taps, C).
            self.h_tap_values[...] = self.h_row[j:j + self.h_span:self.h_step].transpose(1, 0, 2)
        elif self.h_centre is not None:
            self.h_centre[...] = self.h_row[self.pad + j]     # one more group of (i, j) stored since round 0
        new, read, weights, pre, columns, a, b, gated, out_read, out_weights, out = self.rounds[g]
        np.matmul(read, weights, out=pre)                   # [a, b / 2] (see __init__)
        pre += self.link_row[j, :, columns]
        np.tanh(pre, out=pre)                               # [tanh(a), tanh(b / 2)]
        b += 1                                              # 2 sigmoid(b)
        np.multiply(a, b, out=gated)                        # 2 gate
        np.matmul(out_read, out_weights, out=out)           # out's weights are halved
        if h is not None:
            out += h[:, new]                                # the residual
        return (self.v_out if (j == 0 and self.v_row_ready) else None), self.y

    # --------------------------------------------------------------- prefill

    def full(self, x, upto):
        """The layer on whole rows, keeping what the pixels from ``upto`` on read."""
        v, h = (x, x) if self.first else x
        width = self.h_row.shape[0] - self.pad
        r, c = divmod(upto, width)
        p = self.pad
        self.v_row_done = None                      # new rows: the vertical row r - 1 is not computed
        for row in range(max(0, r - 1 - p), r):     # the input rows the vertical row r - 1 reads
            self.v_rows[row % (p + 1), p:p + width] = v[:, row].transpose(1, 0, 2)
        if self.first and r > 0 and c == 0:         # compute(r, 0) copies row r - 1 from store_pixel's ring
            self.v_ring[(r - 1) % (p + 1), p:p + width] = v[:, r - 1].transpose(1, 0, 2)
        if c > 0:                                   # (r, 0) is past: its row work is done here
            self._vertical_row(r - 1)
            if self.first:                          # row r's given pixels, in store_pixel's ring
                self.v_ring[r % (p + 1), p:p + c] = v[:, r, :c].transpose(1, 0, 2)
            self.h_row[p:p + c] = h[:, r, :c].transpose(1, 0, 2)
        return self.layer.forward(x)


class TakeHorizontalAt(FastStep, layer=TakeHorizontal):
    """(v_row, h) -> h."""

    def at(self, x, i, j, g=0):
        return x[1]
