"""Softmax cross-entropy: the negative log-likelihood of a categorical model.

For logits z over L levels and the true level y of one pixel,

    NLL = -log softmax(z)_y = logsumexp(z) - z_y,    dNLL/dz = softmax(z) - onehot(y).

logsumexp is computed as max(z) + log(sum(exp(z - max(z)))): every exponent is
<= 0, so nothing overflows however large the logits are.
"""

import math

import numpy as np

from . import ops

LN2 = math.log(2.0)


def softmax_cross_entropy(logits, targets):
    """Mean NLL over all pixels, and its gradient.

    Args:
        logits: (..., L) floating, unnormalised log-probabilities.
        targets: (...) integer levels in [0, L), the shape of logits without its
            last axis.

    Returns:
        (loss, dlogits): loss is the mean NLL in nats per dimension (a Python
        float); dlogits (..., L) is (softmax - onehot) / number of pixels.
    """
    _check_loss_inputs(logits, targets)
    exp, sum_exp, nll = _softmax_parts(logits, targets)
    count = len(nll)
    loss = float(nll.sum() / count)
    dlogits = exp / sum_exp[:, None]                      # softmax
    dlogits[np.arange(count), targets.reshape(-1)] -= 1.0
    dlogits /= count
    return loss, dlogits.reshape(logits.shape)


def total_nll(logits, targets):
    """Summed NLL in nats over all pixels, without the gradient (for evaluation).

    Args: as :func:`softmax_cross_entropy`. Returns a Python float (summed in float64).
    """
    _check_loss_inputs(logits, targets)
    return float(_softmax_parts(logits, targets)[2].sum())


def pixel_nll(logits, targets):
    """The NLL in nats of every pixel, without the gradient (per-image scores, Bayes' rule).

    Args: as :func:`softmax_cross_entropy`. Returns (...) float64, the shape of ``targets``.
    """
    _check_loss_inputs(logits, targets)
    return _softmax_parts(logits, targets)[2].reshape(targets.shape)


def _softmax_parts(logits, targets):
    """exp(z - max) (M, L), its row sums (M,) and the per-pixel NLL (M,) float64."""
    levels = logits.shape[-1]
    z = logits.reshape(-1, levels)
    y = targets.reshape(-1).astype(np.intp)
    rows = np.arange(len(y))
    z_max = z.max(axis=1, keepdims=True)
    exp, sum_exp = ops.exp_and_row_sums(z, z_max)        # exp(z - max): exponents <= 0, no overflow;
                                                          # its row sums are in [1, L]
    # NLL = log(sum_exp) + max - z_y. The last two can be large (1e4) and nearly
    # cancel, so subtract them in float64, where float32 inputs are exact.
    margin = z_max[:, 0].astype(np.float64) - z[rows, y].astype(np.float64)
    nll = np.log(sum_exp).astype(np.float64) + margin
    return exp, sum_exp, nll


def _check_loss_inputs(logits, targets):
    if not isinstance(logits, np.ndarray) or not np.issubdtype(logits.dtype, np.floating):
        raise TypeError(f"logits must be a floating-point NumPy array, got {getattr(logits, 'dtype', type(logits).__name__)}")
    if logits.ndim < 1 or logits.shape[-1] < 2:
        raise ValueError(f"logits must have a last axis of at least 2 levels, got shape {logits.shape}")
    if not isinstance(targets, np.ndarray) or not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(
            f"targets must be an integer NumPy array of levels, got {getattr(targets, 'dtype', type(targets).__name__)}"
        )
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"targets shape {targets.shape} does not match logits shape {logits.shape} "
            f"without its last axis, {logits.shape[:-1]}"
        )
    if targets.size == 0:
        raise ValueError("targets is empty: there is nothing to average")
    levels = logits.shape[-1]
    if targets.min() < 0 or targets.max() >= levels:
        raise ValueError(
            f"targets must be levels in [0, {levels - 1}], got values from {targets.min()} to {targets.max()}"
        )
    if not np.isfinite(logits).all():
        raise ValueError("logits hold NaN or infinite values (did training diverge?)")


def nats_to_bits(nats):
    """Nats to bits: divide by ln 2 (the seed's notebook divided by 784 instead)."""
    return nats / LN2


def nats_per_image(nats_per_dim, height=28, width=28, channels=1):
    """Mean NLL per dimension -> NLL of a whole image (sum over its dimensions)."""
    return nats_per_dim * height * width * channels
