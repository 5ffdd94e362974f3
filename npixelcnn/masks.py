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
"""

import numpy as np

MASK_TYPES = ("A", "B")


# A kernel is at most this wide: far wider than any image the family models (MNIST is 28
# pixels, CIFAR-10 32), and small enough that a typo (or an edited checkpoint) asking for a
# kernel of 20,001 pixels is refused before its list of taps fills the memory.
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
