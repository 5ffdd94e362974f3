"""A categorical distribution given by logits: its log-probabilities, and draws from it.

Two outputs use it: the softmax over a pixel's L levels (:mod:`npixelcnn.distributions`), and
the choice of a component among the K of a logistic mixture (:mod:`npixelcnn.logistic_mixture`).
"""

import numpy as np

from . import ops


def log_softmax(logits):
    """logits (..., C) -> log softmax (..., C): z - logsumexp(z) over the last axis, in their dtype.
    The maximum is subtracted first, so no exponent is above 0 and nothing overflows."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def draw(logits, temperature, rng):
    """One class per row of ``logits`` (n, C), from softmax(logits / temperature).

    Takes one ``rng.random(n)``; see :func:`draw_with_uniforms`.

    Returns:
        (n,) uint8 classes (a pixel's levels: C <= 256).
    """
    return draw_with_uniforms(logits, temperature, rng.random(len(logits))).astype(np.uint8)


def draw_with_uniforms(logits, temperature, u):
    """One class per row of ``logits`` (n, C), from softmax(logits / temperature), chosen by ``u``.

    Inverse-CDF sampling: the uniform u[i] in [0, 1) picks the first class whose
    cumulative probability exceeds it (the running sums from ``ops.cumsum_rows``).
    Computed in the logits' own precision: float32 for a float32 model, whose
    exp NumPy's SIMD code computes on twice as many values per instruction as
    in float64 (the ``draw`` line of ``python benchmarks/bench_sampling.py
    --levels 256 --profile`` shows its share of a run). Two logit arrays that
    differ in the last bits (sums taken in another order) give the same classes
    unless a u lands within that distance of a class boundary.

    Returns:
        (n,) int classes in [0, C).
    """
    z = np.asarray(logits)
    if not np.issubdtype(z.dtype, np.floating) or not (
            float(np.finfo(z.dtype).tiny) <= temperature <= float(np.finfo(z.dtype).max)):
        z = z.astype(np.float64)      # a temperature float32 cannot hold (1e-50, 1e300) divides in float64
    if not np.isfinite(z).all():
        raise ValueError("draw: the model gave NaN or infinite logits; its parameters are broken "
                         "(a diverged run?), so there is nothing to sample from")
    # Subtract the maximum before dividing: every difference is <= 0, so a tiny
    # temperature sends it to -inf (probability 0, a greedy choice), never to
    # +inf, where exp and the normalisation would make NaNs.
    with np.errstate(over="ignore"):
        z = (z - z.max(axis=1, keepdims=True)) / temperature
    cdf = ops.cumsum_rows(np.exp(z))
    scaled = np.asarray(u)[:, None] * cdf[:, -1:]          # scale u instead of normalising the probabilities
    return np.minimum((cdf <= scaled).sum(axis=1), z.shape[1] - 1)
