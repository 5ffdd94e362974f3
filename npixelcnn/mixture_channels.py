"""PixelCNN++'s channel coefficients: the means of G and B move linearly with the earlier sub-pixels.

Salimans, Karpathy, Chen and Kingma (2017), "PixelCNN++", section 2.2. A colour pixel is C = 3
sub-pixels, R, G, B, and each has a discretized logistic mixture of K components
(:mod:`npixelcnn.logistic_mixture`). PixelCNN++ makes the means of G and B depend on the
values of the sub-pixels before them, per component k:

    mu'_R,k = mu_R,k
    mu'_G,k = mu_G,k + alpha_k x_R
    mu'_B,k = mu_B,k + beta_k x_R + gamma_k x_G,

x the value of a level y in [-1, 1], x = 2y/(L-1) - 1, and alpha, beta, gamma = tanh of numbers
the network gives. In general, sub-pixel c's component k has the mean

    mu'_c,k = mu_c,k + sum_{j < c} tanh(r_c,j,k) x_j.

The channel masks of :mod:`npixelcnn.masks` already let G's whole mixture depend on R at its
own pixel, through the network; the coefficients add a direct, exactly linear path, which is
what colour images mostly need (G is usually near R). Unlike PixelCNN++, each sub-pixel here
keeps its own mixture weights (PixelCNN++ picks one component for all three).

**Layout.** Every sub-pixel gets the same P = 3K + (C - 1)K numbers:

    [K logits | K means | K log-scales | K coefficients on x_0 | ... | K on x_{C-2}],

so coefficient block j multiplies sub-pixel j's value, and sub-pixel c reads blocks j < c:
R reads none, G block 0 (alpha), B blocks 0 and 1 (beta, gamma). The slots j >= c are unused
(the loss gives them a zero gradient). A uniform P keeps the model's contract as it is: the
output layer's channels are C equal groups, sub-pixel c's P numbers in group c
(:mod:`npixelcnn.masks`), and forward returns (N, H, W, C, P). Sizes that differ by sub-pixel
(3K, 4K, 5K) would need uneven channel groups in every layer for 2K numbers saved per pixel.

**The setting.** A model asks for them with ``channel_coefficients=True`` (output
"logistic-mixture", in_channels >= 2, channel_order "ordered"); the default is False. A config
or checkpoint written before the setting existed, or without it, then still builds the model it
built (3K numbers per sub-pixel), and the setting is recorded only when True. Off by default
also because here, unlike in PixelCNN++, the masks already link the sub-pixels: the
coefficients are an addition to ask for, not what makes colour work.

**Gradients.** Given the targets, the shift is a constant of the means, so the mixture's own
backward (:func:`~npixelcnn.logistic_mixture.mixture_loss`) gives dL/dmu', which is dL/dmu, and

    dL/dr_c,j,k = dL/dmu'_c,k * x_j * (1 - tanh(r_c,j,k)^2)    for j < c, 0 otherwise.

The targets are levels, never differentiated. Everything that scores or draws sub-pixel c
needs the levels of the sub-pixels before it at the same pixel: the loss and NLLs read them
from the targets, :func:`channel_log_probs` from the images the outputs were computed from,
and :func:`channel_draw` from ``earlier``, the levels drawn (or given) so far at that pixel.
"""

import numpy as np

from .logistic_mixture import (check_mixture, mixture_draw, mixture_log_probs, mixture_loss, mixture_nll,
                               params_per_pixel)


def channel_params_per_sub_pixel(components, channels):
    """P = 3K + (C - 1)K: a sub-pixel's mixture and its coefficients on the C - 1 sub-pixels
    that can come before it."""
    return params_per_pixel(components) + (channels - 1) * components


def level_values(levels_array, levels):
    """Levels y (...) -> their values x = 2y/(L-1) - 1 in [-1, 1], float64 (...)."""
    return 2.0 * np.asarray(levels_array, dtype=np.float64) / (levels - 1) - 1.0


def earlier_mask(channels):
    """(C, C - 1) float64: [c, j] = 1 where coefficient block j is read by sub-pixel c (j < c)."""
    return np.tri(channels, channels - 1, k=-1)


def shift_means(params, values, components):
    """The means moved by the coefficients: the mixture parameters that score or draw each sub-pixel.

    Args:
        params: (..., C, P) floating, P = 3K + (C-1)K, the layout of the module docstring.
        values: (..., C - 1) float64, x_j of the sub-pixels that can come before another
            (only those before c are read for sub-pixel c).
        components: K.

    Returns:
        (shifted, coefficients): shifted (..., C, 3K) float64, [logits | mu' | log-scales];
        coefficients (..., C, C - 1, K) float64, tanh(r), 0 in the unused slots.
    """
    k, channels = components, params.shape[-2]
    mixture = params[..., :3 * k].astype(np.float64)
    raw = params[..., 3 * k:].astype(np.float64).reshape(params.shape[:-1] + (channels - 1, k))
    coefficients = np.tanh(raw) * earlier_mask(channels)[:, :, None]           # (..., C, C-1, K)
    shift = np.einsum("...cjk,...j->...ck", coefficients, values)               # sum_j coef * x_j
    shifted = mixture.copy()
    shifted[..., k:2 * k] += shift
    return shifted, coefficients


def channel_nll(params, targets, levels, components):
    """Per-sub-pixel NLL in nats.

    Args:
        params: (..., C, P) floating; targets: (..., C) integer levels in [0, L); levels: L;
        components: K.

    Returns:
        (..., C) float64, -log P(target of c | the targets before c at its pixel).
    """
    _check_shapes(params, targets, levels, components)
    shifted, _ = shift_means(params, level_values(targets[..., :-1], levels), components)
    return mixture_nll(shifted, targets, levels)


def channel_loss(params, targets, levels, components):
    """Mean NLL over all sub-pixels, and its gradient.

    Args: as :func:`channel_nll`.

    Returns:
        (loss, dparams): loss a Python float; dparams (..., C, P) in params' dtype.
    """
    _check_shapes(params, targets, levels, components)
    k = components
    values = level_values(targets[..., :-1], levels)                             # (..., C-1)
    shifted, coefficients = shift_means(params, values, k)
    loss, dshifted = mixture_loss(shifted, targets, levels)          # float64, as shifted is
    dmeans = dshifted[..., k:2 * k]                                  # dL/dmu' = dL/dmu: the shift is a constant
    # dL/dr_cjk = dL/dmu'_ck * x_j * (1 - tanh(r_cjk)^2) where j < c; the mask zeroes the unread slots.
    dcoefficients = dmeans[..., :, None, :] * values[..., None, :, None] * (1 - coefficients ** 2)
    dcoefficients *= earlier_mask(params.shape[-2])[:, :, None]
    dparams = np.concatenate([dshifted, dcoefficients.reshape(dshifted.shape[:-1] + (-1,))], axis=-1)
    return loss, dparams.astype(params.dtype)


def channel_log_probs(params, images, levels, components):
    """The normalised log-probability of every level of every sub-pixel, given the levels of the
    sub-pixels before it in ``images``.

    Args:
        params: (..., C, P) floating; images: (..., C) integer levels, the image the outputs
            were computed from (sub-pixel c's row reads images[..., :c]); levels: L; components: K.

    Returns:
        (..., C, L) in params' dtype: logsumexp over the last axis is 0, and [..., c, y] is
        -channel_nll at level y of sub-pixel c.
    """
    _check_shapes(params, images, levels, components, what="images")
    shifted, _ = shift_means(params, level_values(images[..., :-1], levels), components)
    return mixture_log_probs(shifted, levels).astype(params.dtype)


def channel_draw(params, earlier, levels, components, temperature, rng):
    """One level per row for sub-pixel c = earlier.shape[1], its mean shifted by the earlier ones.

    Args:
        params: (B, P) floating, sub-pixel c's numbers; earlier: (B, c) integer levels of the
            sub-pixels before c at the pixel; levels: L; components: K; temperature, rng: as
            :func:`~npixelcnn.logistic_mixture.mixture_draw`, which draws from the shifted mixture
            (and takes the same one rng.random((B, 2))).

    Returns:
        (B,) uint8 levels.
    """
    k = components
    if not isinstance(params, np.ndarray) or not np.issubdtype(params.dtype, np.floating):
        raise TypeError("params must be a floating-point NumPy array, got "
                        f"{getattr(params, 'dtype', type(params).__name__)}")
    if not isinstance(earlier, np.ndarray) or earlier.ndim != 2 or len(earlier) != len(params) \
            or not np.issubdtype(earlier.dtype, np.integer):
        raise ValueError(f"earlier must be an integer array (B, c) of the levels of the sub-pixels "
                         f"before c at the pixel, B = {len(params)}; got "
                         f"{getattr(earlier, 'shape', type(earlier).__name__)}")
    c = earlier.shape[1]
    channels = (params.shape[-1] - params_per_pixel(k)) // k + 1
    if params.ndim != 2 or params.shape[-1] != channel_params_per_sub_pixel(k, channels) or c >= channels:
        raise ValueError(f"params must be (B, 3K + (C-1)K) = (B, {channel_params_per_sub_pixel(k, channels)}) "
                         f"for K = {k}, and earlier (B, c) with c < C = {channels}; got params "
                         f"{params.shape}, earlier {earlier.shape}")
    coefficients = np.tanh(params[:, 3 * k:3 * k + c * k].astype(np.float64)).reshape(len(params), c, k)
    shift = np.einsum("bjk,bj->bk", coefficients, level_values(earlier, levels))
    shifted = params[:, :3 * k].astype(np.float64)
    shifted[:, k:2 * k] += shift
    return mixture_draw(shifted, levels, temperature, rng)


def _check_shapes(params, targets, levels, components, what="targets"):
    """Say what is wrong with the shapes; the mixture checks the values and types."""
    check_mixture(levels, components)
    if not isinstance(params, np.ndarray) or not np.issubdtype(params.dtype, np.floating):
        raise TypeError("params must be a floating-point NumPy array, got "
                        f"{getattr(params, 'dtype', type(params).__name__)}")
    if params.ndim < 2:
        raise ValueError(f"params must be an array (..., C, P) with a sub-pixel axis, got shape {params.shape}")
    channels = params.shape[-2]
    expected = channel_params_per_sub_pixel(components, channels)
    if params.shape[-1] != expected:
        raise ValueError(f"params must have 3K + (C-1)K = {expected} values per sub-pixel for K = "
                         f"{components}, C = {channels} ([logits | means | log-scales | coefficients]), "
                         f"got shape {params.shape}")
    if not isinstance(targets, np.ndarray) or not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"{what} must be an integer NumPy array of levels (..., C), got "
                        f"{getattr(targets, 'dtype', type(targets).__name__)}")
    if targets.shape != params.shape[:-1]:
        raise ValueError(f"{what} shape {targets.shape} does not match params shape {params.shape} "
                         f"without its last axis, {params.shape[:-1]}")
    if targets.size and (targets.min() < 0 or targets.max() >= levels):
        raise ValueError(f"{what} must be levels in [0, {levels - 1}], got values from "
                         f"{targets.min()} to {targets.max()}")
