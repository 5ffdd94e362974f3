"""The worked solutions of lesson 07 (how many levels?): try each exercise yourself first.

The notebook imports these names when SOLUTIONS is True.
"""

import numpy as np


# Exercise 1: the output layer, a 1x1 convolution from head channels to L with a bias, has
# head * L + L = (head + 1) * L parameters; the smallest L with (head + 1) * L > body_params.
def levels_to_outweigh(body_params, head):
    return body_params // (head + 1) + 1


# Exercise 2: count each value (plus one), then divide by the total count of its 4-level bin.
def within_bin_histogram(train_values):
    counts = np.bincount(np.asarray(train_values).reshape(-1), minlength=256) + 1.0
    bins = np.arange(256) * 4 // 256                      # npc.quantize's bin of each value
    totals = np.bincount(bins, weights=counts, minlength=4)
    return counts / totals[bins]


# Exercise 3: log2(w 2^-a + (1 - w) 2^-b) = logaddexp2(log2 w - a, log2(1 - w) - b), with no 2^-a formed.
def mixture_bits(bits_p, bits_q, weight):
    bits_p, bits_q = np.asarray(bits_p, float), np.asarray(bits_q, float)
    return -np.logaddexp2(np.log2(weight) - bits_p, np.log2(1 - weight) - bits_q)
