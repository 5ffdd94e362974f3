"""Sampling colour images: sub-pixel by sub-pixel, R, G, B, and three methods to one result.

Claims tested here, on small colour PixelCNNs with random weights (softmax over 4
and 256 levels, a logistic mixture with and without channel coefficients, independent
channels, dilated blocks):

* every method draws each pixel's sub-pixels in the order R, G, B, one draw each,
  from the outputs that one forward pass of the finished images gives there: the
  sub-pixel's outputs depend on the earlier pixels and the sub-pixels before it;
* so the naive loop, the plain cached sampler and the fast one give the same images,
  for ``sample`` and ``complete``, and consume the random generator alike;
* the cached samplers compute a pixel once per sub-pixel (the plain one every layer
  whole each time, the fast one each layer's group of that sub-pixel alone:
  tests/test_sub_pixel_rounds.py), and whatever their memory holds before it is
  written never reaches a result;
* they accept a colour first layer that reads its own pixel only through a centre
  tap from earlier sub-pixels (mask A with channel groups), and nothing more;
* colour images of the wrong shape are refused with a clear error; grey stays grey.

The Gated PixelCNN joins the equality tests once it takes ``in_channels=3``
(``GATED`` below): until then those cases are skipped.
"""

import inspect

import numpy as np
import pytest
from conftest import randomize

import npixelcnn as npc
from npixelcnn import sampling
from npixelcnn.autoregressive import AutoregressiveModel
from npixelcnn.blocks import ordered_conv
from npixelcnn.masks import channel_groups
from npixelcnn.sampling import METHODS, CachedPixelCNN, PlainCachedPixelCNN, complete, sample

SHAPE, C = (6, 5), 3
SAMPLERS = [PlainCachedPixelCNN, CachedPixelCNN]

GATED = "in_channels" in inspect.signature(npc.GatedPixelCNN).parameters
"""Does the Gated PixelCNN take colour images yet (npixelcnn/gated.py)?"""

MODELS = {
    "softmax-4": lambda seed: npc.PixelCNN(levels=4, hidden=6, blocks=2, head=9, in_channels=C, seed=seed),
    "softmax-256": lambda seed: npc.PixelCNN(levels=256, hidden=6, blocks=2, head=9, in_channels=C, seed=seed),
    "mixture-256": lambda seed: npc.PixelCNN(levels=256, hidden=6, blocks=1, head=9, in_channels=C,
                                             output="logistic-mixture", components=3, seed=seed),
    "coefficients-256": lambda seed: npc.PixelCNN(levels=256, hidden=6, blocks=1, head=9, in_channels=C,
                                                  output="logistic-mixture", components=2,
                                                  channel_coefficients=True, seed=seed),
    "independent": lambda seed: npc.PixelCNN(levels=4, hidden=6, blocks=1, head=9, in_channels=C,
                                             channel_order="independent", seed=seed),
    "dilated": lambda seed: npc.PixelCNN(levels=4, hidden=6, blocks=2, head=9, in_channels=C,
                                         dilations=[1, 2], seed=seed),
    "gated": lambda seed: npc.GatedPixelCNN(levels=4, channels=6, layers=2, head=9, in_channels=C, seed=seed),
}
NAMES = [pytest.param(name, marks=pytest.mark.skipif(name == "gated" and not GATED,
                                                     reason="GatedPixelCNN takes no in_channels yet"))
         for name in MODELS]


def colour_model(name, dtype=np.float32, seed=0):
    """A colour model with random weights and biases, masks respected (zero biases
    would leave many ReLUs at 0 and the outputs of early pixels nearly constant)."""
    return randomize(MODELS[name](seed), seed=seed).astype(dtype)


@pytest.fixture(scope="module", params=NAMES)
def model(request):
    """float32, as a trained model samples."""
    return colour_model(request.param)


def random_levels(model, n, seed=0, shape=SHAPE):
    return np.random.default_rng(seed).integers(0, model.levels, (n,) + shape + (C,))


def visible_mask(kind, n=2):
    """What ``complete`` keeps: a number of top rows, a mask (H, W) whose first hidden pixel is
    mid-row with visible pixels after it, or a mask (n, H, W) per image."""
    if kind == "rows":
        return 2
    rng = np.random.default_rng(6)
    if kind == "mask":
        mask = rng.random(SHAPE) < 0.5
        mask[:2], mask[2, :3], mask[2, 3] = True, True, False
        return mask
    return rng.random((n,) + SHAPE) < 0.5


def kept(visible, images):
    """Where ``visible`` keeps the images (N, H, W, C): every sub-pixel of a kept pixel."""
    if isinstance(visible, int):
        visible = np.arange(SHAPE[0])[:, None] < visible
    return np.broadcast_to(np.broadcast_to(visible, images.shape[:3])[..., None], images.shape)


def forward(model, images):
    """One forward pass over integer images (N, H, W, C) -> outputs (N, H, W, C, P)."""
    return model.eval().forward(npc.to_model_input(images, model.levels).astype(model.dtype))


class DrawRecord(list):
    """A list of (outputs, generator state), one per draw, with the draws' ``earlier`` beside it."""


def record_draws(monkeypatch, model):
    """Record every draw of the model's output: the outputs (B, P) it draws from and the
    state of the generator before it. Returns the list that fills; the levels of the earlier
    sub-pixels given to each draw, (B, c), go to the list ``seen.earlier``."""
    kind = type(model.output)
    real_draw, seen, earliers = kind.draw, DrawRecord(), []
    seen.earlier = earliers

    def recording_draw(output, outputs, temperature, rng, earlier=None):
        seen.append((np.array(outputs), rng.bit_generator.state["state"]["state"]))
        earliers.append(np.array(earlier))
        return real_draw(output, outputs, temperature, rng, earlier=earlier)
    monkeypatch.setattr(kind, "draw", recording_draw)
    return seen


# --------------------------------------------------------------------------- three methods, one result


def test_every_method_samples_the_same_colour_images(model):
    images = {method: sample(model, 3, SHAPE, seed=7, method=method) for method in METHODS}
    assert images["naive"].shape == (3,) + SHAPE + (C,) and images["naive"].dtype == np.uint8
    for method in METHODS:
        np.testing.assert_array_equal(images[method], images["naive"], err_msg=method)
    for c in range(C):                                  # every channel drawn, not left at zero
        assert len(np.unique(images["naive"][..., c])) > 1


@pytest.mark.parametrize("visible", ["rows", "mask", "per_image"])
def test_every_method_completes_colour_images_the_same_way_and_keeps_the_visible_pixels(model, visible):
    images, visible = random_levels(model, 2, seed=5), visible_mask(visible)
    done = {method: complete(model, images, visible, n_samples=2, seed=3, method=method) for method in METHODS}
    assert done["naive"].shape == (2, 2) + SHAPE + (C,)
    for method in METHODS:
        np.testing.assert_array_equal(done[method], done["naive"], err_msg=method)
    keep = kept(visible, images)
    for s in range(2):
        np.testing.assert_array_equal(done["cached"][:, s][keep], images[keep])
    assert (done["cached"][:, 0] != done["cached"][:, 1]).any()      # two completions, two draws


@pytest.mark.parametrize("method", METHODS)
def test_everything_visible_is_returned_as_given_and_nothing_visible_samples(method):
    model = colour_model("softmax-4")
    images = random_levels(model, 2, seed=1)
    np.testing.assert_array_equal(complete(model, images, SHAPE[0], method=method)[:, 0], images)
    np.testing.assert_array_equal(complete(model, images, 0, n_samples=2, seed=4, method=method),
                                  complete(model, images, 0, n_samples=2, seed=4, method="naive"))


# --------------------------------------------------------------------------- the draws


@pytest.mark.parametrize("name", ["softmax-4", "mixture-256", "coefficients-256"])
def test_every_draw_is_a_sub_pixel_in_order_r_g_b_from_one_forward_pass_of_the_result(name, monkeypatch):
    """The k-th draw of a sample is sub-pixel c = k % 3 of pixel k // 3 (raster order), and its
    outputs are what one forward pass of the finished images has there: each sub-pixel was drawn
    given the earlier pixels and the sub-pixels before it, and what came after changes nothing.
    The draw is also given those sub-pixels before it, the finished pixel's first c levels
    (channel coefficients move the means with them)."""
    model = colour_model(name)
    states = {}
    for method in METHODS:
        seen = record_draws(monkeypatch, model)
        images = sample(model, 3, SHAPE, seed=2, method=method)
        full = forward(model, images)                               # (3, H, W, C, P)
        assert len(seen) == SHAPE[0] * SHAPE[1] * C
        for k, (outputs, _) in enumerate(seen):
            (i, j), c = divmod(k // C, SHAPE[1]), k % C
            np.testing.assert_allclose(outputs, full[:, i, j, c], rtol=0, atol=1e-4,
                                       err_msg=f"{method}: pixel {(i, j)}, sub-pixel {'RGB'[c]}")
            np.testing.assert_array_equal(seen.earlier[k], images[:, i, j, :c])
        states[method] = [state for _, state in seen]
    assert states["plain-cached"] == states["cached"] == states["naive"]


@pytest.mark.parametrize("visible", ["mask", "per_image"])
def test_a_completion_draws_every_sub_pixel_of_the_hidden_pixels_only_in_order(visible, monkeypatch):
    """One draw per sub-pixel of every pixel hidden in some image, from the outputs of one
    forward pass of the completed images (the visible pixels' given values included)."""
    model = colour_model("softmax-256")
    images, visible = random_levels(model, 2, seed=8), visible_mask(visible)
    pixels = np.argwhere(~np.broadcast_to(visible, (2,) + SHAPE).all(axis=0))        # raster order
    states = {}
    for method in METHODS:
        seen = record_draws(monkeypatch, model)
        done = complete(model, images, visible, n_samples=1, seed=5, method=method)[:, 0]
        full = forward(model, done)
        assert len(seen) == len(pixels) * C
        for k, (outputs, _) in enumerate(seen):
            (i, j), c = pixels[k // C], k % C
            np.testing.assert_allclose(outputs, full[:, i, j, c], rtol=0, atol=1e-4,
                                       err_msg=f"{method}: pixel {(i, j)}, sub-pixel {'RGB'[c]}")
        states[method] = [state for _, state in seen]
    assert states["plain-cached"] == states["cached"] == states["naive"]


@pytest.mark.skipif(not GATED, reason="GatedPixelCNN takes no in_channels yet")
def test_a_class_conditional_colour_model_is_sampled_and_completed_alike_by_every_method():
    model = randomize(npc.GatedPixelCNN(levels=4, channels=6, layers=2, head=9, in_channels=C, classes=3,
                                        seed=0)).astype(np.float32)
    labels, images, visible = np.array([0, 1, 2]), random_levels(model, 3, seed=1), visible_mask("per_image", 3)
    drawn = {method: sample(model, 3, SHAPE, seed=1, method=method, labels=labels) for method in METHODS}
    done = {method: complete(model, images, visible, n_samples=2, seed=2, method=method, labels=labels)
            for method in METHODS}
    for method in METHODS:
        np.testing.assert_array_equal(drawn[method], drawn["naive"], err_msg=method)
        np.testing.assert_array_equal(done[method], done["naive"], err_msg=method)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_images_different_seed_different_images(method):
    model = colour_model("softmax-4")
    a = sample(model, 2, SHAPE, seed=1, method=method)
    np.testing.assert_array_equal(a, sample(model, 2, SHAPE, seed=1, method=method))
    assert (a != sample(model, 2, SHAPE, seed=2, method=method)).any()


# --------------------------------------------------------------------------- the cached samplers


def sub_pixel_by_sub_pixel(sampler, model, images, later):
    """Feed ``images`` (N, H, W, C) to a cached ``sampler`` as the sampling loop does: at every
    pixel, outputs_at(i, j, sub_pixel=c) for each sub-pixel c, then set_pixel with the
    sub-pixels up to c, the others taken from ``later`` (anything: not drawn yet).
    -> sub-pixel c's outputs at every pixel, (N, H, W, C, P)."""
    n = len(images)
    net = sampler(model, n, SHAPE)
    outputs = np.zeros(images.shape + (model.output.channels,), model.dtype)
    for i, j in np.ndindex(*SHAPE):
        for c in range(C):
            outputs[:, i, j, c] = net.outputs_at(i, j, sub_pixel=c)
            net.set_pixel(i, j, np.concatenate([images[:, i, j, :c + 1], later[:, i, j, c + 1:]], axis=1))
    return outputs


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype, atol", [(np.float32, 1e-4), (np.float64, 1e-12)])
def test_at_every_sub_pixel_plain_and_fast_give_the_outputs_of_one_forward_pass(name, dtype, atol):
    model = colour_model(name, dtype)
    images, later = random_levels(model, 3, seed=1), random_levels(model, 3, seed=2)
    full = forward(model, images)
    plain = sub_pixel_by_sub_pixel(PlainCachedPixelCNN, model, images, later)
    fast = sub_pixel_by_sub_pixel(CachedPixelCNN, model, images, later)
    assert fast.dtype == dtype
    np.testing.assert_allclose(plain, full, rtol=0, atol=atol)
    np.testing.assert_allclose(fast, full, rtol=0, atol=atol)


def test_the_outputs_of_g_and_b_read_the_sub_pixels_before_them():
    """Why each sub-pixel needs its own call: with R (then G) changed, the outputs of G (then
    B) at the same pixel change, while those of the sub-pixels before do not."""
    model = colour_model("softmax-4", np.float64)
    net = CachedPixelCNN(model, 2, SHAPE)
    net.outputs_at(0, 0)
    before = []
    for pixel in ([[0, 0, 0]] * 2, [[3, 0, 0]] * 2, [[3, 3, 0]] * 2, [[3, 3, 3]] * 2):
        net.set_pixel(0, 0, np.array(pixel))
        before.append(net.outputs_at(0, 0).reshape(2, C, -1).copy())
    r_changed, g_changed, b_changed = before[1] - before[0], before[2] - before[1], before[3] - before[2]
    assert np.abs(r_changed[:, 0]).max() == 0 and np.abs(r_changed[:, 1:]).min(axis=-1).max() > 1e-6
    assert np.abs(g_changed[:, :2]).max() == 0 and np.abs(g_changed[:, 2]).max() > 1e-6
    assert np.abs(b_changed).max() == 0                 # no output at the pixel reads its B


def garbage_filled(sampler):
    """``sampler`` whose memory of earlier inputs starts full of random finite values (the
    padding, which stands for outside the image, stays zero)."""
    class Garbage(sampler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            rng = np.random.default_rng(123)
            for buffer in self.inputs:
                buffer[...] = rng.uniform(-3, 3, buffer.shape)
    return Garbage


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_what_a_cached_sampler_holds_before_writing_it_never_reaches_a_result(sampler, monkeypatch):
    """Stale values (here garbage) in a pixel's slot, read while its later sub-pixels are not
    drawn, only ever meet the exact zero weights of a later group."""
    model = colour_model("softmax-4")
    i, j = SHAPE[0] - 1, 0                  # the garbage would be noticed: this pixel reads the rows above
    assert np.abs(sampler(model, 2, SHAPE).outputs_at(i, j)
                  - garbage_filled(sampler)(model, 2, SHAPE).outputs_at(i, j)).max() > 1e-3
    images, visible = random_levels(model, 2, seed=3), visible_mask("mask")
    clean = [sample(model, 2, SHAPE, seed=11, method="cached"),
             complete(model, images, visible, n_samples=2, seed=11, method="cached")]
    monkeypatch.setattr(sampling, sampler.__name__, garbage_filled(sampler))
    method = "cached" if sampler is CachedPixelCNN else "plain-cached"
    np.testing.assert_array_equal(sample(model, 2, SHAPE, seed=11, method=method), clean[0])
    np.testing.assert_array_equal(complete(model, images, visible, n_samples=2, seed=11, method=method), clean[1])


@pytest.mark.parametrize("method", METHODS)
def test_a_completion_never_reads_the_hidden_pixels_given(method):
    model = colour_model("softmax-4")
    images, visible = random_levels(model, 2, seed=4), visible_mask("per_image")
    garbled = np.where(kept(visible, images), images, random_levels(model, 2, seed=9))
    assert (garbled != images).any()
    np.testing.assert_array_equal(complete(model, garbled, visible, n_samples=2, seed=6, method=method),
                                  complete(model, images, visible, n_samples=2, seed=6, method=method))


# --------------------------------------------------------------------------- the first layer


class ColourNet(AutoregressiveModel):
    """A colour model of R, G, B whose first layer is given, then a 1x1 to the logits."""

    def __init__(self, first, levels=4):
        super().__init__()
        self.config = {}
        self.choose_output(levels, "softmax", None)
        self.choose_channels(C, "ordered")
        self.add("first", first)
        self.add("out", ordered_conv(first.out_channels, C * levels, 1, "B", groups=C, rng=1))


def grouped(mask_type, kernel_size=3, in_groups=channel_groups(C, C), out_groups=channel_groups(6, C)):
    return npc.MaskedConv2D(C, 6, kernel_size, mask_type, rng=0, in_groups=in_groups, out_groups=out_groups)


def test_a_first_layer_that_reads_only_earlier_sub_pixels_of_its_pixel_is_sampled_alike():
    model = randomize(ColourNet(grouped("A")))
    assert model.pixel_layers()[0].centre_mask is not None          # it does read its own pixel
    images = {method: sample(model, 3, SHAPE, seed=5, method=method) for method in METHODS}
    for method in METHODS:
        np.testing.assert_array_equal(images[method], images["naive"], err_msg=method)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("first, message", [
    (grouped("B"), "must not read the sub-pixel it predicts"),                           # g' <= g
    (grouped("A", in_groups=[0, 0, 1], out_groups=[0, 0, 0, 1, 1, 1]),                # R and G one group
     "must not read the sub-pixel it predicts"),
    (npc.MaskedConv2D(C, 6, 3, "B", rng=0), "must not read the sub-pixel it predicts"),    # no groups
    (npc.Conv2D(C, 6, 1, rng=0), "must not read the sub-pixel it predicts"),
    (npc.Conv2D(C, 6, 3, rng=0), "reads pixels after the one it computes"),
])
def test_the_samplers_refuse_a_colour_first_layer_that_reads_what_it_predicts(sampler, first, message):
    with pytest.raises(ValueError, match=f"{sampler.__name__}: .*{message}"):
        sampler(ColourNet(first), 1, SHAPE)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_set_pixel_takes_the_sub_pixels_of_one_pixel(sampler):
    net = sampler(colour_model("softmax-4"), 2, SHAPE)
    net.set_pixel(0, 0, np.zeros((2, C), np.uint8))
    for wrong in [np.zeros(2, np.uint8), np.zeros((2, 1), np.uint8), np.zeros((2, 4), np.uint8)]:
        with pytest.raises(ValueError, match=rf"{sampler.__name__}.set_pixel: .*\(2, 3\), got shape"):
            net.set_pixel(0, 0, wrong)
    grey = sampler(npc.PixelCNN(levels=4, hidden=2, blocks=1, head=3, seed=0), 2, SHAPE)
    grey.set_pixel(0, 0, np.zeros(2, np.uint8))                    # grey: (B,) as ever, or (B, 1)
    grey.set_pixel(0, 1, np.zeros((2, 1), np.uint8))


# --------------------------------------------------------------------------- shapes and errors


@pytest.mark.parametrize("images, message", [
    (np.zeros((2,) + SHAPE + (2,), int), r"images of 3 channels must be \(N, H, W, 3\)"),
    (np.zeros((2,) + SHAPE + (4,), int), r"images of 3 channels must be \(N, H, W, 3\)"),
    (np.zeros((2,) + SHAPE, int), r"images of 3 channels must be \(N, H, W, 3\)"),
])
def test_complete_refuses_images_of_another_channel_count_than_the_model(images, message):
    with pytest.raises(ValueError, match=f"complete: {message}"):
        complete(colour_model("softmax-4"), images, 2)


def test_a_grey_model_refuses_colour_images_and_keeps_its_shapes(monkeypatch):
    grey = npc.PixelCNN(levels=4, hidden=2, blocks=1, head=3, seed=0)
    with pytest.raises(ValueError, match=r"complete: grey images must be \(N, H, W\)"):
        complete(grey, np.zeros((2,) + SHAPE + (C,), int), 2)
    seen = record_draws(monkeypatch, grey)
    assert sample(grey, 2, SHAPE, seed=0, method="cached").shape == (2,) + SHAPE
    assert len(seen) == SHAPE[0] * SHAPE[1]                         # one draw per pixel
    assert complete(grey, np.zeros((2,) + SHAPE, int), 2, n_samples=3).shape == (2, 3) + SHAPE


def test_visible_is_a_mask_of_pixels_not_of_sub_pixels():
    model = colour_model("softmax-4")
    with pytest.raises(ValueError, match=r"visible must have shape \(6, 5\) or \(2, 6, 5\)"):
        complete(model, random_levels(model, 2), np.ones(SHAPE + (C,), bool))
