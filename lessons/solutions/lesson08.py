"""The worked solutions of lesson 08 (what a likelihood knows): try each exercise yourself first.

The notebook imports these names when SOLUTIONS is True.
"""

import numpy as np


def _midranks(values):
    """The rank of each value among all of them, 1..n, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    # Runs of equal values: where each run starts, and the first and last rank it covers.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]                # one past each run's end
    run_rank = (starts + 1 + ends) / 2                   # mean of ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


# Exercise 1: the Mann-Whitney form of the AUROC. Rank all n + m scores together (ties get
# the mean of their ranks); the out-scores' ranks sum to m(m + 1)/2 plus the number of
# (in, out) pairs the out score wins, with ties counted as half a win. One sort: O((n + m) log(n + m)).
def auroc_by_ranks(in_scores, out_scores):
    in_scores, out_scores = np.asarray(in_scores, float).ravel(), np.asarray(out_scores, float).ravel()
    n, m = len(in_scores), len(out_scores)
    ranks = _midranks(np.concatenate([in_scores, out_scores]))
    wins = ranks[n:].sum() - m * (m + 1) / 2
    return float(wins / (n * m))


# Exercise 2: the false alarms that catching 95% of the outsiders costs. Flag every score >= t.
# Catching at least k = ceil(0.95 m) of the m out scores needs t <= the k-th largest of them;
# the largest such t, that score itself, flags the fewest in scores.
def fpr_at_tpr(in_scores, out_scores, tpr=0.95):
    in_scores, out_scores = np.asarray(in_scores, float).ravel(), np.asarray(out_scores, float).ravel()
    k = int(np.ceil(tpr * len(out_scores) - 1e-9))    # - 1e-9: 0.95 * 100 is 95.00000000000001 in floats
    threshold = np.sort(out_scores)[len(out_scores) - k]
    return float((in_scores >= threshold).mean())


# Exercise 3: one histogram of every training pixel, one extra count per level, then each
# image's mean -log2 p over its pixels.
def one_histogram_bits(train_levels, levels_images, levels):
    counts = np.bincount(np.asarray(train_levels).reshape(-1), minlength=levels) + 1.0
    bits = -np.log2(counts / counts.sum())                       # (L,): the bits of each level
    levels_images = np.asarray(levels_images)
    return bits[levels_images].reshape(len(levels_images), -1).mean(axis=1)
