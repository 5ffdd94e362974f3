"""The discretized logistic mixture: exact bins in log space, normalised, and a hand-written gradient."""

import decimal
import math
import tracemalloc

import numpy as np
import pytest

from conftest import GRAD_TOL
from npixelcnn import logistic_mixture as lm
from npixelcnn.gradcheck import numerical_gradient, relative_error


def random_params(rng, shape, components, log_scales=(-2.0, 0.0)):
    """(shape..., 3K) float64: logits N(0, 1), means in [-1.2, 1.2], log-scales uniform in the range."""
    k = components
    return np.concatenate([rng.standard_normal(shape + (k,)),
                           rng.uniform(-1.2, 1.2, shape + (k,)),
                           rng.uniform(*log_scales, shape + (k,))], axis=-1)


def targets_with_both_edges(rng, shape, levels):
    """Random levels, with level 0 and level L-1 among them."""
    targets = rng.integers(0, levels, shape)
    targets.flat[0], targets.flat[1] = 0, levels - 1
    return targets


def plain_bin_probabilities(params, targets, levels):
    """P(y) from the definition in float64, no log tricks: sum_k pi_k (sigmoid(a_k) - sigmoid(b_k))."""
    logits, means, log_scales = lm.split_params(params, params.shape[-1] // 3)
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    s = np.exp(np.maximum(log_scales, -7.0))
    v = (2.0 * targets / (levels - 1) - 1)[..., None]
    h = 1.0 / (levels - 1)
    cdf_upper = np.where(targets[..., None] == levels - 1, 1.0, 1 / (1 + np.exp(-(v + h - means) / s)))
    cdf_lower = np.where(targets[..., None] == 0, 0.0, 1 / (1 + np.exp(-(v - h - means) / s)))
    return (weights * (cdf_upper - cdf_lower)).sum(-1)


def decimal_log_bin_probability(level, levels, mean, log_scale):
    """log(sigmoid(a) - sigmoid(b)) for one inner bin and one component, in 60-digit arithmetic:
    the plain formula, exact even where float64 would cancel or underflow."""
    with decimal.localcontext() as context:
        context.prec = 60
        d = decimal.Decimal
        s, h = d(log_scale).exp(), 1 / d(levels - 1)
        v = 2 * level * h - 1

        def sigmoid(x):
            return 1 / (1 + (-x).exp())

        return float((sigmoid((v + h - d(mean)) / s) - sigmoid((v - h - d(mean)) / s)).ln())


def gradient_errors(params, targets, levels):
    """Relative error of mixture_loss's gradient against central differences, per kind of parameter."""
    k = params.shape[-1] // 3
    _, analytic = lm.mixture_loss(params, targets, levels)
    numeric = numerical_gradient(lambda: lm.mixture_loss(params, targets, levels)[0], params)
    kinds = zip(("logits", "means", "log_scales"), lm.split_params(analytic, k), lm.split_params(numeric, k))
    if k == 1:
        # One component has weight 1 whatever its logit: the gradient is 0, and 0 vs rounding
        # noise has relative error 1, so check it absolutely.
        assert np.all(analytic[..., 0] == 0) and np.abs(numeric[..., 0]).max() < 1e-8
        kinds = list(kinds)[1:]
    return {kind: relative_error(a, n) for kind, a, n in kinds}


# --- the gradient, by central differences -------------------------------------------------------

@pytest.mark.parametrize("levels, log_scales", [(256, (-6.0, -2.0)), (4, (-2.5, 0.5)), (2, (-2.0, 1.0))])
@pytest.mark.parametrize("components", [1, 3])
def test_gradient_of_every_kind_of_parameter_matches_central_differences(rng, levels, log_scales, components):
    params = random_params(rng, (2, 4), components, log_scales)
    targets = targets_with_both_edges(rng, (2, 4), levels)
    # The means near the targets' values, so that every bin carries real probability.
    values = 2.0 * targets / (levels - 1) - 1
    params[..., components:2 * components] = values[..., None] + rng.uniform(-0.05, 0.05, (2, 4, components))
    errors = gradient_errors(params, targets, levels)
    assert max(errors.values()) < GRAD_TOL, errors


def test_where_pixelcnnpp_would_switch_to_the_mid_bin_density_the_bin_is_still_exact():
    # PixelCNN++ replaces sigmoid(a) - sigmoid(b) by the density at the bin's centre times its
    # width when the difference is < 1e-5. Our log-space product has nothing to fix there: it
    # matches the 60-digit plain formula far into both tails, where the density is off by nats.
    levels, level = 256, 100
    v, h = 2 * level / 255 - 1, 1 / 255
    cases = [(v + 0.6, -3.0),       # far right of the mean: sigmoids both near 0
             (v - 0.6, -3.0),       # far left: both near 1, the float64 difference cancels to 0
             (v + 0.05, -6.9),      # a sharp component (s = 1e-3) 13 bins away; not at the
             (v - 0.05, -6.9)]      # clamp, -7, where central differences straddle the kink
    params = np.array([[0.0, mean, log_scale] for mean, log_scale in cases])
    targets = np.full(len(cases), level)
    ours = -lm.mixture_nll(params, targets, levels)
    for (mean, log_scale), log_p in zip(cases, ours):
        exact = decimal_log_bin_probability(level, levels, mean, log_scale)
        assert math.exp(exact) < 1e-5                                  # PixelCNN++'s switch is on
        assert log_p == pytest.approx(exact, rel=1e-12, abs=1e-12)
    # The mid-bin density, log pdf(v) + log(2h), for the sharp components: almost 2 nats too low.
    x = (v - params[2:, 1]) / np.exp(-6.9)
    mid_bin = -x + 6.9 - 2 * np.logaddexp(0, -x) + np.log(2 * h)
    assert np.all(ours[2:] - mid_bin > 1.5)
    errors = gradient_errors(params, targets, levels)
    assert max(errors.values()) < GRAD_TOL, errors


def test_clamped_log_scales_pass_no_gradient(rng):
    params = random_params(rng, (6,), 2, (-6.0, -3.0))
    params[:3, 4] = [-7.5, -9.0, -50.0]                 # below the clamp at -7
    targets = np.array([128, 0, 255, 127, 130, 3])
    params[:, 2:4] = 2 * targets[:, None] / 255 - 1 + 0.01
    _, grad = lm.mixture_loss(params, targets, 256)
    assert np.all(grad[:3, 4] == 0.0)
    assert np.all(grad[:3, 5] != 0.0) and np.all(grad[:3, :4] != 0.0)
    at_clamp = params.copy()
    at_clamp[:3, 4] = lm.MIN_LOG_SCALE
    np.testing.assert_array_equal(lm.mixture_nll(params, targets, 256), lm.mixture_nll(at_clamp, targets, 256))
    errors = gradient_errors(params, targets, 256)
    assert max(errors.values()) < GRAD_TOL, errors


# --- the values -----------------------------------------------------------------------------------

@pytest.mark.parametrize("levels", [2, 4, 256])
def test_nll_equals_the_plain_formula_for_moderate_params(rng, levels):
    params = random_params(rng, (3, 5), 4, (-3.0, 0.0))
    targets = targets_with_both_edges(rng, (3, 5), levels)
    expected = -np.log(plain_bin_probabilities(params, targets, levels))
    np.testing.assert_allclose(lm.mixture_nll(params, targets, levels), expected, rtol=1e-10)


def test_with_two_levels_one_logistic_is_a_bernoulli():
    # v = -1 or 1 and h = 1: level 0's bin is (-inf, 0], so P(0) = sigmoid(-mu / s).
    params = np.array([[0.0, 0.3, math.log(0.5)]])
    assert lm.mixture_nll(params, np.array([0]), 2)[0] == pytest.approx(math.log1p(math.exp(0.6)))


def test_mirroring_the_means_mirrors_the_levels(rng):
    params = random_params(rng, (4,), 3, (-4.0, 0.0))
    mirrored = params.copy()
    mirrored[:, 3:6] *= -1
    log_p = lm.mixture_log_probs(params, 256)
    np.testing.assert_allclose(lm.mixture_log_probs(mirrored, 256), log_p[:, ::-1], rtol=1e-12, atol=1e-12)


def test_loss_is_the_mean_and_total_the_sum_of_the_per_pixel_nll(rng):
    params = random_params(rng, (2, 3, 3), 3)
    targets = rng.integers(0, 16, (2, 3, 3))
    nll = lm.mixture_nll(params, targets, 16)
    assert nll.shape == targets.shape and nll.dtype == np.float64
    loss, grad = lm.mixture_loss(params, targets, 16)
    assert loss == pytest.approx(nll.mean(), rel=1e-14)
    assert lm.mixture_total_nll(params, targets, 16) == pytest.approx(nll.sum(), rel=1e-14)
    assert isinstance(loss, float) and grad.shape == params.shape


# --- log_probs: every level at once ---------------------------------------------------------------

@pytest.mark.parametrize("levels", [2, 4, 256])
@pytest.mark.parametrize("log_scales", [(-3.0, 1.0), (-9.0, -6.0), (2.0, 5.0)], ids=["moderate", "sharp", "broad"])
def test_log_probs_sum_to_one_and_equal_minus_the_nll_at_every_level(rng, levels, log_scales):
    params = random_params(rng, (2, 3), 3, log_scales)
    log_p = lm.mixture_log_probs(params, levels)
    assert log_p.shape == (2, 3, levels) and log_p.dtype == np.float64
    total = np.log(np.exp(log_p).sum(-1))
    np.testing.assert_allclose(total, 0.0, atol=1e-12)           # exact bins: no mid-bin error
    for y in range(0, levels, 1 if levels < 256 else 17):
        targets = np.full((2, 3), y)
        np.testing.assert_array_equal(log_p[..., y], -lm.mixture_nll(params, targets, levels))


def test_log_probs_work_in_blocks_that_do_not_change_the_answer_and_bound_the_memory(rng, monkeypatch):
    params = random_params(rng, (2000,), 5, (-5.0, 0.0))
    whole = lm.mixture_log_probs(params, 256)                   # 2000*256*5 numbers: one block
    monkeypatch.setattr(lm, "LOG_PROBS_BLOCK", 2 ** 16)           # 0.5 MB blocks of 51 rows
    tracemalloc.start()
    blocked = lm.mixture_log_probs(params, 256)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(blocked, whole)
    # The result (4 MB) plus about 7 blocks; one (2000, 256, 5) float64 array would be 20 MB.
    assert peak - blocked.nbytes < 12 * 8 * 2 ** 16


# --- dtypes and extremes --------------------------------------------------------------------------

def test_float32_params_give_float32_gradients_and_log_probs_computed_in_float64(rng):
    params64 = random_params(rng, (4, 4), 3, (-4.0, -1.0))
    params32 = params64.astype(np.float32)
    targets = rng.integers(0, 256, (4, 4)).astype(np.uint8)
    loss32, grad32 = lm.mixture_loss(params32, targets, 256)
    loss64, grad64 = lm.mixture_loss(params32.astype(np.float64), targets, 256)
    assert grad32.dtype == np.float32 and loss32 == loss64
    np.testing.assert_allclose(grad32, grad64, rtol=1e-6, atol=1e-12)
    assert lm.mixture_nll(params32, targets, 256).dtype == np.float64
    assert lm.mixture_log_probs(params32, 256).dtype == np.float32


def test_extreme_params_give_finite_values_and_gradients(rng):
    k = 3
    params = random_params(rng, (4, 6), k)
    params[..., :k] = rng.choice([-1e4, 1e4], (4, 6, k))
    params[..., k:2 * k] = rng.choice([-1e3, 1e3, 0.0], (4, 6, k))
    params[..., 2 * k:] = rng.choice([-50.0, 50.0], (4, 6, k))
    for levels in (2, 256):
        targets = targets_with_both_edges(rng, (4, 6), levels)
        loss, grad = lm.mixture_loss(params, targets, levels)
        assert math.isfinite(loss) and np.isfinite(grad).all()
        log_p = lm.mixture_log_probs(params, levels)
        assert np.isfinite(log_p).all()
        np.testing.assert_allclose(np.log(np.exp(log_p).sum(-1)), 0.0, atol=1e-12)


# --- mistakes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("levels, components, error, message", [
    (1, 3, ValueError, "levels must be at least 2, got 1"),
    (257, 3, ValueError, "levels must be at most 256"),
    (256.0, 3, TypeError, "levels must be an int, got float"),
    (256, 0, ValueError, "components must be at least 1, got 0"),
    (256, 2.5, TypeError, "components must be an int, got float"),
])
def test_check_mixture_says_what_is_wrong(levels, components, error, message):
    with pytest.raises(error, match=message):
        lm.check_mixture(levels, components)


def test_params_per_pixel_and_split_params():
    assert lm.params_per_pixel(5) == 15
    params = np.arange(2 * 15, dtype=np.float64).reshape(2, 15)
    logits, means, log_scales = lm.split_params(params, 5)
    np.testing.assert_array_equal(means, params[:, 5:10])
    assert np.shares_memory(log_scales, params)
    with pytest.raises(ValueError, match=r"3 \* components = 12 values on the last axis"):
        lm.split_params(params, 4)


PARAMS = np.zeros((2, 3, 6))
TARGETS = np.zeros((2, 3), dtype=np.int64)


@pytest.mark.parametrize("params, targets, levels, error, message", [
    (np.zeros((2, 3, 7)), TARGETS, 4, ValueError, r"3 \* components values per pixel .* got shape \(2, 3, 7\)"),
    (np.zeros((2, 3, 6), dtype=int), TARGETS, 4, TypeError, "params must be a floating-point NumPy array, got int64"),
    (PARAMS, TARGETS + 4, 4, ValueError, r"targets must be levels in \[0, 3\], got values from 4 to 4"),
    (PARAMS, TARGETS - 1, 4, ValueError, r"targets must be levels in \[0, 3\], got values from -1"),
    (PARAMS, TARGETS.astype(np.float32), 4, TypeError, "targets must be an integer NumPy array"),
    (PARAMS, TARGETS[:1], 4, ValueError, r"targets shape \(1, 3\) does not match params shape \(2, 3, 6\)"),
    (np.zeros((0, 6)), np.zeros(0, dtype=int), 4, ValueError, "params is empty"),
    (np.full((2, 3, 6), np.nan), TARGETS, 4, ValueError, "params hold NaN or infinite values"),
    (PARAMS, TARGETS, 1, ValueError, "levels must be at least 2"),
])
def test_bad_inputs_raise_clear_errors(params, targets, levels, error, message):
    for call in (lm.mixture_loss, lm.mixture_nll, lm.mixture_total_nll):
        with pytest.raises(error, match=message):
            call(params, targets, levels)


def test_log_probs_checks_its_inputs():
    with pytest.raises(ValueError, match=r"3 \* components values per pixel"):
        lm.mixture_log_probs(np.zeros((3, 4)), 4)
    with pytest.raises(ValueError, match="levels must be at most 256"):
        lm.mixture_log_probs(np.zeros((3, 6)), 300)
