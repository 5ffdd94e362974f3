"""Softmax cross-entropy: exact, stable, and its gradient is softmax minus one-hot."""

import math

import numpy as np
import pytest

import npixelcnn as npc


def test_loss_equals_the_definition(rng):
    logits = rng.standard_normal((2, 3, 3, 4))
    targets = rng.integers(0, 4, (2, 3, 3))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = -np.mean(np.log(np.take_along_axis(p, targets[..., None], -1)))
    loss, _ = npc.softmax_cross_entropy(logits, targets)
    assert loss == pytest.approx(expected, rel=1e-12)


def test_gradient_is_softmax_minus_onehot_over_count(rng):
    logits = rng.standard_normal((4, 2, 5)).astype(np.float32)
    targets = rng.integers(0, 5, (4, 2))
    _, grad = npc.softmax_cross_entropy(logits, targets)
    z = logits.astype(np.float64)
    softmax = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    onehot = np.eye(5)[targets]
    np.testing.assert_allclose(grad, (softmax - onehot) / 8, atol=1e-8)
    assert grad.dtype == np.float32


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-6), (np.float64, 1e-11)])
def test_huge_logits_give_exact_finite_loss(dtype, tol):
    # Naive exp(1e4) overflows to inf; log-sum-exp shifts by the max first.
    logits = np.array([[1e4, 1e4 - 1, -1e4, 0.0],
                       [-1e4, 1e4, 1e4, 1e4]], dtype=dtype)
    targets = np.array([0, 0])
    loss, grad = npc.softmax_cross_entropy(logits, targets)
    # Row 0: -log(1 / (1 + e^-1)); row 1: the target is 2e4 below the others.
    expected = (math.log1p(math.exp(-1)) + (2e4 + math.log(3))) / 2
    # Only log(sum(exp)), a number in [0, log 4], carries rounding error: float32
    # logits give float32 precision on it, not on the 1e4-sized terms.
    assert loss == pytest.approx(expected, abs=tol)
    assert np.all(np.isfinite(grad))
    s = 1 / (1 + math.exp(-1))
    np.testing.assert_allclose(grad[0], [(s - 1) / 2, (1 - s) / 2, 0, 0], atol=1e-7)
    np.testing.assert_allclose(grad[1], [-1 / 2, 1 / 6, 1 / 6, 1 / 6], atol=1e-7)


def test_uniform_logits_cost_log_levels_nats_and_two_bits_for_four_levels():
    loss, _ = npc.softmax_cross_entropy(np.zeros((3, 4)), np.array([0, 1, 3]))
    assert loss == pytest.approx(math.log(4))
    assert npc.nats_to_bits(loss) == pytest.approx(2.0)


def test_unit_conversions():
    assert npc.nats_to_bits(math.log(2)) == pytest.approx(1.0)
    # The seed's model: 0.1405 nats/dim is 0.2027 bits/dim, 110.2 nats per 28x28 image.
    assert npc.nats_to_bits(0.1405) == pytest.approx(0.2027, abs=1e-4)
    assert npc.nats_per_image(0.1405) == pytest.approx(0.1405 * 784)


@pytest.mark.parametrize("targets, match", [
    (np.zeros((2, 3), int), "does not match"),
    (np.zeros((2, 2, 1), int), "does not match"),
    (np.array([[0, 4], [1, 2]]), r"levels in \[0, 3\]"),
    (np.array([[0, -1], [1, 2]]), r"levels in \[0, 3\]"),
])
def test_mismatched_targets_are_rejected(targets, match):
    with pytest.raises(ValueError, match=match):
        npc.softmax_cross_entropy(np.zeros((2, 2, 4)), targets)


def test_float_targets_are_rejected():
    with pytest.raises(TypeError, match="integer"):
        npc.softmax_cross_entropy(np.zeros((2, 4)), np.array([0.0, 1.0]))


def test_non_finite_logits_are_rejected():
    logits = np.zeros((2, 4))
    logits[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        npc.softmax_cross_entropy(logits, np.array([0, 1]))


def test_single_level_is_rejected():
    with pytest.raises(ValueError, match="at least 2 levels"):
        npc.softmax_cross_entropy(np.zeros((2, 1)), np.array([0, 0]))


def test_total_nll_is_the_summed_loss_without_a_gradient(rng):
    logits = rng.standard_normal((2, 5, 5, 4)).astype(np.float32)
    targets = rng.integers(0, 4, (2, 5, 5))
    mean, _ = npc.softmax_cross_entropy(logits, targets)
    assert npc.total_nll(logits, targets) == pytest.approx(mean * targets.size, rel=1e-12)
    probs = np.exp(logits.astype(np.float64))
    probs /= probs.sum(-1, keepdims=True)
    expected = -np.log(np.take_along_axis(probs, targets[..., None], -1)).sum()
    assert npc.total_nll(logits, targets) == pytest.approx(expected, rel=1e-6)
