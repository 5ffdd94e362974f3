"""256 intensity levels: the same model contract, a bigger softmax.

Claims tested here, for the PixelCNN and the Gated PixelCNN:

* the loss and the whole model (through the loss) have correct gradients over
  256 classes, checked by central differences in float64;
* the loss over 256 classes allocates a few float32 arrays of the logits' size,
  never a float64 copy of them (a (16, 28, 28, 256) batch of logits is 12.8 MB;
  a float64 detour would double every array);
* the cached sampler gives the forward pass's logits at every pixel, and draws
  and completes exactly the images of the naive loop, over all 256 levels.
"""

import tracemalloc

import numpy as np
import pytest
from conftest import GRAD_TOL, assert_cached_logits_equal_the_forward_pass, randomize

import npixelcnn as npc
from npixelcnn.gradcheck import check_loss, check_model_and_loss

LEVELS = 256


def tiny(arch, seed=0):
    """A float64 model with random weights (masks respected) and 256 levels."""
    if arch == "pixelcnn":
        model = npc.PixelCNN(levels=LEVELS, hidden=3, blocks=2, head=4, seed=seed)
    else:
        model = npc.GatedPixelCNN(levels=LEVELS, channels=3, layers=3, kernel_size=3, head=4, seed=seed)
    return randomize(model, seed=seed)


# --------------------------------------------------------------------------- gradients


def test_the_loss_gradient_over_256_levels(rng):
    targets = rng.integers(0, LEVELS, (2, 2, 3))
    logits = 3 * rng.standard_normal((2, 2, 3, LEVELS))
    assert check_loss(lambda z: npc.softmax_cross_entropy(z, targets), logits) < GRAD_TOL


@pytest.mark.parametrize("arch", ["pixelcnn", "gated"])
def test_the_whole_model_and_loss_at_256_levels(arch, rng):
    """d(total NLL)/dparam through the model, for every parameter."""
    model = tiny(arch, seed=1)
    levels = rng.integers(0, LEVELS, (2, 4, 4))
    errors = check_model_and_loss(model, levels)
    worst = max(errors, key=errors.get)
    assert errors[worst] < GRAD_TOL, (worst, errors[worst])
    assert model.forward(npc.to_model_input(levels, LEVELS).astype(np.float64)).shape == (2, 4, 4, LEVELS)


def test_the_loss_over_256_levels_stays_in_float32_and_allocates_little():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((16, 28, 28, LEVELS)).astype(np.float32)     # 12.8 MB
    targets = rng.integers(0, LEVELS, (16, 28, 28))
    tracemalloc.start()
    loss, dlogits = npc.softmax_cross_entropy(logits, targets)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert dlogits.dtype == np.float32 and dlogits.shape == logits.shape
    # exp(z - max) and the softmax: two float32 arrays of the logits' size, plus
    # small per-pixel vectors. One float64 (N, H, W, 256) array alone would be 2x.
    assert peak < 2.6 * logits.nbytes, f"peak {peak / 1e6:.1f} MB for {logits.nbytes / 1e6:.1f} MB of logits"
    # Random logits over 256 classes: the NLL is near log(256) plus a bit.
    assert np.log(LEVELS) < loss < np.log(LEVELS) + 1.0


# --------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("arch", ["pixelcnn", "gated"])
def test_cached_logits_equal_the_forward_pass_at_every_pixel(arch):
    images = np.random.default_rng(5).integers(0, LEVELS, (2, 5, 6))
    assert_cached_logits_equal_the_forward_pass(tiny(arch), images)


@pytest.mark.parametrize("arch", ["pixelcnn", "gated"])
def test_cached_and_naive_sample_and_complete_the_same_images(arch):
    model = tiny(arch)
    shape = (6, 6)
    naive = npc.sample(model, 3, shape, seed=4, method="naive")
    cached = npc.sample(model, 3, shape, seed=4, method="cached")
    np.testing.assert_array_equal(cached, naive)
    assert naive.dtype == np.uint8 and naive.max() < LEVELS
    assert len(np.unique(naive)) > 30              # the draws use the whole range, not a few levels

    images = np.random.default_rng(6).integers(0, LEVELS, (2,) + shape)
    naive = npc.complete(model, images, 3, n_samples=2, seed=1, method="naive")
    cached = npc.complete(model, images, 3, n_samples=2, seed=1, method="cached")
    np.testing.assert_array_equal(cached, naive)
    assert naive.shape == (2, 2) + shape
    np.testing.assert_array_equal(naive[:, :, :3], np.repeat(images[:, None, :3], 2, axis=1))
    assert (naive[:, 0, 3:] != naive[:, 1, 3:]).any()         # two completions, two different draws
