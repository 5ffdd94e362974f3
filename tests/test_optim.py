"""Adam and SGD update parameters in place from gradients."""

import math

import numpy as np
import pytest

import npixelcnn as npc


class Quadratic:
    """f(p) = 0.5 * sum(a * (p - c)^2), with the params/grads contract of a model."""

    def __init__(self, p0, a, c):
        self.params = {"p": np.array(p0, dtype=np.float64)}
        self.grads = {"p": np.zeros_like(self.params["p"])}
        self.a, self.c = np.array(a, dtype=np.float64), np.array(c, dtype=np.float64)

    def loss_and_grad(self):
        d = self.params["p"] - self.c
        self.grads["p"][...] = self.a * d
        return 0.5 * float(np.sum(self.a * d * d))


def adam_by_hand(p, g_fn, steps, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Algorithm 1 of Kingma and Ba, one scalar at a time, in plain Python floats."""
    m = v = 0.0
    for t in range(1, steps + 1):
        g = g_fn(p)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
    return p


def test_adam_matches_hand_computed_reference_for_three_steps():
    p0, a, c = [1.0, -2.0, 0.5], [1.0, 3.0, 10.0], [0.0, 1.0, 0.25]
    problem = Quadratic(p0, a, c)
    optimizer = npc.Adam(problem, lr=0.1)
    for _ in range(3):
        problem.loss_and_grad()
        optimizer.step()
    expected = [adam_by_hand(p0[i], lambda p, i=i: a[i] * (p - c[i]), 3, 0.1) for i in range(3)]
    np.testing.assert_allclose(problem.params["p"], expected, rtol=1e-14)
    # The first step of Adam moves every coordinate by lr (bias correction makes m_hat/sqrt(v_hat) = sign(g)).
    first = npc.Adam(Quadratic(p0, a, c), lr=0.1)
    first.model.loss_and_grad()
    first.step()
    np.testing.assert_allclose(first.model.params["p"], np.array(p0) - 0.1 * np.sign(np.array(p0) - c))


def test_adam_minimises_a_quadratic():
    problem = Quadratic([3.0, -4.0], [1.0, 100.0], [1.0, 2.0])
    optimizer = npc.Adam(problem, lr=0.05)
    start = problem.loss_and_grad()
    for _ in range(2000):
        problem.loss_and_grad()
        optimizer.step()
    assert problem.loss_and_grad() < 1e-8 * start
    np.testing.assert_allclose(problem.params["p"], [1.0, 2.0], atol=1e-4)


def test_sgd_step():
    problem = Quadratic([1.0, 2.0], [2.0, 2.0], [0.0, 0.0])
    problem.loss_and_grad()
    npc.SGD(problem, lr=0.25).step()
    np.testing.assert_allclose(problem.params["p"], [0.5, 1.0])


def test_global_norm_clipping_scales_all_gradients_together():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    norm = npc.clip_by_global_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])
    np.testing.assert_allclose(grads["b"], [[0.8]])
    assert npc.clip_by_global_norm(grads, 10.0) == pytest.approx(1.0)   # below the cap: unchanged
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])


def test_adam_with_clipping_applies_the_clipped_gradient():
    problem = Quadratic([100.0], [1.0], [0.0])
    optimizer = npc.Adam(problem, lr=0.1, clip_norm=1.0)
    problem.loss_and_grad()
    optimizer.step()
    assert optimizer.last_grad_norm == pytest.approx(100.0)
    assert optimizer.m["p"][0] == pytest.approx(0.1 * 1.0)      # (1 - beta1) * clipped gradient


def test_adam_keeps_masked_weights_at_zero():
    model = npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8, seed=0)
    optimizer = npc.Adam(model, lr=1e-2)
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 4, (2, 6, 6))
    for _ in range(3):
        _, d = npc.softmax_cross_entropy(model.forward((levels[..., None] / 3).astype(np.float32)), levels)
        model.backward(d)
        optimizer.step()
    hidden_a = ~npc.causal_mask(7, "A")
    hidden_b = ~npc.causal_mask(3, "B")
    assert np.all(model.params["input_conv.W"][hidden_a] == 0)
    assert np.all(model.params["blocks.0.conv2.W"][hidden_b] == 0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=0), "lr must be a finite number > 0"), (dict(lr=-1), "lr must be a finite number > 0"),
    (dict(beta1=1.0), "beta1"), (dict(clip_norm=0), "clip_norm"),
])
def test_bad_optimizer_settings_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        npc.Adam(Quadratic([0.0], [1.0], [0.0]), **kwargs)
