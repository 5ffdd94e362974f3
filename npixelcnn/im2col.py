"""im2col and col2im for "same"-padded, stride-1 convolutions in NHWC layout.

A convolution is a matrix product once every output pixel's receptive field has
been copied into one row of a matrix (im2col)::

    cols[n*H*W + r*W + c, t*C + ch] = x_padded[n, r + i_t, c + j_t, ch]

for each kernel tap t at position (i_t, j_t). With weights gathered into the
matching (T*C_in, C_out) matrix, ``cols @ W`` is the convolution.

Only the taps we pass in are gathered. A causal mask keeps about half of a
kernel's taps, so gathering just those skips the multiply-adds that a masked
weight would turn into zeros anyway.

A dilated kernel needs nothing new here. Its k x k taps sit d pixels apart
in a window (k - 1) * d + 1 pixels wide (see :mod:`npixelcnn.masks`), so a
layer passes the taps' positions in that window (its taps times d) and the
window's width as ``kernel_size``: the pixels between the taps are simply
never gathered. k = 3, d = 2: taps (0, 1) and (1, 0) become (0, 2) and (2, 0)
of a 5 x 5 window, two pixels up and two to the left of the output pixel.

These are the plain versions, to read next to lesson 02: pad once, then one
shifted window per tap (the Python loop runs over the few taps, never over
pixels). Their fast twins, in :mod:`npixelcnn.fast_ops`, give the same numbers
without the padded copy; the command line's training runs those.
"""

import numpy as np


def im2col(x, taps, kernel_size):
    """Gather the selected kernel taps of every output pixel into rows.

    Args:
        x: (N, H, W, C) input.
        taps: (T, 2) positions (row, col) in the window to gather, in the order
            the weight rows will use.
        kernel_size: the width of the square window the taps sit in, centred on
            the output pixel: k for a k x k kernel, (k - 1) * d + 1 for one
            dilated by d (then the taps are the kernel's positions times d).

    Returns:
        cols: (N*H*W, T*C); column block t holds tap t.
    """
    n, h, w, c = x.shape
    p = kernel_size // 2
    x_padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))          # zeros around the image
    cols = np.empty((n, h, w, len(taps), c), dtype=x.dtype)
    for t, (i, j) in enumerate(taps):
        cols[:, :, :, t, :] = x_padded[:, i:i + h, j:j + w, :]       # the window tap t sees
    return cols.reshape(n * h * w, len(taps) * c)


def col2im(cols, x_shape, taps, kernel_size):
    """Adjoint of :func:`im2col`: scatter-add rows back onto the input grid.

    Every input pixel was copied into up to T places by im2col, so its gradient
    is the sum of the gradients of those copies: add each tap's block back into
    the window it came from, then drop the padding (it has no gradient).

    Args:
        cols: (N*H*W, T*C) gradient with respect to im2col's output.
        x_shape: (N, H, W, C), the shape of im2col's input.
        taps, kernel_size: as given to im2col.

    Returns:
        dx: (N, H, W, C), the gradient with respect to im2col's input.
    """
    n, h, w, c = x_shape
    p = kernel_size // 2
    blocks = cols.reshape(n, h, w, len(taps), c)
    dx_padded = np.zeros((n, h + 2 * p, w + 2 * p, c), dtype=cols.dtype)
    for t, (i, j) in enumerate(taps):
        dx_padded[:, i:i + h, j:j + w, :] += blocks[:, :, :, t, :]
    return dx_padded[:, p:p + h, p:p + w, :].copy()
