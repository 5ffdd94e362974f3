"""The worked solutions of lesson 09 (neighbouring levels are alike? the output layer): try each
exercise yourself first.

The notebook imports these names when SOLUTIONS is True.
"""

import numpy as np


def _softplus(x):
    return np.logaddexp(0.0, x)                   # log(1 + e^x)


def _sigmoid(x):
    return np.exp(-_softplus(-x))                 # 1 / (1 + e^-x), with no overflow


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# Exercise 1: NLL = -logsumexp(j), j_k = log pi_k + log P(y|k), so dNLL/dj = -r with r = softmax(j),
# the responsibilities. log pi = log_softmax(logits) gives dlogits = pi - r. log P(y|k) =
# -softplus(-a) - softplus(b) + log(1 - e^-w) has partials sigmoid(-a), -sigmoid(b), 1 / (e^w - 1);
# a and b move with the mean as -1/s, and a, b, w with log s as -a, -b, -w.
def pixel_nll_grad(logits, means, log_scales, y, levels):
    h = 1 / (levels - 1)
    v = 2 * y * h - 1
    inv_scale = np.exp(-log_scales)
    a, b, w = (v + h - means) * inv_scale, (v - h - means) * inv_scale, 2 * h * inv_scale
    log_bin = -_softplus(-a) - _softplus(b) + np.log(-np.expm1(-w))
    pi = _softmax(logits)
    r = _softmax(np.log(pi) + log_bin)
    d_a, d_b, d_w = _sigmoid(-a), -_sigmoid(b), 1 / np.expm1(w)
    dlogits = pi - r
    dmeans = r * (d_a + d_b) * inv_scale
    dlog_scales = r * (d_a * a + d_b * b + d_w * w)
    return dlogits, dmeans, dlog_scales


# Exercise 2: the first component whose cumulative weight exceeds u1, the logistic's inverse CDF at
# u2, and the bin [v_y - h, v_y + h) that holds the value (the edge bins hold everything beyond).
def draw_levels(params, u, levels):
    k = params.shape[-1] // 3
    logits, means, log_scales = params[:, :k], params[:, k:2 * k], params[:, 2 * k:]
    chosen = np.minimum((np.cumsum(_softmax(logits), axis=1) <= u[:, :1]).sum(axis=1), k - 1)
    rows = np.arange(len(params))
    u2 = u[:, 1]
    x = means[rows, chosen] + np.exp(log_scales[rows, chosen]) * (np.log(u2) - np.log1p(-u2))
    h = 1 / (levels - 1)
    return np.clip(np.floor((x + 1 + h) / (2 * h)), 0, levels - 1).astype(np.int64)


# Exercise 3: the CDF of every component at the bins + 1 edges of the coarse bins (0 at the first,
# 1 at the last: the tails), differences along the edges, summed over the components weighted by pi.
def mixture_bin_probs(params, levels, bins):
    k = params.shape[-1] // 3
    logits, means, log_scales = params[:, :k], params[:, k:2 * k], params[:, 2 * k:]
    h, m = 1 / (levels - 1), levels // bins
    edges = 2 * np.arange(bins + 1) * m * h - 1 - h                        # (bins + 1,)
    cdf = _sigmoid((edges[:, None] - means[:, None, :]) / np.exp(log_scales)[:, None, :])   # (N, bins + 1, K)
    cdf[:, 0], cdf[:, -1] = 0.0, 1.0
    return (np.diff(cdf, axis=1) * _softmax(logits)[:, None, :]).sum(axis=-1)
