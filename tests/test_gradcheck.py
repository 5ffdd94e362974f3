"""Every backward pass agrees with float64 central differences (relative error < 1e-6)."""

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn.gradcheck import check_layer, check_loss, check_model_and_loss, numerical_gradient

from conftest import GRAD_TOL, randomize, tiny_pixelcnn


def assert_all_below(errors, tol=GRAD_TOL):
    worst = max(errors, key=errors.get)
    assert errors[worst] < tol, f"relative error of d/d{worst} is {errors[worst]:.2e}: {errors}"


@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("c_in, c_out, h, w", [(1, 2, 5, 7), (3, 2, 6, 4)])
def test_masked_conv_gradients(k, mask_type, c_in, c_out, h, w, rng):
    layer = randomize(npc.MaskedConv2D(c_in, c_out, k, mask_type, rng=0))
    errors = check_layer(layer, rng.standard_normal((2, h, w, c_in)))
    assert_all_below(errors)


@pytest.mark.parametrize("k", [3, 7])
def test_masked_weight_entries_get_exactly_zero_gradient(k, rng):
    layer = randomize(npc.MaskedConv2D(2, 3, k, "A", rng=0))
    layer.forward(rng.standard_normal((2, 5, 5, 2)))
    layer.backward(rng.standard_normal((2, 5, 5, 3)))
    hidden = ~npc.causal_mask(k, "A")
    assert np.all(layer.grads["W"][hidden] == 0)
    assert np.all(layer.params["W"][hidden] == 0)
    assert np.all(layer.grads["W"][~hidden] != 0)


@pytest.mark.parametrize("k", [1, 3])
def test_conv2d_gradients(k, rng):
    layer = randomize(npc.Conv2D(3, 4, k, rng=0))
    assert_all_below(check_layer(layer, rng.standard_normal((2, 4, 5, 3))))


def test_relu_gradient(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5          # keep central differences away from the kink
    assert_all_below(check_layer(npc.ReLU().astype(np.float64), x))


def test_residual_block_gradients(rng):
    block = randomize(npc.ResidualBlock(3, rng=0))
    errors = check_layer(block, rng.standard_normal((2, 5, 4, 6)))
    assert set(errors) == {"x", "conv1.W", "conv1.b", "conv2.W", "conv2.b", "conv3.W", "conv3.b"}
    assert_all_below(errors)


def test_loss_gradient(rng):
    targets = rng.integers(0, 5, (2, 3, 4))
    error = check_loss(lambda z: npc.softmax_cross_entropy(z, targets), rng.standard_normal((2, 3, 4, 5)))
    assert error < GRAD_TOL


def test_whole_pixelcnn_gradients_every_parameter(rng):
    model = tiny_pixelcnn(levels=3)
    # Any input in [0, 1] will do; keep it off the ends so that the central
    # differences of dL/dx stay inside the valid range.
    x = rng.uniform(0.2, 0.8, (2, 5, 6, 1))
    errors = check_layer(model, x)
    assert len(errors) == 1 + 2 * (1 + 3 * 2 + 3)     # x, and W and b of 10 convolutions
    assert_all_below(errors)
    # Every parameter matters somewhere: no gradient is identically zero, so
    # no check above passed by comparing zero with zero.
    assert all(np.any(g != 0) for g in model.grads.values())


def test_pixelcnn_and_loss_together(rng):
    # The gradient a training step uses: d(total NLL)/dparam through the model.
    model = tiny_pixelcnn(levels=3, seed=1)
    assert_all_below(check_model_and_loss(model, rng.integers(0, 3, (2, 4, 5))))


def test_gradcheck_catches_a_wrong_backward(rng):
    # The checker must be able to fail: a backward pass that forgets a factor of
    # 2 is reported with a large relative error.
    class Double(npc.Layer):
        def forward(self, x):
            return 2 * x

        def backward(self, dy):
            return dy

    errors = check_layer(Double().astype(np.float64), rng.standard_normal((1, 2, 2, 1)))
    assert errors["x"] > 0.1


def test_the_model_check_catches_a_wrong_backward(rng, monkeypatch):
    # A model whose output layer passes back twice the gradient it should: every
    # parameter below it is reported wrong, and the output layer's own are not.
    model = tiny_pixelcnn(levels=3, seed=1)
    out = dict(model.named_children())["out"]
    right = out.backward
    monkeypatch.setattr(out, "backward", lambda dy: 2 * right(dy))
    errors = check_model_and_loss(model, rng.integers(0, 3, (2, 4, 5)))
    assert errors["out.W"] < GRAD_TOL and errors["out.b"] < GRAD_TOL
    assert errors["input_conv.W"] > 0.1


def test_numerical_gradient_requires_float64():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda: 0.0, np.zeros(3, np.float32))
