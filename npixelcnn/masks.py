"""Causal masks for PixelCNN convolutions (van den Oord et al., 2016, section 3.4).

Pixels are generated in raster order: row by row, left to right. A convolution
that predicts pixel (r, c) may only look at pixels that come before it in that
order. For a k x k kernel centred on the output pixel this means:

* every kernel row above the centre row is visible;
* on the centre row, the taps left of the centre are visible;
* mask "A" also hides the centre tap (the first layer must not see the pixel it
  predicts); mask "B" lets the centre through (later layers may see their own
  position, which by then only carries information about earlier pixels);
* every row below the centre is hidden.

Example, k = 5 (1 = visible)::

    mask A          mask B
    1 1 1 1 1       1 1 1 1 1
    1 1 1 1 1       1 1 1 1 1
    1 1 0 0 0       1 1 1 0 0
    0 0 0 0 0       0 0 0 0 0
    0 0 0 0 0       0 0 0 0 0

Dilation (Yu and Koltun, 2016, "Multi-Scale Context Aggregation by Dilated
Convolutions"; WaveNet stacks dilated causal convolutions, and the UvA deep
learning tutorials dilate a Gated PixelCNN's layers) spreads the same k x k
taps d pixels apart: tap (r, c) reads the input at offset
((r - k//2) * d, (c - k//2) * d) from the output pixel, inside a window
(k - 1) * d + 1 pixels wide. The weights, and the mask, stay k x k: the mask
still says which taps a kernel keeps. It stays causal, because multiplying an
offset by d > 0 keeps its sign: a tap in a row above stays in a row above, a
tap left of the centre stays left of it. Mask B, k = 3, d = 2, drawn in its
5 x 5 window (1 = a kept tap, . = a pixel between taps that is never read)::

    1 . 1 . 1
    . . . . .
    1 . 1 . .
    . . . . .
    . . . . .

The layers give im2col and the cached samplers those window positions (the
taps times d) and the window's width, so the code that gathers taps is the
same for a dilated kernel as for a dense one.
"""

import numpy as np

MASK_TYPES = ("A", "B")


# A kernel (or the window of a dilated one) is at most this wide: far wider than any image the
# family models (MNIST is 28 pixels, CIFAR-10 32), and small enough that a typo (or an edited
# checkpoint) asking for a kernel of 20,001 pixels is refused before its list of taps fills the memory.
MAX_KERNEL_SIZE = 255


def check_kernel_size(kernel_size):
    """Raise ValueError unless ``kernel_size`` is a positive odd integer, at most MAX_KERNEL_SIZE."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)):
        raise TypeError(f"kernel_size must be an int, got {type(kernel_size).__name__}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be a positive odd number so the kernel has a centre "
            f"pixel, got {kernel_size}"
        )
    if kernel_size > MAX_KERNEL_SIZE:
        raise ValueError(f"kernel_size must be at most {MAX_KERNEL_SIZE}, got {kernel_size}")


def check_dilation(dilation, kernel_size):
    """Raise unless ``dilation`` is an int >= 1 whose window, (k - 1) * d + 1 pixels wide,
    is at most MAX_KERNEL_SIZE (a kernel_size that passed :func:`check_kernel_size`)."""
    if isinstance(dilation, bool) or not isinstance(dilation, (int, np.integer)):
        raise TypeError(f"dilation must be an int, got {type(dilation).__name__}")
    if dilation < 1:
        raise ValueError(f"dilation must be at least 1 (1: taps side by side), got {dilation}")
    window = dilated_window(int(kernel_size), int(dilation))      # Python ints: no overflow
    if window > MAX_KERNEL_SIZE:
        raise ValueError(f"dilation {dilation} spreads a {kernel_size}x{kernel_size} kernel over a "
                         f"window {window} pixels wide; it must be at most {MAX_KERNEL_SIZE}")


def dilated_window(kernel_size, dilation):
    """The width of the window a k x k kernel dilated by d reads: (k - 1) * d + 1 (k when d = 1)."""
    return (kernel_size - 1) * dilation + 1


def check_mask_type(mask_type):
    """Raise ValueError unless ``mask_type`` is "A" or "B"."""
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")


def causal_mask(kernel_size, mask_type):
    """The mask as a picture.

    Returns:
        mask: bool array (kernel_size, kernel_size); True where the tap is visible.
    """
    check_kernel_size(kernel_size)
    check_mask_type(mask_type)
    centre = kernel_size // 2
    mask = np.zeros((kernel_size, kernel_size), dtype=bool)
    mask[:centre, :] = True                      # every row above the centre
    mask[centre, :centre] = True                 # left of the centre
    mask[centre, centre] = mask_type == "B"      # the centre itself, for mask B
    return mask


def kept_taps(kernel_size, mask_type):
    """The visible taps in raster order.

    Returns:
        taps: int array (T, 2) of (row, col) positions inside the kernel with
            ``causal_mask(kernel_size, mask_type)[row, col]`` True, sorted in
            raster order. T = k*(k//2) + k//2 for mask A, one more for mask B.
    """
    return np.argwhere(causal_mask(kernel_size, mask_type))
