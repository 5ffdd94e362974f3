"""Sampling: the naive loop, the cached sampler and completion.

Claims tested here:

* the cached sampler computes, at every step, the logits of a full forward pass
  on the partly generated image (within 1e-4 in float32);
* for the same seed it draws the same images as the naive loop (in float64,
  where the two sums agree to ~1e-15 and no draw can land between them);
* neither method reads a pixel it has not produced yet: garbage there changes nothing;
* seeds, temperature and completion do what they say, and bad arguments get clear errors.

The plain cached sampler, held equal to both for every architecture, is tested in
tests/test_plain_cached.py.
"""


import numpy as np
import pytest
from conftest import randomize

import npixelcnn as npc
from npixelcnn import sampling
from npixelcnn.sampling import CachedPixelCNN, complete, draw, sample

LEVELS, SHAPE = 4, (8, 8)


def tiny(dtype=np.float32, seed=0):
    """A 2-block model with random weights and biases (zero biases would leave
    many ReLUs exactly at 0 and the logits of early pixels nearly constant)."""
    model = npc.PixelCNN(levels=LEVELS, hidden=4, blocks=2, head=8, seed=seed)
    randomize(model, seed=seed)                  # float64, masks respected
    return model.astype(dtype)


@pytest.fixture(scope="module")
def model32():
    return tiny(np.float32)


@pytest.fixture(scope="module")
def model64():
    return tiny(np.float64)


def pixels(shape=SHAPE):
    return [(i, j) for i in range(shape[0]) for j in range(shape[1])]


# --------------------------------------------------------------------------- cached = naive


def test_cached_logits_equal_the_full_forward_pass_at_every_step(model32):
    """Step by step, next to the naive loop: same partial image, same logits."""
    n = 3
    net = CachedPixelCNN(model32, n, SHAPE)
    images = np.zeros((n,) + SHAPE, np.uint8)
    rng = np.random.default_rng(0)
    model32.eval()
    worst = 0.0
    for i, j in pixels():
        full = model32.forward(npc.to_model_input(images, LEVELS))[:, i, j]    # (n, L)
        cached = net.outputs_at(i, j)
        assert cached.shape == (n, LEVELS) and cached.dtype == np.float32
        worst = max(worst, np.abs(cached - full).max())
        images[:, i, j] = draw(full, 1.0, rng)
        net.set_pixel(i, j, images[:, i, j])
    model32.train()
    assert worst < 1e-4
    assert images.std() > 0                      # the images are not all one level


def test_logits_recorded_during_cached_sampling_match_one_forward_pass_of_the_result(model32):
    """The model is causal, so ONE forward pass over the finished images gives
    the logits of every step at once: at (i, j) it sees exactly the pixels the
    sampler had written when it drew (i, j)."""
    images, logits = _cached_run(model32, n=4, seed=5)
    full = model32.eval().forward(npc.to_model_input(images, LEVELS))
    model32.train()
    np.testing.assert_allclose(logits, full, atol=1e-4, rtol=0)


def _cached_run(model, n, seed, shape=SHAPE):
    """The cached loop written out, recording the logits of every step."""
    net = CachedPixelCNN(model, n, shape)
    rng = np.random.default_rng(seed)
    images = np.zeros((n,) + shape, np.uint8)
    logits = np.zeros((n,) + shape + (model.levels,), model.dtype)
    for i, j in pixels(shape):
        logits[:, i, j] = net.outputs_at(i, j)
        images[:, i, j] = draw(logits[:, i, j], 1.0, rng)
        net.set_pixel(i, j, images[:, i, j])
    assert np.array_equal(images, sample(model, n, shape, seed=seed, method="cached"))
    return images, logits


def test_cached_and_naive_draw_the_same_images_for_the_same_seed(model64):
    # float64: the two methods' logits differ by ~1e-15, so a uniform draw would
    # have to land within 1e-15 of a class boundary to pick another level.
    naive = sample(model64, 4, SHAPE, seed=7, method="naive")
    cached = sample(model64, 4, SHAPE, seed=7, method="cached")
    assert naive.dtype == cached.dtype == np.uint8 and naive.shape == (4,) + SHAPE
    np.testing.assert_array_equal(cached, naive)
    assert len(np.unique(naive)) > 1


@pytest.mark.parametrize("visible", ["rows", "mask", "per_image"])
def test_cached_and_naive_complete_the_same_way(model64, visible):
    images, visible = _completion_case(visible)
    naive = complete(model64, images, visible, n_samples=2, seed=3, method="naive")
    cached = complete(model64, images, visible, n_samples=2, seed=3, method="cached")
    np.testing.assert_array_equal(cached, naive)


def _completion_case(kind, n=3, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, LEVELS, (n,) + SHAPE)
    if kind == "rows":
        return images, 3
    if kind == "mask":                            # first hidden pixel mid-row; visible ones after it
        mask = rng.random(SHAPE) < 0.5
        mask[:2] = True
        mask[2, :5] = True
        mask[2, 5] = False
        return images, mask
    mask = rng.random((n,) + SHAPE) < 0.6         # a different mask per image
    mask[:, :1] = True
    return images, mask


# --------------------------------------------------------------------------- no peeking


def test_naive_sampling_never_reads_a_pixel_it_has_not_drawn(model32, monkeypatch):
    """Before every forward pass, overwrite the image buffer from the pixel about
    to be drawn onwards with random levels: the samples do not change."""
    clean = sample(model32, 3, SHAPE, seed=11, method="naive")
    real = sampling.to_model_input
    garbage = np.random.default_rng(99)
    step = [0]

    def with_garbage(images, levels):
        flat = images.reshape(len(images), -1)
        assert np.shares_memory(flat, images)     # we garble the sampler's own buffer
        flat[:, step[0]:] = garbage.integers(0, levels, flat[:, step[0]:].shape)
        step[0] += 1
        return real(images, levels)

    monkeypatch.setattr(sampling, "to_model_input", with_garbage)
    garbled = sample(model32, 3, SHAPE, seed=11, method="naive")
    assert step[0] == SHAPE[0] * SHAPE[1]
    np.testing.assert_array_equal(garbled, clean)


class GarbageCache(CachedPixelCNN):
    """A cached sampler whose buffers start full of random values (the padding,
    which stands for "outside the image", stays zero)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rng = np.random.default_rng(123)
        for buffer in self.inputs:
            buffer[...] = rng.uniform(-3, 3, buffer.shape)


def test_garbage_cache_would_be_noticed(model32):
    """The garbage is strong enough to matter: the logits at the LAST pixel
    read every earlier pixel, and differ when the buffers hold garbage."""
    clean, garbled = CachedPixelCNN(model32, 2, SHAPE), GarbageCache(model32, 2, SHAPE)
    i, j = SHAPE[0] - 1, SHAPE[1] - 1
    assert np.abs(clean.outputs_at(i, j) - garbled.outputs_at(i, j)).max() > 1e-3


def test_cached_sampling_never_reads_a_pixel_it_has_not_produced(model32, monkeypatch):
    clean = sample(model32, 3, SHAPE, seed=11, method="cached")
    monkeypatch.setattr(sampling, "CachedPixelCNN", GarbageCache)
    np.testing.assert_array_equal(sample(model32, 3, SHAPE, seed=11, method="cached"), clean)


@pytest.mark.parametrize("method", ["naive", "cached"])
@pytest.mark.parametrize("visible", ["rows", "mask", "per_image"])
def test_completion_never_reads_hidden_pixels_before_drawing_them(model32, monkeypatch, method, visible):
    images, visible = _completion_case(visible)
    clean = complete(model32, images, visible, n_samples=2, seed=4, method=method)
    hidden = ~np.broadcast_to(visible if not isinstance(visible, int) else
                              np.arange(SHAPE[0])[:, None] < visible, images.shape)
    garbled_images = np.where(hidden, np.random.default_rng(8).integers(0, LEVELS, images.shape), images)
    assert (garbled_images != images).any()
    monkeypatch.setattr(sampling, "CachedPixelCNN", GarbageCache)
    garbled = complete(model32, garbled_images, visible, n_samples=2, seed=4, method=method)
    np.testing.assert_array_equal(garbled, clean)


# --------------------------------------------------------------------------- seeds, temperature


@pytest.mark.parametrize("method", sampling.METHODS)
def test_same_seed_same_images_different_seed_different_images(model32, method):
    a = sample(model32, 3, SHAPE, seed=1, method=method)
    assert np.array_equal(a, sample(model32, 3, SHAPE, seed=1, method=method))
    assert not np.array_equal(a, sample(model32, 3, SHAPE, seed=2, method=method))
    assert a.min() >= 0 and a.max() < LEVELS


def test_a_very_low_temperature_picks_the_most_likely_level(model32):
    """Greedy decoding, written out with the model's own forward pass."""
    greedy = np.zeros((2,) + SHAPE, np.uint8)
    model32.eval()
    for i, j in pixels():
        greedy[:, i, j] = model32.forward(npc.to_model_input(greedy, LEVELS))[:, i, j].argmax(axis=1)
    model32.train()
    for seed in (0, 1):
        np.testing.assert_array_equal(sample(model32, 2, SHAPE, temperature=1e-6, seed=seed,
                                             method="cached"), greedy)


def test_a_very_high_temperature_draws_levels_uniformly(model32):
    counts = np.bincount(sample(model32, 32, SHAPE, temperature=1e6, seed=0, method="cached").ravel(),
                         minlength=LEVELS)
    expected = 32 * SHAPE[0] * SHAPE[1] / LEVELS          # 512 per level; sd ~ 20
    assert np.all(np.abs(counts - expected) < 100), counts


def test_draw_follows_the_softmax():
    logits = np.log(np.array([[0.1, 0.2, 0.3, 0.4]] * 20000))
    levels = draw(logits, 1.0, np.random.default_rng(0))
    np.testing.assert_allclose(np.bincount(levels, minlength=4) / 20000, [0.1, 0.2, 0.3, 0.4], atol=0.015)
    sharp = draw(logits, 0.5, np.random.default_rng(0))     # p^2 normalised: 1/30, 4/30, 9/30, 16/30
    np.testing.assert_allclose(np.bincount(sharp, minlength=4) / 20000, np.array([1, 4, 9, 16]) / 30,
                               atol=0.015)


# --------------------------------------------------------------------------- completion


@pytest.mark.parametrize("kind", ["rows", "mask", "per_image"])
def test_complete_keeps_the_visible_pixels_and_samples_the_rest(model32, kind):
    images, visible = _completion_case(kind)
    out = complete(model32, images, visible, n_samples=4, seed=0)
    assert out.shape == (3, 4) + SHAPE and out.dtype == np.uint8
    keep = np.broadcast_to(visible if not isinstance(visible, int) else
                           np.arange(SHAPE[0])[:, None] < visible, images.shape)
    for s in range(4):
        np.testing.assert_array_equal(out[:, s][keep], images[keep])
    assert out.max() < LEVELS
    # The samples of one image differ from each other somewhere in the hidden part.
    assert any(not np.array_equal(out[0, 0], out[0, s]) for s in range(1, 4))


def test_complete_with_everything_visible_returns_the_images_and_with_nothing_samples(model32):
    images = np.random.default_rng(0).integers(0, LEVELS, (2,) + SHAPE).astype(np.int64)
    kept = complete(model32, images, SHAPE[0], n_samples=2)
    np.testing.assert_array_equal(kept, np.repeat(images[:, None], 2, axis=1))
    # Nothing visible: a completion is a sample, with the same random draws.
    np.testing.assert_array_equal(complete(model32, images, 0, seed=5)[:, 0],
                                  sample(model32, 2, SHAPE, seed=5, method="cached"))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("temperature, error", [
    (0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
    ("1", TypeError), (None, TypeError),
])
def test_bad_temperatures_are_refused(model32, temperature, error):
    with pytest.raises(error, match="temperature"):
        sample(model32, 1, SHAPE, temperature=temperature)
    with pytest.raises(error, match="temperature"):
        complete(model32, np.zeros((1,) + SHAPE, int), 2, temperature=temperature)


@pytest.mark.parametrize("n, error", [(0, ValueError), (-3, ValueError), (1.5, TypeError)])
def test_bad_batch_sizes_are_refused(model32, n, error):
    with pytest.raises(error, match="n must be"):
        sample(model32, n, SHAPE)


def test_n_samples_below_one_is_refused(model32):
    with pytest.raises(ValueError, match="n_samples"):
        complete(model32, np.zeros((1,) + SHAPE, int), 2, n_samples=0)


@pytest.mark.parametrize("method", ["fast", None, "Cached"])
def test_unknown_methods_are_refused(model32, method):
    with pytest.raises(ValueError, match="unknown sampling method .* expected one of"):
        sample(model32, 1, SHAPE, method=method)
    with pytest.raises(ValueError, match="unknown sampling method"):
        complete(model32, np.zeros((1,) + SHAPE, int), 2, method=method)


@pytest.mark.parametrize("not_a_model", [npc.ResidualBlock(2), "model.npz", None])
def test_things_that_are_not_a_pixelcnn_are_refused(not_a_model):
    with pytest.raises(TypeError, match="expected a PixelCNN"):
        sample(not_a_model, 1, SHAPE)
    with pytest.raises(TypeError, match="expected a PixelCNN"):
        complete(not_a_model, np.zeros((1,) + SHAPE, int), 2)
    with pytest.raises(TypeError, match="CachedPixelCNN expects a PixelCNN"):
        CachedPixelCNN(not_a_model, 1, SHAPE)


@pytest.mark.parametrize("visible, error, message", [
    (np.ones((8, 7), bool), ValueError, r"shape \(8, 8\) or \(2, 8, 8\)"),
    (np.ones((3, 8, 8), bool), ValueError, r"shape \(8, 8\) or \(2, 8, 8\)"),
    (np.ones(8, bool), ValueError, "shape"),
    (np.ones((8, 8), int), TypeError, "boolean mask"),
    ([[True] * 8] * 8, TypeError, "boolean mask"),
    (9, ValueError, r"top rows must be in \[0, 8\]"),
    (-1, ValueError, "top rows"),
    (True, TypeError, "boolean mask"),
])
def test_bad_visibility_masks_are_refused(model32, visible, error, message):
    with pytest.raises(error, match=message):
        complete(model32, np.zeros((2,) + SHAPE, int), visible)


@pytest.mark.parametrize("images, error, message", [
    (np.full((1,) + SHAPE, LEVELS), ValueError, r"levels in \[0, 3\].*got values from 4 to 4"),
    (np.full((1,) + SHAPE, -1), ValueError, r"levels in \[0, 3\]"),
    (np.zeros((1,) + SHAPE, np.float32), TypeError, "integer NumPy array.*quantize"),
    ([[0] * 8] * 8, TypeError, "integer NumPy array"),
    (np.zeros(SHAPE, int), ValueError, r"\(N, H, W\)"),
    (np.zeros((0,) + SHAPE, int), ValueError, r"\(N, H, W\)"),
])
def test_bad_images_are_refused(model32, images, error, message):
    with pytest.raises(error, match=message):
        complete(model32, images, 2)


def test_bad_shapes_are_refused(model32):
    with pytest.raises(ValueError, match=r"shape must be \(height, width\)"):
        sample(model32, 1, (8, 8, 1))
    with pytest.raises(ValueError, match="shape must be at least 1"):
        sample(model32, 1, (0, 8))
    with pytest.raises(TypeError, match=r"shape must be \(height, width\)"):
        sample(model32, 1, 8)
