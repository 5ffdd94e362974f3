"""Every mistake a user can make gets a clear error, not a deep NumPy traceback."""

import numpy as np
import pytest

import npixelcnn as npc


@pytest.fixture(scope="module")
def model():
    return npc.PixelCNN(levels=4, hidden=2, blocks=1, head=4, seed=0)


def image(shape=(2, 5, 5, 1), dtype=np.float32):
    return np.full(shape, 0.5, dtype=dtype)


def test_levels_below_two_are_rejected():
    with pytest.raises(ValueError, match="levels must be at least 2"):
        npc.PixelCNN(levels=1)


@pytest.mark.parametrize("kwargs", [dict(hidden=0), dict(blocks=-1), dict(head=0), dict(levels=2.5)])
def test_bad_architecture_is_rejected(kwargs):
    with pytest.raises((ValueError, TypeError), match="must be"):
        npc.PixelCNN(**kwargs)


@pytest.mark.parametrize("shape", [(5, 5, 1), (2, 5, 5), (1, 2, 5, 5, 1)])
def test_wrong_rank_is_rejected(model, shape):
    with pytest.raises(ValueError, match="4-D NHWC"):
        model.forward(image(shape))


def test_wrong_channel_count_is_rejected(model):
    with pytest.raises(ValueError, match="expected 1 input channels"):
        model.forward(image((2, 5, 5, 3)))
    with pytest.raises(ValueError, match="expected 4 input channels"):
        npc.MaskedConv2D(4, 2, 3, "B").forward(image((1, 3, 3, 2)))


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, bool])
def test_integer_input_is_rejected_with_a_hint(model, dtype):
    with pytest.raises(TypeError, match=r"floating-point input.*levels - 1"):
        model.forward(np.zeros((1, 4, 4, 1), dtype=dtype))


def test_float64_input_to_a_float32_model_is_rejected(model):
    with pytest.raises(TypeError, match="parameters are float32"):
        model.forward(image(dtype=np.float64))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_rejected(model, bad):
    x = image()
    x[1, 2, 3, 0] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.forward(x)


def test_values_outside_unit_interval_are_rejected(model):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.forward(image() * 3)


def test_non_array_input_is_rejected(model):
    with pytest.raises(TypeError, match="NumPy array"):
        model.forward([[0.5]])


def test_backward_before_forward_is_rejected():
    with pytest.raises(RuntimeError, match="before forward"):
        npc.MaskedConv2D(1, 1, 3, "A").backward(np.zeros((1, 2, 2, 1), np.float32))


def test_backward_after_an_eval_forward_is_rejected():
    model = npc.PixelCNN(levels=2, hidden=2, blocks=1, head=2, seed=0)
    x = np.zeros((1, 4, 4, 1), np.float32)
    model.forward(x)                     # training mode: caches are kept
    model.eval().forward(x)              # inference: caches are dropped
    with pytest.raises(RuntimeError, match="before forward in training mode"):
        model.backward(np.zeros((1, 4, 4, 2), np.float32))


def test_bad_channel_counts_are_rejected():
    with pytest.raises(ValueError, match="in_channels must be at least 1"):
        npc.MaskedConv2D(0, 2, 3, "A")
    with pytest.raises(TypeError, match="out_channels must be an int"):
        npc.Conv2D(2, 1.5)


def test_gradient_of_the_wrong_shape_is_rejected():
    layer = npc.MaskedConv2D(2, 3, 3, "B")
    layer.forward(np.zeros((1, 4, 4, 2), np.float32))
    with pytest.raises(ValueError, match=r"shape of the forward output, \(1, 4, 4, 3\)"):
        layer.backward(np.zeros((1, 4, 4, 2), np.float32))
    relu = npc.ReLU()
    relu.forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="shape of the forward output"):
        relu.backward(np.zeros((3, 2), np.float32))


def test_gradient_of_the_wrong_dtype_is_rejected(model):
    logits = model.forward(image())
    with pytest.raises(TypeError, match="must be float32"):
        model.backward(np.zeros(logits.shape, np.float64))
