"""im2col and col2im for "same"-padded, stride-1 convolutions in NHWC layout.

A convolution is a matrix product once every output pixel's receptive field has
been copied into one row of a matrix (im2col)::

    cols[n*H*W + r*W + c, t*C + ch] = x_padded[n, r + i_t, c + j_t, ch]

for each kernel tap t at position (i_t, j_t). With weights gathered into the
matching (T*C_in, C_out) matrix, ``cols @ W`` is the convolution.

Only the taps we pass in are gathered. A causal mask keeps about half of a
kernel's taps, so gathering just those skips the multiply-adds that a masked
weight would turn into zeros anyway.

Neither function builds a padded copy of the input. A tap at offset (di, dj)
from the centre reads the input shifted by that offset; the part of the shift
that would fall into the zero padding is written as zeros (im2col), or dropped
(col2im: padding has no gradient to receive). Each tap is one slice copy of a
strided view, so the Python loop runs over the few taps, never over pixels.
"""

import numpy as np

from .parallel import for_each_chunk


def shifted_slices(offset, size):
    """Slices that align ``out[dst]`` with ``in[src]`` for ``out[p] = in[p + offset]``.

    Returns:
        (dst, src): slices of length ``size - abs(offset)`` (empty if the shift
            moves everything out of range).
    """
    dst = slice(max(0, -offset), max(0, size - max(0, offset)))
    src = slice(max(0, offset), max(0, size + min(0, offset)))
    return dst, src


def tap_offsets(taps, kernel_size):
    """Kernel positions (row, col) -> offsets (di, dj) from the kernel centre."""
    centre = kernel_size // 2
    return [(int(i) - centre, int(j) - centre) for i, j in taps]


def im2col(x, taps, kernel_size, out=None):
    """Gather the selected kernel taps of every output pixel into rows.

    Args:
        x: (N, H, W, C) input.
        taps: (T, 2) kernel positions (row, col) to gather, in the order the
            weight rows will use.
        kernel_size: k of the k x k kernel the taps come from.
        out: optional preallocated (N*H*W, T*C) array of x's dtype to fill;
            reusing it across steps saves a large allocation.

    Returns:
        cols: (N*H*W, T*C), C-contiguous; column block t holds tap t.
    """
    n, h, w, c = x.shape
    t = len(taps)
    if out is None:
        out = np.empty((n * h * w, t * c), dtype=x.dtype)
    elif out.shape != (n * h * w, t * c) or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"im2col: out must be a C-contiguous {x.dtype} array of shape {(n * h * w, t * c)}, "
            f"got {out.dtype} {out.shape}"
        )
    offsets = tap_offsets(taps, kernel_size)

    def gather(x, cols):                        # one chunk of the batch
        for tap, (di, dj) in enumerate(offsets):
            rows_dst, rows_src = shifted_slices(di, h)
            cols_dst, cols_src = shifted_slices(dj, w)
            block = cols[:, :, :, tap, :]
            block[:, rows_dst, cols_dst] = x[:, rows_src, cols_src]
            # Pixels whose tap lands in the zero padding read zero.
            block[:, : rows_dst.start] = 0
            block[:, rows_dst.stop:] = 0
            block[:, :, : cols_dst.start] = 0
            block[:, :, cols_dst.stop:] = 0

    for_each_chunk(gather, x, out.reshape(n, h, w, t, c))
    return out


def col2im(cols, x_shape, taps, kernel_size):
    """Adjoint of :func:`im2col`: scatter-add rows back onto the input grid.

    Every input pixel was copied into up to T places by im2col, so its gradient
    is the sum of the gradients of those copies. We add one tap's block at a
    time into the shifted window it came from.

    Args:
        cols: (N*H*W, T*C) gradient with respect to im2col's output.
        x_shape: (N, H, W, C), the shape of im2col's input.
        taps, kernel_size: as given to im2col.

    Returns:
        dx: (N, H, W, C), the gradient with respect to im2col's input.
    """
    n, h, w, c = x_shape
    t = len(taps)
    offsets = tap_offsets(taps, kernel_size)

    # The centre tap (offset 0, kept by mask B) covers every pixel: copying it
    # first saves clearing dx and adding onto zeros.
    centre = offsets.index((0, 0)) if (0, 0) in offsets else None

    def scatter_add(cols, dx):                  # one chunk of the batch
        if centre is None:
            dx[...] = 0
        else:
            dx[...] = cols[:, :, :, centre, :]
        for tap, (di, dj) in enumerate(offsets):
            if tap == centre:
                continue
            rows_dst, rows_src = shifted_slices(di, h)
            cols_dst, cols_src = shifted_slices(dj, w)
            # im2col did block[dst] = x[src], so the gradient flows from dst to src.
            dx[:, rows_src, cols_src] += cols[:, rows_dst, cols_dst, tap, :]

    dx = np.empty(x_shape, dtype=cols.dtype)
    for_each_chunk(scatter_add, cols.reshape(n, h, w, t, c), dx)
    return dx
