"""The worked solutions of lesson 07 (how many levels?): try each exercise yourself first.

The notebook imports these names when SOLUTIONS is True.
"""

import numpy as np


# Exercise 1: a 1x1 convolution from head to levels channels has a (1, 1, head, levels) weight
# and a bias per output channel; the logits are n * height * width * levels float32 numbers.
def output_params(head, levels):
    return head * levels + levels


def logits_bytes(n, height, width, levels):
    return 4 * n * height * width * levels


# Exercise 2: number the (position, level) pairs, position * levels + level, and count them all
# with one bincount: counts (H, W, L), plus one per level. (A one-hot array would hold
# N x H x W x L booleans: 12 GB for the training set at 256 levels.) Then each test pixel's
# probability under its position's histogram.
def position_histogram_bits(train_levels, test_levels, levels):
    train_levels, test_levels = np.asarray(train_levels), np.asarray(test_levels)
    height, width = train_levels.shape[1:]
    pairs = np.arange(height * width).reshape(height, width) * levels + train_levels        # (N, H, W)
    counts = np.bincount(pairs.reshape(-1), minlength=height * width * levels).reshape(height, width, levels) + 1.0
    probs = counts / counts.sum(axis=-1, keepdims=True)
    picked = np.take_along_axis(probs[None], test_levels[..., None], axis=-1)              # (N, H, W, 1)
    return float(-np.log2(picked).mean())


# Exercise 3: the bins are consecutive runs of 256 // levels levels, so a reshape groups them.
def coarsen(probs, levels):
    probs = np.asarray(probs)
    return probs.reshape(probs.shape[:-1] + (levels, probs.shape[-1] // levels)).sum(axis=-1)
