"""The fast cached sampler computes a colour pixel once, its layers' groups split over the sub-pixels.

Claims tested here, on small colour models of both architectures with random weights:

* ``outputs_at(i, j, sub_pixel=c)`` is round c of pixel (i, j): sub-pixel c's outputs, (B, P),
  equal to one forward pass of the finished images there once sub-pixels 0 .. c - 1 are set;
* round c never reads a later sub-pixel of (i, j), nor a later group of any layer there, not
  even to multiply it by an exact zero weight: with NaN there, its outputs stay right (the
  plain sampler, which computes every group each time, multiplies them by zeros: NaN);
* the C rounds of a pixel together multiply no more than every layer computed once at the
  pixel (the sampler used to compute every layer C times), in C times the matrix products;
* grey stays one round; rounds come in order; a layer that does not keep the sub-pixel
  order is refused.
"""

import numpy as np
import pytest
from conftest import randomize

import npixelcnn as npc
from npixelcnn.autoregressive import AutoregressiveModel
from npixelcnn.blocks import ordered_conv
from npixelcnn.masks import channel_groups
from npixelcnn.sampling import CachedPixelCNN, PlainCachedPixelCNN

SHAPE, C = (5, 4), 3

MODELS = {
    "pixelcnn": lambda: npc.PixelCNN(levels=4, hidden=7, blocks=2, head=8, in_channels=C, seed=0),
    "pixelcnn-independent": lambda: npc.PixelCNN(levels=4, hidden=7, blocks=1, head=8, in_channels=C,
                                                 channel_order="independent", seed=0),
    "pixelcnn-dilated-mixture": lambda: npc.PixelCNN(levels=256, hidden=7, blocks=2, head=8, in_channels=C,
                                                     dilations=[2, 1], output="logistic-mixture",
                                                     components=2, seed=0),
    "gated": lambda: npc.GatedPixelCNN(levels=4, channels=7, layers=3, head=8, in_channels=C, seed=0),
    "gated-independent": lambda: npc.GatedPixelCNN(levels=4, channels=7, layers=2, head=8, in_channels=C,
                                                   channel_order="independent", seed=0),
    "gated-k5-dilated-classes": lambda: npc.GatedPixelCNN(levels=4, channels=7, layers=3, kernel_size=5, head=8,
                                                          in_channels=C, dilations=[1, 2, 1], classes=3, seed=0),
}


def colour_model(name):
    """float64, so that the cached outputs equal the forward pass to 1e-12."""
    return randomize(MODELS[name](), seed=1).astype(np.float64)


def labels_for(model, n):
    return None if model.classes is None else np.arange(n) % model.classes


def forward(model, images, labels):
    return model.eval().forward(npc.to_model_input(images, model.levels).astype(model.dtype), labels)


def nan_filled(net):
    """``net`` with all it keeps of earlier inputs NaN: a read before a write shows."""
    for buffer in net.inputs:
        buffer[...] = np.nan
    return net


def rounds_with_nan_ahead(net, model, images):
    """Run ``net`` over ``images`` (B, H, W, C) round by round, as the sampling loop does,
    with the first layer's sub-pixels of (i, j) not set yet holding NaN (stored through
    the first step, after set_pixel). -> every round's outputs, (B, H, W, C, P)."""
    values = npc.to_model_input(images, model.levels).astype(model.dtype)
    outputs = np.zeros(images.shape + (model.output.channels,))
    for i, j in np.ndindex(*SHAPE):
        net.steps[0].store_pixel(i, j, np.full((len(images), C), np.nan))
        for c in range(C):
            outputs[:, i, j, c] = net.outputs_at(i, j, sub_pixel=c)
            net.set_pixel(i, j, images[:, i, j])
            ahead = values[:, i, j].copy()
            ahead[:, c + 1:] = np.nan                   # drawn: 0 .. c; not yet: NaN
            net.steps[0].store_pixel(i, j, ahead)
    return outputs


@pytest.mark.parametrize("name", list(MODELS))
def test_a_round_reads_no_later_sub_pixel_not_even_through_a_zero_weight(name):
    model = colour_model(name)
    images = np.random.default_rng(2).integers(0, model.levels, (2,) + SHAPE + (C,))
    labels = labels_for(model, 2)
    fast = rounds_with_nan_ahead(nan_filled(CachedPixelCNN(model, 2, SHAPE, labels=labels)), model, images)
    assert np.isfinite(fast).all()
    np.testing.assert_allclose(fast, forward(model, images, labels), rtol=0, atol=1e-12)


def test_the_plain_sampler_multiplies_the_later_sub_pixels_by_zeros():
    """What the test above would see if a round read a later group: the plain sampler computes
    every group at each call, and NaN * 0 is NaN."""
    model = colour_model("pixelcnn")
    images = np.random.default_rng(2).integers(0, model.levels, (2,) + SHAPE + (C,))
    plain = rounds_with_nan_ahead(PlainCachedPixelCNN(model, 2, SHAPE), model, images)
    assert np.isnan(plain).any()


@pytest.mark.parametrize("name", ["pixelcnn", "gated-k5-dilated-classes"])
def test_a_round_returns_its_sub_pixels_outputs_and_the_whole_pixel_call_all_of_them(name):
    model = colour_model(name)
    images = np.random.default_rng(3).integers(0, model.levels, (3,) + SHAPE + (C,))
    labels = labels_for(model, 3)
    full = forward(model, images, labels)                       # (B, H, W, C, P)
    fast, plain = CachedPixelCNN(model, 3, SHAPE, labels=labels), PlainCachedPixelCNN(model, 3, SHAPE, labels=labels)
    for i, j in np.ndindex(*SHAPE):
        for c in range(C):
            for net in (fast, plain):
                out = net.outputs_at(i, j, sub_pixel=c)
                assert out.shape == (3, model.output.channels)
                np.testing.assert_allclose(out, full[:, i, j, c], rtol=0, atol=1e-12)
            fast.set_pixel(i, j, images[:, i, j])
            plain.set_pixel(i, j, images[:, i, j])
    whole = CachedPixelCNN(model, 3, SHAPE, labels=labels)     # without sub_pixel: every round in turn
    for i, j in np.ndindex(*SHAPE):
        whole.set_pixel(i, j, images[:, i, j])
        np.testing.assert_allclose(whole.outputs_at(i, j), full[:, i, j].reshape(3, -1), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- the work


def count_products(monkeypatch):
    """Record the multiply-adds (M * K * N) of every np.matmul the steps make."""
    real, counted = np.matmul, []

    def counting(a, b, *args, **kwargs):
        counted.append(int(np.prod(a.shape[:-1])) * a.shape[-1] * b.shape[-1])
        return real(a, b, *args, **kwargs)
    monkeypatch.setattr(np, "matmul", counting)
    return counted


def once_per_pixel(model, batch):
    """The multiply-adds of every layer computed once, whole, at one pixel (its kept taps, and
    the bias row), as the sampler computed them C times before; the gated layers' vertical
    stacks and links are computed once per row, not per pixel, and left out."""
    total = 0
    for name, layer in model.named_leaves():
        if isinstance(layer, npc.Conv2D) and not name.endswith((".vertical", ".link")):
            total += batch * (len(layer.taps) * layer.in_channels + 1) * layer.out_channels
    return total


@pytest.mark.parametrize("name", ["pixelcnn", "pixelcnn-independent", "gated", "gated-k5-dilated-classes"])
def test_the_rounds_of_a_pixel_together_compute_each_layer_at_most_once(name, monkeypatch):
    model = colour_model(name)
    net = CachedPixelCNN(model, 2, SHAPE, labels=labels_for(model, 2))
    for q in range(6):                                          # pixels (0, 0) .. (1, 1)
        i, j = divmod(q, SHAPE[1])
        for c in range(C):
            net.outputs_at(i, j, sub_pixel=c)
            net.set_pixel(i, j, np.zeros((2, C), int))
    counted = count_products(monkeypatch)
    calls = []
    for c in range(C):                                          # pixel (1, 2): not the first of its row
        net.outputs_at(1, 2, sub_pixel=c)
        calls.append(len(counted))
        net.set_pixel(1, 2, np.zeros((2, C), int))
    work, once = sum(counted), once_per_pixel(model, 2)
    assert work <= once                                         # was C * once
    assert work > 0.5 * once                                    # the zero weights of later groups are skipped, no more
    assert calls[0] == calls[1] - calls[0] == calls[2] - calls[1]   # as many products in every round


# --------------------------------------------------------------------------- the interface


def test_grey_is_one_round_and_its_call_is_unchanged():
    model = randomize(npc.PixelCNN(levels=4, hidden=3, blocks=1, head=5, seed=0))
    net = CachedPixelCNN(model, 2, SHAPE)
    assert net.outputs_at(0, 0).shape == (2, 4)
    np.testing.assert_array_equal(CachedPixelCNN(model, 2, SHAPE).outputs_at(0, 0, sub_pixel=0), net.outputs_at(0, 0))
    with pytest.raises(ValueError, match=r"sub_pixel must be an int in \[0, 1\), got 1"):
        net.outputs_at(0, 0, sub_pixel=1)


@pytest.mark.parametrize("sampler", [CachedPixelCNN, PlainCachedPixelCNN])
def test_sub_pixel_must_be_one_of_the_pixels(sampler):
    net = sampler(colour_model("pixelcnn"), 2, SHAPE)
    for wrong in (3, -1, 1.0, "G"):
        with pytest.raises(ValueError, match=rf"{sampler.__name__}.outputs_at: sub_pixel must be an int in \[0, 3\)"):
            net.outputs_at(0, 0, sub_pixel=wrong)


def test_the_fast_rounds_of_a_pixel_come_in_order():
    """Round c reads the groups that rounds 0 .. c - 1 of the same pixel computed."""
    net = CachedPixelCNN(colour_model("gated"), 2, SHAPE)
    with pytest.raises(ValueError, match=r"sub-pixel 1 of pixel \(0, 0\) must come right after sub-pixel 0"):
        net.outputs_at(0, 0, sub_pixel=1)
    net.outputs_at(0, 0, sub_pixel=0)
    net.outputs_at(0, 0, sub_pixel=1)
    with pytest.raises(ValueError, match=r"sub-pixel 1 of pixel \(0, 1\) must come right after"):
        net.outputs_at(0, 1, sub_pixel=1)


class ColourNet(AutoregressiveModel):
    """A colour model: a first layer that keeps the sub-pixel order, then ``out``."""

    def __init__(self, out):
        super().__init__()
        self.config = {}
        self.choose_output(4, "softmax", None)
        self.choose_channels(C, "ordered")
        self.add("first", npc.MaskedConv2D(C, 6, 3, "A", rng=0, in_groups=channel_groups(C, C),
                                           out_groups=channel_groups(6, C)))
        self.add("out", out)


def reads_every_group():
    """A 1x1 that says it has groups but lets every output read every channel of its pixel."""
    layer = npc.Conv2D(6, C * 4, 1, rng=1, centre_mask=np.ones((6, C * 4), bool))
    layer.in_groups, layer.out_groups = channel_groups(6, C), channel_groups(C * 4, C)
    return layer


@pytest.mark.parametrize("out, message", [
    (npc.Conv2D(6, C * 4, 1, rng=1), "every layer must split its channels into the sub-pixels' groups"),
    (reads_every_group(), "a layer's group g may read only its input's groups <= g at its own pixel"),
    (npc.MaskedConv2D(6, C * 4, 1, "B", rng=1, in_groups=np.array([0, 1, 2, 0, 1, 2]),
                      out_groups=channel_groups(C * 4, C)),
     "every layer must split its channels into contiguous groups as masks.channel_groups does"),
])
def test_the_fast_sampler_refuses_a_layer_that_does_not_keep_the_sub_pixel_order(out, message):
    with pytest.raises(ValueError, match=f"CachedPixelCNN: in a model of 3 sub-pixels {message}"):
        CachedPixelCNN(ColourNet(out), 1, SHAPE)
    ordered = ColourNet(ordered_conv(6, C * 4, 1, "B", groups=C, rng=1))
    CachedPixelCNN(ordered, 1, SHAPE)                           # the same layer, in order: taken
