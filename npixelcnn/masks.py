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

Colour (section 3.4 of the paper): a pixel is three sub-pixels, generated in
the order R, G, B. Every layer's channels are split into ordered groups: the
image's R, G, B are groups 0, 1, 2, and hidden channels are cut into three
contiguous blocks (:func:`channel_groups`). The taps above and to the left
are earlier pixels: they read every channel. The centre tap is this pixel:
there an output channel of group g reads an input channel of group g' only
if g' < g (mask A) or g' <= g (mask B). :func:`channel_mask` as groups
(rows: input group g', columns: output group g; 1 = connected)::

    mask A            mask B
        R G B             R G B
    R   0 1 1         R   1 1 1
    G   0 0 1         G   0 1 1
    B   0 0 0         B   0 0 1

So the first layer's R outputs do not see this pixel at all, its G outputs
see R, its B outputs R and G; after it, hidden group g only carries sub-pixels
before g, and mask B may let group g read itself. The baseline without
cross-channel connections, ``channel_order="independent"`` (each sub-pixel
depends on earlier pixels only), keeps g' == g under mask B and nothing under
mask A. Grey is the case of one group: mask A's centre reads nothing (the
centre tap is dropped, as drawn above for k = 5) and mask B's reads all.
"""

import numpy as np

from .validation import check_positive_int

MASK_TYPES = ("A", "B")
CHANNEL_ORDERS = ("ordered", "independent")


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


def check_channel_order(channel_order):
    """Raise ValueError unless ``channel_order`` is "ordered" or "independent"."""
    if not isinstance(channel_order, str) or channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be 'ordered' (R, then G, then B) or 'independent' "
                         f"(no cross-channel connections), got {channel_order!r}")


def channel_groups(channels, groups):
    """The group of each channel: ``groups`` contiguous blocks, as equal as possible.

    Returns:
        group: int array (channels,), ``c * groups // channels`` for channel c;
            channel_groups(5, 3) is [0, 0, 1, 1, 2].
    """
    check_positive_int(channels, "channels")
    check_positive_int(groups, "groups")
    if channels < groups:
        raise ValueError(f"cannot split {channels} channel(s) into {groups} groups: "
                         f"every group needs at least one channel")
    return np.arange(channels) * groups // channels


def check_groups(groups, name, channels=None):
    """``groups`` as an int array (channels,) of groups numbered 0, 1, ..., G - 1 (each used),
    or a clear error (``channels`` None: any length >= 1)."""
    array = np.asarray(groups)
    if array.ndim != 1 or array.size == 0 or channels is not None and array.size != channels:
        expected = "at least one" if channels is None else channels
        raise ValueError(f"{name} must be a 1-D array with one group per channel ({expected}), "
                         f"got shape {array.shape}")
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must be integer group numbers, one per channel "
                        f"(see channel_groups), got dtype {array.dtype}")
    if array.min() < 0 or array.max() >= array.size or not np.bincount(array).all():
        raise ValueError(f"{name} must number its G groups 0, 1, ..., G - 1, each with at least one "
                         f"channel; got groups {np.unique(array).tolist()}")
    return array.astype(np.int64)


def check_layer_groups(in_groups, out_groups, in_channels, out_channels):
    """A layer's in_groups and out_groups (both given), checked against C_in and C_out.

    Returns:
        in_groups, out_groups: int arrays (C_in,) and (C_out,).
    """
    check_positive_int(in_channels, "in_channels")
    check_positive_int(out_channels, "out_channels")
    if in_groups is None or out_groups is None:
        raise ValueError("in_groups and out_groups go together: give both, or neither for one group")
    return (check_groups(in_groups, "in_groups", in_channels),
            check_groups(out_groups, "out_groups", out_channels))


def count_groups(in_groups, out_groups):
    """G, the number of groups of a layer's input and of its output (the same), or a clear error."""
    g_in, g_out = (int(check_groups(g, name).max()) + 1
                   for g, name in ((in_groups, "in_groups"), (out_groups, "out_groups")))
    if g_in != g_out:
        raise ValueError(f"in_groups has {g_in} group(s) and out_groups {g_out}: "
                         f"a layer's input and output are split into the same groups")
    return g_in


def channel_mask(in_groups, out_groups, mask_type, channel_order="ordered"):
    """Which input channel an output channel may read at the centre tap (this pixel).

    Args:
        in_groups, out_groups: int arrays (C_in,) and (C_out,), the group of each
            channel (see :func:`channel_groups`), the same G groups on both sides.
        mask_type: "A" (g' < g) or "B" (g' <= g).
        channel_order: "ordered", or "independent" (A: nothing, B: g' == g).

    Returns:
        mask: bool array (C_in, C_out); True where output channel o may read input channel i.
    """
    check_mask_type(mask_type)
    check_channel_order(channel_order)
    count_groups(in_groups, out_groups)
    g_in, g_out = np.asarray(in_groups)[:, None], np.asarray(out_groups)[None, :]    # g', g
    if channel_order == "independent":
        return (g_in == g_out) & (mask_type == "B")
    return g_in < g_out if mask_type == "A" else g_in <= g_out


def channel_taps(kernel_size, mask_type, in_groups, out_groups, channel_order="ordered"):
    """The taps a channel-masked layer keeps, and the channel rule at its centre tap.

    With one group, or under "independent" mask A, the centre reads all of its
    input channels or none: the taps of ``mask_type`` say it all. Otherwise the
    centre tap is kept (mask B's taps) and its weights follow :func:`channel_mask`.

    Returns:
        taps: int array (T, 2), in raster order.
        centre_mask: bool (C_in, C_out), or None when the taps say it all.

    Raises ValueError if the layer would keep no weight (k = 1 under mask A with
    one group or "independent"): its output would be its bias alone.
    """
    check_channel_order(channel_order)
    if count_groups(in_groups, out_groups) == 1 or (mask_type, channel_order) == ("A", "independent"):
        taps, centre_mask = kept_taps(kernel_size, mask_type), None      # all of the centre, or none
    else:
        taps, centre_mask = kept_taps(kernel_size, "B"), channel_mask(in_groups, out_groups, mask_type,
                                                                      channel_order)
    if not len(taps):
        raise ValueError(f"a {kernel_size}x{kernel_size} mask {mask_type} with channel_order "
                         f"{channel_order!r} keeps no weight for these groups: it would output its bias alone")
    return taps, centre_mask
