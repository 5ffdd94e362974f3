"""Coloured MNIST: each digit drawn in one colour on a background of another.

A first colour data set that needs no download beyond MNIST: the same digits,
labels and order, with a channel axis that matters. The recipe, for image i of
a split:

1. The palette is the 64 colours whose channels are each one of 0, 85, 170,
   255: colour k is 85 * (k // 16, k // 4 % 4, k % 4) in (R, G, B). Those four
   values are the four levels of ``quantize(..., 4)`` (0, 1, 2, 3), so the 64
   colours stay 64 distinct colours in a 4-level colour model.
2. One 64-bit number u_i per image is drawn from NumPy's PCG64 generator
   seeded with [SEED, 0] for "train" or [SEED, 1] for "test". The foreground is
   colour u_i % 64; the background is the colour (u_i // 64) % 63 + 1 steps
   further round the palette, so it is never the foreground and each of the
   other 63 is equally likely.
3. Each pixel takes one of the two: the foreground where MNIST's grey value
   is at least INK (128, the ink), the background elsewhere (the paper). So an
   image holds exactly two colours, and at 4 levels per channel each is exactly
   a level of every channel: what is uncertain about a pixel is whether it is
   ink, and once its R is drawn that is often known (unless the two colours
   share their R), which is what ordering the channels R, G, B can exploit.

The numbers are drawn for the full split (60,000 / 10,000 images) and the first
N kept, so image i has the same colours whatever N is: the tests' committed
subset (the first 2,000 / 1,000 MNIST images) is exactly the first images of
the full coloured set.
"""

import numpy as np

from .data import SPLITS, load_mnist

SEED = 2017                        # fixed; any change makes another data set
SPLIT_NUMBER = {"train": 0, "test": 1}
FULL_SIZE = {"train": 60_000, "test": 10_000}   # images in the full MNIST splits

# The 64 colours, (64, 3) uint8: every (R, G, B) with channels in {0, 85, 170, 255}.
CHANNEL_VALUES = np.array([0, 85, 170, 255], dtype=np.uint8)
PALETTE = np.array([CHANNEL_VALUES[[k // 16, k // 4 % 4, k % 4]] for k in range(64)], dtype=np.uint8)

INK = 128        # grey values from here on are the digit's ink


def coloured_mnist_colours(split="train"):
    """The recipe's colours for every image of the full split.

    Args:
        split: "train" or "test".

    Returns:
        (foreground, background): each (N_full, 3) uint8 RGB, rows of :data:`PALETTE`,
        N_full = 60,000 / 10,000; foreground[i] != background[i] in at least one channel.
    """
    _check_split(split)
    # PCG64's raw output is fixed by its algorithm and the seed; Generator methods
    # (integers, choice) may change their streams between NumPy versions, which
    # would silently make another data set.
    raw = np.random.PCG64([SEED, SPLIT_NUMBER[split]]).random_raw(FULL_SIZE[split])
    fg = raw % 64
    bg = (fg + (raw // 64) % 63 + 1) % 64        # 1..63 steps on: never the foreground
    return PALETTE[fg.astype(np.intp)], PALETTE[bg.astype(np.intp)]


def colourise(grey, foreground, background):
    """Each image's foreground where its grey value is ink (>= INK), its background elsewhere.

    Args:
        grey: (N, H, W) uint8 grey values in [0, 255].
        foreground, background: (N, 3) uint8 RGB colours, one pair per image.

    Returns:
        (N, H, W, 3) uint8 RGB.
    """
    ink = (grey >= INK)[..., None]                            # (N, H, W, 1)
    return np.where(ink, foreground[:, None, None, :], background[:, None, None, :]).astype(np.uint8)


def load_coloured_mnist(split="train", data_dir=None, mirrors=None, progress=True):
    """Load one split of coloured MNIST, made from MNIST by the recipe in the module docstring.

    Args:
        split: "train" or "test".
        data_dir, mirrors, progress: passed to :func:`load_mnist`, which reads (and if
            needed downloads) the grey images.

    Returns:
        (images, labels): images (N, 28, 28, 3) uint8 RGB, labels (N,) uint8 digits in
        [0, 9], MNIST's labels unchanged. N is 60,000 / 10,000, or 2,000 / 1,000 for
        the tests' subset.
    """
    _check_split(split)
    grey, labels = load_mnist(split, data_dir=data_dir, mirrors=mirrors, progress=progress)
    foreground, background = coloured_mnist_colours(split)
    n = len(grey)
    if n > FULL_SIZE[split]:       # the colours of image i exist only for MNIST's own images
        raise ValueError(f"coloured MNIST has colours for {FULL_SIZE[split]:,} {split} images, got {n:,}")
    return colourise(grey, foreground[:n], background[:n]), labels


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
