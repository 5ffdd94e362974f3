"""The Gated PixelCNN in colour (npixelcnn/gated.py, npixelcnn/gated_steps.py).

A colour pixel is three sub-pixels, drawn R, then G, then B. The horizontal stack carries
that order (van den Oord et al., 2016, "Conditional Image Generation with PixelCNN
Decoders"): its centre tap reads the sub-pixels of its own pixel that come before each
output's, while the vertical stack, which reaches it only a row down, is the grey one.
Claims tested here, on small float64 models with random weights:

* sub-pixel c's outputs at pixel p move with the earlier pixels and with the sub-pixels
  before c at p, and never with sub-pixel c itself, a later one at p, or anything after p;
  with ``channel_order="independent"`` with no sub-pixel of p at all (dilated too);
* no blind spot: they read every earlier pixel in reach, all three of its channels;
* the backward pass is the derivative (float64 central differences), with classes too,
  and the weights the channel rule hides get no gradient;
* a grey model is the model it was before colour existed, weight for weight;
* the cached samplers, plain and fast, visiting a pixel once per sub-pixel, give the
  outputs of one forward pass, and all three sampling methods the same images;
* clear errors for settings colour cannot take.
"""

import numpy as np
import pytest
from conftest import GRAD_TOL, randomize

import npixelcnn as npc
from npixelcnn.gated import gate_groups, horizontal_taps, vertical_taps
from npixelcnn.gradcheck import check_layer, check_model_and_loss
from npixelcnn.layers import Conv2D
from npixelcnn.masks import channel_groups
from npixelcnn.sampling import METHODS, CachedPixelCNN, PlainCachedPixelCNN

RGB = 3
LEVELS = 4
ROUNDING = 1e-10            # float64 changes below this are rounding, not influence


def colour_gated(channel_order="ordered", layers=3, kernel_size=3, dilations=None, classes=None,
                 channels=6, head=12, seed=0):
    """A float64 colour Gated PixelCNN, every parameter random (the masks respected)."""
    model = npc.GatedPixelCNN(levels=LEVELS, channels=channels, layers=layers, kernel_size=kernel_size,
                              head=head, dilations=dilations, classes=classes, in_channels=RGB,
                              channel_order=channel_order, seed=seed)
    return randomize(model, seed=seed + 1)


def random_input(shape, seed=0):
    """x (N, H, W, 3) in [0.1, 0.9]: 1 - x is a change that stays in [0, 1]."""
    return np.random.default_rng(seed).uniform(0.1, 0.9, shape)


def with_open_head(model):
    """The model with every ReLU of its head open, where a test claims that an output DOES move
    with an input: a sub-pixel's outputs read only their group of the head's ReLUs, and where
    all of a group are off (on the first row, made of biases, it happens) every path through
    them is cut, which is not what the masks are about. Raising the last gated layer's output
    bias by 20 makes h positive (it stays within +-10 here), and head1's weights and bias made
    positive keep its outputs so (the masks' zeros stay zeros). The gated stacks are as they were."""
    model.params[f"layers.{model.config['layers'] - 1}.out.b"] += 20
    for name in ("head1.W", "head1.b"):
        np.abs(model.params[name], out=model.params[name])
    return model


def assert_the_head_is_open(model, x):
    """Every input of the head's two ReLUs is positive at every pixel: no path is cut."""
    for name, layer in model.named_children():
        x = layer.forward(x)
        if name in ("take_h", "head1"):
            assert x.min() > 0, f"a ReLU after {name} is off somewhere"


def labels_for(model, n):
    return None if model.classes is None else np.arange(n) % model.classes


# --------------------------------------------------------------------------- the structure


def test_the_horizontal_stack_keeps_its_centre_in_every_layer_under_the_channel_rule():
    """First layer: R outputs read nothing of their pixel, G reads R, B reads R and G (mask A);
    after it, group g reads g' <= g (mask B). Each half of the gate (a, then b) is cut into
    the same three groups, so that a_f and b_f, and the gate's output f, carry one sub-pixel."""
    model = colour_gated(layers=2)
    first, second = model.named_children()[0][1], model.named_children()[1][1]
    centre = (1, 1)
    for layer, mask_type, c_in in [(first, "A", RGB), (second, "B", 6)]:
        h = layer.horizontal
        assert [tuple(t) for t in h.taps] == horizontal_taps(3, include_centre=True)
        assert h.mask_type == layer.mask_type == mask_type
        np.testing.assert_array_equal(h.in_groups, channel_groups(c_in, RGB))
        np.testing.assert_array_equal(h.out_groups, [0, 0, 1, 1, 2, 2] * 2)
        rule = np.less if mask_type == "A" else np.less_equal
        np.testing.assert_array_equal(h.centre_mask, rule(h.in_groups[:, None], h.out_groups[None, :]))
        assert np.all(h.params["W"][centre][~h.centre_mask] == 0)
        assert np.all(h.params["W"][centre][h.centre_mask] != 0)
        assert [tuple(t) for t in layer.vertical.taps] == vertical_taps(3)    # the grey vertical stack
    np.testing.assert_array_equal(gate_groups(6, RGB), [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2])
    # The independent order's first layer reads nothing of its pixel: no centre tap at all.
    h = colour_gated("independent", layers=1).named_children()[0][1].horizontal
    assert [tuple(t) for t in h.taps] == horizontal_taps(3, include_centre=False) and h.centre_mask is None


def test_the_config_records_the_colour_and_rebuilds_the_model():
    model = colour_gated("independent", classes=3)
    assert model.config["in_channels"] == RGB and model.config["channel_order"] == "independent"
    twin = npc.GatedPixelCNN(**model.config)
    assert list(twin.params) == list(model.params)
    assert all(twin.params[k].shape == p.shape for k, p in model.params.items())


def test_outputs_have_a_channel_axis_sub_pixel_c_in_group_c():
    model = colour_gated(layers=1)
    x = random_input((2, 4, 5, RGB))
    outputs = model.forward(x)
    assert outputs.shape == (2, 4, 5, RGB, LEVELS)
    assert model.log_probs(x).shape == (2, 4, 5, RGB, LEVELS)


# --------------------------------------------------------------------------- causality


MODELS = {
    "ordered": dict(channel_order="ordered"),
    "independent": dict(channel_order="independent"),
    "ordered-dilated": dict(channel_order="ordered", dilations=[2, 1, 3]),
    "independent-dilated-k5": dict(channel_order="independent", kernel_size=5, dilations=[1, 2, 1]),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_a_sub_pixel_sees_the_earlier_pixels_and_the_earlier_sub_pixels_of_its_own_and_nothing_else(name):
    """Change channel c' of pixel p: sub-pixel c's outputs at p move iff c' < c (never in the
    independent order), no output before p moves, and every output of the pixel d to the right
    does, where the first layer's row convolution, dilated by d, reads p with every channel.
    (The first layer's outputs at p read none of p's last sub-pixel, so in a row nothing else
    carries it on: with d = 2 the next pixel does not see it. Dilate the first layer by 1.)"""
    settings = MODELS[name]
    model = with_open_head(colour_gated(**settings)).eval()
    d = 1 if settings.get("dilations") is None else settings["dilations"][0]
    height, width = 4, 5
    x = random_input((1, height, width, RGB), seed=1)
    outputs = model.forward(x)
    raster = np.arange(height * width).reshape(height, width)
    ordered = settings["channel_order"] == "ordered"
    for i, j in np.ndindex(height, width):
        for c_changed in range(RGB):
            x2 = x.copy()
            x2[0, i, j, c_changed] = 1 - x2[0, i, j, c_changed]
            assert_the_head_is_open(model, x2)
            moved = np.abs(model.forward(x2) - outputs).max(axis=-1)[0] > ROUNDING    # (H, W, C)
            where = f"channel {c_changed} of pixel {(i, j)}"
            assert not moved[raster < raster[i, j]].any(), f"{where} moved an output of an earlier pixel"
            expected = np.arange(RGB) > c_changed if ordered else np.zeros(RGB, bool)
            np.testing.assert_array_equal(moved[i, j], expected, err_msg=f"{where}: its own pixel's sub-pixels")
            if j + d < width:
                assert moved[i, j + d].all(), f"{where} did not reach every sub-pixel of pixel {(i, j + d)}"


def influence(model, x, i, j, c, seed=0):
    """|d (w . outputs[0, i, j, c]) / d x[0]| (H, W, 3) for a random w: what sub-pixel c at (i, j) reads."""
    model.train()
    outputs = model.forward(x)
    doutputs = np.zeros_like(outputs)
    doutputs[0, i, j, c] = np.random.default_rng(seed).standard_normal(outputs.shape[-1])
    return np.abs(model.backward(doutputs)[0])


@pytest.mark.parametrize("channel_order", ["ordered", "independent"])
@pytest.mark.parametrize("layers, kernel_size", [(3, 3), (2, 5)])
def test_no_blind_spot_every_earlier_pixel_in_reach_and_every_channel_of_it(channel_order, layers, kernel_size):
    """As for grey (tests/test_gated.py): the pixels left of (i, j) up to pL columns away and
    the pL + 1 rows above, pL columns either side, with all three channels; and at (i, j)
    itself the sub-pixels before c (none for the independent order)."""
    model = with_open_head(colour_gated(channel_order, layers=layers, kernel_size=kernel_size))
    height, width = 10, 11
    x = random_input((1, height, width, RGB), seed=3)
    assert_the_head_is_open(model, x)
    p = kernel_size // 2
    reach, up = p * layers, p * layers + 1
    for (i, j), c in zip([(8, 5), (4, 1), (1, 10), (0, 3)], [0, 1, 2, 2]):
        expected = np.zeros((height, width, RGB), bool)
        expected[max(i - up, 0):i, max(j - reach, 0):j + reach + 1] = True
        expected[i, max(j - reach, 0):j] = True
        expected[i, j, :c] = channel_order == "ordered"
        seen = influence(model, x, i, j, c) > 0
        assert np.array_equal(seen, expected), \
            f"sub-pixel {c} of {(i, j)} reads {np.argwhere(seen ^ expected).tolist()} wrongly"


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("channel_order, dilations", [("ordered", None), ("independent", [1, 2])])
def test_whole_model_gradients_every_parameter_and_the_input(channel_order, dilations):
    model = colour_gated(channel_order, layers=2, dilations=dilations, head=6)
    x = random_input((2, 3, 4, RGB), seed=4)
    errors = check_layer(model, x)
    assert set(errors) == {"x"} | set(model.params)
    assert max(errors.values()) < GRAD_TOL, errors
    # Every parameter matters somewhere (no check passed by comparing zero with zero) ...
    assert all(np.any(g != 0) for g in model.grads.values())
    # ... but the centre weights the channel rule hides get exactly none: no step moves them.
    for name, layer in model.named_leaves():
        if isinstance(layer, Conv2D) and layer.centre_mask is not None:
            k = layer.kernel_size // 2
            assert np.all(model.grads[f"{name}.W"][k, k][~layer.centre_mask] == 0), name


def test_the_training_gradient_through_model_and_loss_with_classes():
    model = colour_gated(layers=2, classes=2, head=6, seed=5)
    levels = np.random.default_rng(6).integers(0, LEVELS, (2, 3, 4, RGB))
    errors = check_model_and_loss(model, levels, labels=np.array([1, 0]))
    assert any(name.endswith("_class.V") for name in errors)
    assert max(errors.values()) < GRAD_TOL, errors
    assert all(np.any(g != 0) for g in model.grads.values())


# --------------------------------------------------------------------------- grey is unchanged


def grey_by_hand(levels, channels, layers, kernel_size, head, seed):
    """The grey Gated PixelCNN's weights as they were before colour: per layer the vertical,
    horizontal (no centre in the first), link and out convolutions, then the head's two 1x1s,
    all drawn from one generator in that order."""
    rng = np.random.default_rng(seed)
    k, c2, gain = kernel_size, 2 * channels, 1.0 / np.sqrt(layers)
    params = {}
    for i in range(layers):
        c_in = 1 if i == 0 else channels
        convs = {"vertical": Conv2D(c_in, c2, k, rng=rng, taps=vertical_taps(k)),
                 "horizontal": Conv2D(c_in, c2, k, rng=rng, taps=horizontal_taps(k, include_centre=i > 0)),
                 "link": Conv2D(c2, c2, 1, rng=rng),
                 "out": Conv2D(channels, channels, 1, rng=rng, gain=1.0 if i == 0 else gain)}
        params.update({f"layers.{i}.{name}.{p}": v for name, conv in convs.items() for p, v in conv.params.items()})
    head_convs = [("head1", Conv2D(channels, head, 1, rng=rng)), ("out", Conv2D(head, levels, 1, rng=rng, gain=0.1))]
    for name, conv in head_convs:
        params.update({f"{name}.{p}": v for p, v in conv.params.items()})
    return params


def test_a_grey_model_is_built_weight_for_weight_as_before_colour():
    settings = dict(levels=4, channels=5, layers=3, kernel_size=5, head=7, seed=11)
    model = npc.GatedPixelCNN(**settings)
    expected = grey_by_hand(**settings)
    assert list(model.params) == list(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(model.params[name], value, err_msg=name)
    assert model.config == {"levels": 4, "channels": 5, "layers": 3, "kernel_size": 5, "head": 7}
    assert model.in_channels == 1 and model.channel_groups(5) is None
    for _, layer in model.named_leaves():
        assert getattr(layer, "centre_mask", None) is None      # no channel rule anywhere


# --------------------------------------------------------------------------- the cached samplers


def outputs_sub_pixel_by_sub_pixel(sampler, model, images, labels=None, seed=0):
    """Feed ``images`` (B, H, W, 3) to a cached ``sampler`` as the sampling loop does: at every
    pixel, for c = R, G, B, sub-pixel c's outputs from ``outputs_at``, then ``set_pixel`` with
    the sub-pixels up to c, the later ones holding other levels (which must not be read).
    Every buffer starts as garbage (nothing may be read before it is written).
    Returns the outputs (B, H, W, 3, P)."""
    n, height, width, channels = images.shape
    net = sampler(model, n, (height, width), labels=labels)
    rng = np.random.default_rng(seed)
    for buffer in net.inputs:
        buffer[...] = rng.uniform(-3, 3, buffer.shape)
    outputs = np.zeros(images.shape + (model.output.channels,))
    for i, j in np.ndindex(height, width):
        for c in range(channels):
            outputs[:, i, j, c] = net.outputs_at(i, j).reshape(n, channels, -1)[:, c]
            levels = images[:, i, j].copy()
            levels[:, c + 1:] = rng.integers(0, model.levels, (n, channels - c - 1))
            net.set_pixel(i, j, levels)
    return outputs


CACHED_MODELS = {
    "ordered": lambda: colour_gated(),
    "independent": lambda: colour_gated("independent"),
    "ordered-dilated-k5-classes": lambda: colour_gated(kernel_size=5, dilations=[2, 1, 1], classes=3),
}


@pytest.mark.parametrize("name", list(CACHED_MODELS))
def test_the_cached_samplers_give_the_forward_pass_sub_pixel_by_sub_pixel(name):
    model = CACHED_MODELS[name]()
    images = np.random.default_rng(7).integers(0, LEVELS, (2, 5, 6, RGB))
    labels = labels_for(model, 2)
    full = model.eval().forward(npc.to_model_input(images, LEVELS).astype(np.float64), labels)
    plain = outputs_sub_pixel_by_sub_pixel(PlainCachedPixelCNN, model, images, labels)
    fast = outputs_sub_pixel_by_sub_pixel(CachedPixelCNN, model, images, labels)
    np.testing.assert_allclose(plain, full, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast, full, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sampler", [PlainCachedPixelCNN, CachedPixelCNN])
def test_a_given_pixel_stored_before_it_is_computed_changes_nothing(sampler):
    """A completion's given pixel is stored, all sub-pixels, before the samplers compute it. At
    (i, 0) that overwrites the image row that the first layer's vertical stack of row i - 1
    still reads in the fast sampler's ring, unless it keeps its own (gated_steps.GatedLayerAt)."""
    for model in (colour_gated(), randomize(npc.GatedPixelCNN(levels=LEVELS, channels=3, layers=2, head=4,
                                                                seed=0))):
        shape = (2, 5, 6) + ((RGB,) if model.in_channels == RGB else ())
        images = np.random.default_rng(8).integers(0, LEVELS, shape)
        full = model.eval().forward(npc.to_model_input(images, LEVELS).astype(np.float64))
        net = sampler(model, 2, (5, 6))
        for i, j in np.ndindex(5, 6):
            net.set_pixel(i, j, images[:, i, j])
            np.testing.assert_allclose(net.outputs_at(i, j), full[:, i, j].reshape(2, -1), rtol=0, atol=1e-12,
                                       err_msg=f"{sampler.__name__}, {model.in_channels} channel(s), pixel {(i, j)}")


@pytest.mark.parametrize("sampler", [PlainCachedPixelCNN, CachedPixelCNN])
def test_the_samplers_take_a_first_layer_that_reads_earlier_sub_pixels_and_refuse_one_that_reads_its_own(sampler):
    model = colour_gated(layers=2)
    first = model.named_children()[0][1]
    steps = sampler(model, 1, (3, 4)).steps
    assert steps[0].reads_own_pixel                      # through the horizontal stack's centre: R, G
    assert not sampler(colour_gated("independent"), 1, (3, 4)).steps[0].reads_own_pixel     # no centre
    h = first.horizontal                                 # now let each group read its own sub-pixel
    h.centre_mask[...] = h.in_groups[:, None] <= h.out_groups[None, :]
    with pytest.raises(ValueError, match="sub-pixel"):
        sampler(model, 1, (3, 4))


@pytest.mark.parametrize("name", ["ordered", "independent"])
def test_every_method_samples_and_completes_the_same_colour_images(name):
    model = CACHED_MODELS[name]()
    shape = (4, 5)
    drawn = {method: npc.sample(model, 2, shape, seed=1, method=method) for method in METHODS}
    assert drawn["naive"].shape == (2,) + shape + (RGB,) and len(np.unique(drawn["naive"])) > 1
    images = np.random.default_rng(9).integers(0, LEVELS, (2,) + shape + (RGB,))
    visible = np.ones(shape, bool)
    visible[1, 3:] = visible[3] = False                 # visible pixels after hidden ones, (2, 0) given
    done = {method: npc.complete(model, images, visible, seed=2, method=method) for method in METHODS}
    for method in METHODS:
        np.testing.assert_array_equal(drawn[method], drawn["naive"], err_msg=method)
        np.testing.assert_array_equal(done[method], done["naive"], err_msg=method)
    np.testing.assert_array_equal(done["naive"][:, 0][:, visible], images[:, visible])


def test_a_colour_gated_model_saves_and_loads(tmp_path):
    model = npc.GatedPixelCNN(levels=LEVELS, channels=6, layers=2, head=6, in_channels=RGB, seed=0)
    loaded = npc.load_checkpoint(npc.save_checkpoint(model, tmp_path / "colour.npz")).model
    assert loaded.config == model.config and loaded.in_channels == RGB
    assert all(np.array_equal(p, loaded.params[k]) for k, p in model.params.items())


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(in_channels=3, channels=2), ValueError, "channels must be >= 3, got 2"),
    (dict(in_channels=3, head=2), ValueError, "head must be >= 3, got 2"),
    (dict(channel_order="independent"), ValueError, "a grey model .in_channels=1. has one"),
    (dict(in_channels=3, channel_order="RGB"), ValueError, "channel_order must be 'ordered'"),
    (dict(in_channels=0), ValueError, "in_channels"),
    (dict(in_channels=3.0), TypeError, "in_channels"),
])
def test_settings_colour_cannot_take_are_refused_clearly(kwargs, error, message):
    with pytest.raises(error, match=message):
        npc.GatedPixelCNN(**{"channels": 6, "head": 6, "layers": 2, **kwargs})


def test_a_colour_model_refuses_grey_images():
    model = colour_gated(layers=1)
    with pytest.raises(ValueError, match="3"):
        model.forward(random_input((1, 4, 5, 1)))
