"""Discretized logistic mixture: PixelCNN++'s output distribution, forward and backward by hand.

Salimans, Karpathy, Chen and Kingma (2017), "PixelCNN++", section 2.1. Level y of L sits at
v = 2y/(L-1) - 1 in [-1, 1], in a bin of half-width h = 1/(L-1). Each pixel has K logistic
components, weights pi = softmax(logits), means mu_k and scales s_k = exp(log_scale_k):

    P(y) = sum_k pi_k P(y | k),    P(y | k) = sigmoid(a_k) - sigmoid(b_k),
    a_k = (v + h - mu_k) / s_k,    b_k = (v - h - mu_k) / s_k    (the bin's edges, standardised).

The first bin takes the whole left tail (b = -inf, sigmoid(b) = 0), the last the right tail
(a = +inf, sigmoid(a) = 1), so the L probabilities telescope to exactly 1. (PixelCNN++ finds
the edge bins by thresholds on v, v < -0.999 and v > 0.999; we use the level index.)

Subtracting two sigmoids loses everything when both are near 1 (a bin far right of the mean),
and the difference underflows in the far tails. PixelCNN++ switches to the density at the bin's
centre times the bin's width there (when the difference is < 1e-5): an approximation, almost
2 nats too low for a sharp component ten bins away, after which the L probabilities no longer
sum to 1. We need no switch: the identity

    sigmoid(a) - sigmoid(b) = sigmoid(a) * (1 - sigmoid(b)) * (1 - exp(-(a - b)))

(put both over (1 + e^a)(1 + e^b)) gives, with log sigmoid(a) = -softplus(-a) and
log(1 - sigmoid(b)) = -softplus(b),

    log P(y | k) = -softplus(-a) - softplus(b) + log(1 - exp(-w)),    w = a - b = 2h / s.

Three terms, none of which cancels or overflows, exact in every tail. The edge bins just drop
the factor that is 1 for them: the first keeps -softplus(-a), the last -softplus(b). And w is
computed as 2h/s, not as a - b, which loses digits when a and b are both large.

Log-scales are clamped below at -7, as in PixelCNN++: a scale of 9e-4, a ninth of a bin's width
at L = 256. That bounds 1/s, and with it the gradients, by e^7 = 1097. The clamp passes no
gradient: where log_scale < -7 its gradient is 0, and the loss is that of log_scale = -7.
"""

from typing import NamedTuple

import numpy as np

from .categorical import draw_with_uniforms, log_softmax
from .validation import check_levels, check_positive_int

MIN_LOG_SCALE = -7.0
# mixture_log_probs works on (rows, L, K) float64 blocks of about this many numbers (2 MB each):
# 50 MNIST images at L = 256, K = 10 would need 800 MB per array in one go.
LOG_PROBS_BLOCK = 2 ** 18


def params_per_pixel(components):
    """The numbers a pixel's distribution needs: K logits, K means, K log-scales."""
    check_positive_int(components, "components", minimum=1)
    return 3 * components


def check_mixture(levels, components):
    """Raise unless ``levels`` is an int in [2, 256] and ``components`` an int >= 1."""
    check_levels(levels)
    check_positive_int(components, "components", minimum=1)


def split_params(params, components):
    """params (..., 3K) -> (logits, means, log_scales), each a (..., K) view."""
    k = components
    if params.shape[-1] != params_per_pixel(k):
        raise ValueError(f"params must have 3 * components = {3 * k} values on the last axis "
                         f"([logits | means | log-scales]), got shape {params.shape}")
    return params[..., :k], params[..., k:2 * k], params[..., 2 * k:]


def mixture_nll(params, targets, levels):
    """Per-pixel NLL in nats.

    Args:
        params: (..., 3K) floating, [K mixture logits | K means | K log-scales] per pixel.
        targets: (...) integer levels in [0, levels).
        levels: L, an int in [2, 256].

    Returns:
        (...) float64, -log P(target).
    """
    _check_inputs(params, targets, levels)
    return -_forward(params, targets, levels)[0]


def mixture_total_nll(params, targets, levels):
    """Summed NLL in nats over all pixels, without the gradient (for evaluation). A Python float."""
    return float(mixture_nll(params, targets, levels).sum())


def mixture_loss(params, targets, levels):
    """Mean NLL over all pixels, and its gradient.

    Args: as :func:`mixture_nll`.

    Returns:
        (loss, dparams): loss the mean NLL in nats (a Python float); dparams (..., 3K) in
        params' dtype, d(loss)/d(params). Computed in float64.
    """
    _check_inputs(params, targets, levels)
    log_p, joint, log_weights, edges, unclamped = _forward(params, targets, levels)
    count = log_p.size
    # NLL = -logsumexp_k joint_k, so dNLL/djoint_k = -r_k, with r_k = pi_k P(y|k) / P(y) the
    # responsibility of component k for the level we saw (the softmax of joint over k).
    r = np.exp(joint - log_p[..., None])
    # joint_k = log_softmax(logits)_k + ...: the softmax-cross-entropy gradient, with r for onehot.
    dlogits = np.exp(log_weights) - r
    # log P(y|k) = -softplus(-a) - softplus(b) + log(1 - e^-w): its partial derivatives.
    inner = edges.has_upper & edges.has_lower
    d_upper = np.where(edges.has_upper, _sigmoid(-edges.upper), 0.0)      # d/da: 1 - sigmoid(a)
    d_lower = np.where(edges.has_lower, -_sigmoid(edges.lower), 0.0)      # d/db: -sigmoid(b)
    # w d/dw log(1 - e^-w) = w / (e^w - 1), written w / (1 - e^-w) * e^-w so nothing overflows.
    w_d_width = np.where(inner, edges.width / -np.expm1(-edges.width) * np.exp(-edges.width), 0.0)
    # a, b and w all scale with 1/s = exp(-log_s): da/dlog_s = -a, and so on; a and b move
    # with the mean as -1/s, w does not. The chain rule with dNLL/dlog P(y|k) = -r:
    dmeans = r * (d_upper + d_lower) * edges.inv_scale
    dlog_scales = r * (d_upper * edges.upper + d_lower * edges.lower + w_d_width)
    dlog_scales *= unclamped                                    # the clamp passes no gradient
    dparams = np.concatenate([dlogits, dmeans, dlog_scales], axis=-1) / count
    return float(-log_p.sum() / count), dparams.astype(params.dtype)


def mixture_log_probs(params, levels):
    """The normalised log-probability of every level, by the same formulas as the NLL.

    Args:
        params: (..., 3K) floating, as :func:`mixture_nll`; levels: L.

    Returns:
        (..., L) in params' dtype (computed in float64): logsumexp over the last axis is 0,
        and ``[..., y]`` is ``-mixture_nll`` at level y. Works on blocks of rows: the memory
        beyond the result is about 7 blocks of LOG_PROBS_BLOCK float64 numbers (15 MB).
    """
    check_levels(levels)
    _check_params(params)
    rows = params.reshape(-1, params.shape[-1])
    out = np.empty((len(rows), levels), dtype=params.dtype)
    all_levels = np.arange(levels)
    step = max(1, LOG_PROBS_BLOCK // (levels * params.shape[-1] // 3))
    for start in range(0, len(rows), step):
        block = rows[start:start + step, None, :]                   # (rows, 1, 3K) against (L,)
        out[start:start + step] = _forward(block, all_levels, levels)[0]
    return out.reshape(params.shape[:-1] + (levels,))


def mixture_draw(params, levels, temperature, rng):
    """One level per row, drawn from the mixture in two steps, O(K) work per pixel.

    Pick a component k with probability softmax(logits / temperature)_k (inverse CDF on a
    uniform u1), then a value from its logistic by inverting the CDF at a second uniform u2,
    v = mu_k + temperature * s_k * log(u2 / (1 - u2)), and return the level whose bin holds v
    (the edge bins hold everything beyond them). This draws from exactly the distribution
    :func:`mixture_log_probs` describes (at temperature 1) without computing all L of its
    probabilities. A temperature < 1 sharpens both the choice and the logistics.

    Args:
        params: (B, 3K) floating; levels: L; temperature: > 0; rng: a np.random.Generator,
            from which it takes one rng.random((B, 2)).

    Returns:
        (B,) uint8 levels.
    """
    check_levels(levels)
    _check_params(params)
    k = params.shape[-1] // 3
    logits, means, log_scales = (p.astype(np.float64) for p in split_params(params, k))
    u = rng.random((len(params), 2))
    chosen = draw_with_uniforms(logits, temperature, u[:, 0])[:, None]      # (B, 1): the softmax's own draw
    mean = np.take_along_axis(means, chosen, axis=-1)[:, 0]
    scale = np.exp(np.maximum(np.take_along_axis(log_scales, chosen, axis=-1)[:, 0], MIN_LOG_SCALE))
    u2 = np.clip(u[:, 1], 1e-12, 1 - 1e-12)              # rng.random can return 0: log(0) = -inf
    value = mean + temperature * scale * (np.log(u2) - np.log1p(-u2))
    half = 1.0 / (levels - 1)
    level = np.floor((np.clip(value, -2.0, 2.0) + 1 + half) / (2 * half))   # bin y holds [v_y - h, v_y + h)
    return np.clip(level, 0, levels - 1).astype(np.uint8)


class _Edges(NamedTuple):
    """A level's bin in the standardised coordinates of every component, (..., K) arrays."""
    upper: np.ndarray       # a = (v + h - mu) / s
    lower: np.ndarray       # b = (v - h - mu) / s
    width: np.ndarray       # w = a - b = 2h / s
    inv_scale: np.ndarray   # 1 / s
    has_upper: np.ndarray   # False for the last level: its bin reaches +inf
    has_lower: np.ndarray   # False for level 0: its bin reaches -inf


def _forward(params, targets, levels):
    """log P(target) (...) float64, and what the backward pass needs.

    ``targets`` broadcasts against params.shape[:-1]; mixture_log_probs passes every level.
    """
    k = params.shape[-1] // 3
    logits, means, raw_log_scales = (p.astype(np.float64) for p in split_params(params, k))
    log_scales = np.maximum(raw_log_scales, MIN_LOG_SCALE)
    y = np.asarray(targets)[..., None]                               # (..., 1): one level, all K
    half = 1.0 / (levels - 1)
    inv_scale = np.exp(-log_scales)
    centered = (2 * half * y - 1) - means                            # v - mu
    edges = _Edges((centered + half) * inv_scale, (centered - half) * inv_scale,
                   2 * half * inv_scale, inv_scale, y < levels - 1, y > 0)
    log_weights = log_softmax(logits)
    joint = log_weights + _log_bin_probs(edges)                    # log(pi_k P(y|k)), (..., K)
    log_p = _logsumexp(joint)
    return log_p, joint, log_weights, edges, raw_log_scales >= MIN_LOG_SCALE


def _log_bin_probs(edges):
    """log P(y | k) = -softplus(-a) - softplus(b) + log(1 - e^-w); the edge bins drop a factor."""
    log_p = np.where(edges.has_upper, -_softplus(-edges.upper), 0.0)          # log sigmoid(a)
    log_p = log_p + np.where(edges.has_lower, -_softplus(edges.lower), 0.0)   # log(1 - sigmoid(b))
    return log_p + np.where(edges.has_upper & edges.has_lower, _log1mexp(edges.width), 0.0)


def _softplus(x):
    """log(1 + e^x) = max(x, 0) + log(1 + e^-|x|): the exponent is <= 0, nothing overflows."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x):
    """1 / (1 + e^-x) = exp(-softplus(-x)), with no overflow for any x."""
    return np.exp(-_softplus(-x))


def _log1mexp(w):
    """log(1 - e^-w) for w > 0 (Maechler, 2012): -expm1 is exact for small w, log1p for large."""
    small = w < np.log(2.0)
    return np.where(small, np.log(-np.expm1(-np.where(small, w, 1.0))),
                    np.log1p(-np.exp(-np.where(small, 1.0, w))))


def _logsumexp(z):
    """log(sum(exp(z))) over the last axis, (..., K) -> (...), shifted by the max."""
    z_max = z.max(axis=-1)
    return z_max + np.log(np.exp(z - z_max[..., None]).sum(axis=-1))


def _check_params(params):
    if not isinstance(params, np.ndarray) or not np.issubdtype(params.dtype, np.floating):
        raise TypeError("params must be a floating-point NumPy array, got "
                        f"{getattr(params, 'dtype', type(params).__name__)}")
    if params.ndim < 1 or params.shape[-1] == 0 or params.shape[-1] % 3:
        raise ValueError("params must have 3 * components values per pixel on the last axis "
                         f"([K logits | K means | K log-scales]), got shape {params.shape}")
    if params.size == 0:
        raise ValueError(f"params is empty (shape {params.shape}): there are no pixels")
    if not np.isfinite(params).all():
        raise ValueError("params hold NaN or infinite values (did training diverge?)")


def _check_inputs(params, targets, levels):
    """As losses._check_loss_inputs: say what was wrong and what was expected."""
    check_levels(levels)
    _check_params(params)
    if not isinstance(targets, np.ndarray) or not np.issubdtype(targets.dtype, np.integer):
        raise TypeError("targets must be an integer NumPy array of levels, got "
                        f"{getattr(targets, 'dtype', type(targets).__name__)}")
    if targets.shape != params.shape[:-1]:
        raise ValueError(f"targets shape {targets.shape} does not match params shape {params.shape} "
                         f"without its last axis, {params.shape[:-1]}")
    if targets.min() < 0 or targets.max() >= levels:
        raise ValueError(f"targets must be levels in [0, {levels - 1}], got values from "
                         f"{targets.min()} to {targets.max()}")
