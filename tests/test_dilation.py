"""Dilated convolutions: the same k x k taps, d pixels apart, in both architectures.

Claims tested here:

* a dilated layer computes the convolution with its kernel spread out, zeros between
  the taps (plain and fast im2col, forward and backward), and its gradients agree
  with central differences, alone, in a residual block, in a gated layer and in a
  whole model of each architecture;
* dilation keeps a model causal, and widens what it sees: each block of a PixelCNN
  reaches d rows further up instead of one;
* the cached samplers, plain and fast, give the naive loop's images for dilated
  models, and read nothing they have not written;
* a dilated model round-trips through a checkpoint; bad settings are refused clearly.
"""

import numpy as np
import pytest
from conftest import GRAD_TOL, outputs_pixel_by_pixel, randomize, rewrite_meta
from test_gated import PairAsArray

import npixelcnn as npc
from npixelcnn import fast_ops, ops, sampling
from npixelcnn.blocks import ResidualBlock
from npixelcnn.checkpoint_meta import CheckpointError
from npixelcnn.gated import GatedLayer
from npixelcnn.gradcheck import check_layer
from npixelcnn.sampling import METHODS, CachedPixelCNN, PlainCachedPixelCNN, complete, sample

SHAPE = (7, 8)


def assert_all_below(errors, tol=GRAD_TOL):
    worst = max(errors, key=errors.get)
    assert errors[worst] < tol, f"relative error of d/d{worst} is {errors[worst]:.2e}: {errors}"


def dilated_pixelcnn(dilations=(2, 3), seed=0):
    return randomize(npc.PixelCNN(levels=4, hidden=3, blocks=len(dilations), head=4,
                                  dilations=list(dilations), seed=seed), seed=seed + 1)


def dilated_gated(dilations=(1, 3, 2), kernel_size=3, seed=0):
    return randomize(npc.GatedPixelCNN(levels=4, channels=3, layers=len(dilations), kernel_size=kernel_size,
                                       head=6, dilations=list(dilations), seed=seed), seed=seed + 1)


MODELS = {
    "pixelcnn": lambda: dilated_pixelcnn((2, 3)),
    "gated-k3": lambda: dilated_gated((1, 3, 2)),
    "gated-k5": lambda: dilated_gated((2, 1), kernel_size=5),    # several taps per stack row, 2 apart
}


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    """A float64 dilated model with random weights and biases, masks respected."""
    return MODELS[request.param]()


# --------------------------------------------------------------------------- the layer


def spread_out_convolution(x, layer):
    """The layer's convolution computed another way: its k x k kernel spread over a dense
    (k - 1) d + 1 window, zeros between the taps, and summed tap by tap over a padded input."""
    k, d = layer.kernel_size, layer.dilation
    window = (k - 1) * d + 1
    dense = np.zeros((window, window) + layer.params["W"].shape[2:])
    dense[::d, ::d] = layer.params["W"]                            # the masked taps are zero in W already
    n, h, w, _ = x.shape
    p = window // 2
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    y = np.zeros((n, h, w, layer.out_channels)) + layer.params["b"]
    for r in range(window):
        for c in range(window):                                     # offset (r - p, c - p) from the pixel
            y += padded[:, r:r + h, c:c + w] @ dense[r, c]
    return y


@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
@pytest.mark.parametrize("k, mask_type, d", [(3, None, 2), (3, "A", 2), (3, "B", 3), (5, "B", 2), (5, "A", 4)])
def test_a_dilated_layer_is_the_convolution_with_its_kernel_spread_out(fast, k, mask_type, d, rng):
    # (5, "A", 4): a window of 17 pixels over a 6 x 7 image, most taps in the padding.
    layer = (npc.Conv2D(2, 3, k, rng=0, dilation=d) if mask_type is None
             else npc.MaskedConv2D(2, 3, k, mask_type, rng=0, dilation=d))
    randomize(layer)
    x = rng.standard_normal((2, 6, 7, 2))
    with ops.fast(fast):
        y = layer.forward(x)
    np.testing.assert_allclose(y, spread_out_convolution(x, layer), rtol=0, atol=1e-12)


@pytest.mark.parametrize("version", ["plain", "fast"])
@pytest.mark.parametrize("k, mask_type, d", [(3, "B", 2), (5, "A", 3)])
def test_dilated_col2im_is_the_adjoint_of_dilated_im2col(version, k, mask_type, d, rng):
    im2col, col2im = ((npc.im2col, npc.col2im) if version == "plain" else
                      (lambda *args: fast_ops.im2col(*args).copy(), fast_ops.col2im))
    layer = npc.MaskedConv2D(3, 1, k, mask_type, dilation=d)
    x = rng.standard_normal((2, 6, 5, 3))
    c = rng.standard_normal((2 * 6 * 5, len(layer.taps) * 3))
    lhs = np.vdot(im2col(x, layer.window_taps, layer.window), c)
    rhs = np.vdot(x, col2im(c, x.shape, layer.window_taps, layer.window))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


def test_a_dilated_layer_keeps_its_weights_and_records_where_they_read():
    layer = npc.MaskedConv2D(2, 3, 3, "B", dilation=2)
    assert layer.params["W"].shape == (3, 3, 2, 3) and layer.dilation == 2
    assert layer.window == 5
    assert layer.window_taps.tolist() == [[0, 0], [0, 2], [0, 4], [2, 0], [2, 2]]     # the taps times 2
    np.testing.assert_array_equal(layer.taps, npc.kept_taps(3, "B"))


def test_a_1x1_convolution_ignores_dilation(rng):
    x = rng.standard_normal((2, 3, 4, 2)).astype(np.float32)
    dilated, plain = npc.Conv2D(2, 3, 1, rng=0, dilation=5), npc.Conv2D(2, 3, 1, rng=0)
    assert dilated.window == 1
    np.testing.assert_array_equal(dilated.forward(x), plain.forward(x))


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("k, mask_type, d", [(3, None, 2), (3, "A", 2), (3, "B", 3), (5, "B", 2)])
def test_dilated_convolution_gradients(k, mask_type, d, rng):
    layer = randomize(npc.Conv2D(2, 3, k, rng=0, dilation=d) if mask_type is None
                      else npc.MaskedConv2D(2, 3, k, mask_type, rng=0, dilation=d))
    assert_all_below(check_layer(layer, rng.standard_normal((2, 6, 7, 2))))


def test_dilated_residual_block_gradients(rng):
    block = randomize(ResidualBlock(3, rng=0, dilation=2))
    assert block.dilation == block.conv2.dilation == 2
    assert_all_below(check_layer(block, rng.standard_normal((2, 6, 5, 6))))


@pytest.mark.parametrize("first, kernel_size, d", [(True, 3, 2), (False, 3, 2), (False, 5, 2)])
def test_dilated_gated_layer_gradients(first, kernel_size, d, rng):
    c = 3
    layer = randomize(GatedLayer(1 if first else c, c, kernel_size, first=first, rng=0, dilation=d), seed=1)
    assert layer.dilation == layer.vertical.dilation == layer.horizontal.dilation == d
    errors = check_layer(PairAsArray(layer), rng.standard_normal((2, 6, 6, 1 if first else 2 * c)))
    assert set(errors) == {"x"} | set(layer.params)
    assert_all_below(errors)


@pytest.mark.parametrize("build", [lambda: dilated_pixelcnn((2, 3)), lambda: dilated_gated((1, 2))],
                         ids=["pixelcnn", "gated"])
def test_whole_dilated_model_gradients(build, rng):
    model = build()
    errors = check_layer(model, rng.uniform(0.2, 0.8, (2, 6, 6, 1)))
    assert_all_below(errors)
    assert all(np.any(g != 0) for g in model.grads.values())      # no check passed as zero against zero


# --------------------------------------------------------------------------- causality and reach


def test_outputs_never_depend_on_the_pixel_itself_or_later_ones(model):
    """Change pixel p and every pixel after it: the outputs at p and before it stay the same."""
    model.eval()
    rng = np.random.default_rng(4)
    height, width = SHAPE
    x = rng.uniform(0, 1, (2, height, width, 1))
    outputs = model.forward(x)
    raster = np.arange(height * width).reshape(height, width)
    for p in [(0, 0), (2, 5), (4, 0), (6, 7)]:
        later = raster >= raster[p]
        x2 = np.where(later[None, :, :, None], rng.uniform(0, 1, x.shape), x)
        changed = np.abs(model.forward(x2) - outputs).max(axis=(0, 3)) > 1e-12
        assert not changed[raster <= raster[p]].any(), f"pixel {p} changed an output at or before it"
        assert changed[raster > raster[p]].any() or raster[p] == raster.max()


def rows_seen_above(model, p, height=24, width=12):
    """How many rows above pixel p the outputs at p read: by gradients, over three inputs
    (on one, a ReLU that is off can hide a path)."""
    seen = np.zeros((height, width), bool)
    model.train()
    for seed in range(3):
        x = np.random.default_rng(seed).uniform(0, 1, (1, height, width, 1))
        outputs = model.forward(x)
        doutputs = np.zeros_like(outputs)
        doutputs[0, p[0], p[1]] = np.random.default_rng(seed).standard_normal(outputs.shape[-1])
        seen |= model.backward(doutputs)[0, :, :, 0] != 0
    return p[0] - np.nonzero(seen.any(axis=1))[0].min()


def test_each_dilated_block_reaches_d_rows_further_up():
    """The 7x7 mask-A layer reads 3 rows up, and each block's 3x3 mask-B one row up
    times its dilation: 3 + 2 + 3 + 4 = 12 rows with dilations 2, 3, 4, where the
    same model undilated sees 3 + 3 = 6."""
    p = (20, 6)
    assert rows_seen_above(dilated_pixelcnn((2, 3, 4)), p) == 3 + 2 + 3 + 4
    assert rows_seen_above(dilated_pixelcnn((1, 1, 1)), p) == 3 + 3


def test_each_dilated_gated_layer_reaches_d_rows_further_up():
    """A gated layer's vertical stack reads k//2 * d rows up, and the shift adds one."""
    p = (20, 6)
    assert rows_seen_above(dilated_gated((1, 3, 2)), p) == 1 + 3 + 2 + 1
    assert rows_seen_above(dilated_gated((1, 1, 1)), p) == 3 + 1


# --------------------------------------------------------------------------- the cached samplers


def random_levels(n, seed=0):
    return np.random.default_rng(seed).integers(0, 4, (n,) + SHAPE)


@pytest.mark.parametrize("sampler", [PlainCachedPixelCNN, CachedPixelCNN])
def test_the_cached_samplers_give_the_outputs_of_one_forward_pass(model, sampler):
    images = random_levels(3, seed=2)
    full = model.eval().forward(npc.to_model_input(images, model.levels).astype(np.float64))
    np.testing.assert_allclose(outputs_pixel_by_pixel(sampler, model, images), full, rtol=0, atol=1e-12)


def test_every_method_samples_the_same_images(model):
    images = {method: sample(model, 3, SHAPE, seed=7, method=method) for method in METHODS}
    for method in METHODS:
        np.testing.assert_array_equal(images[method], images["naive"], err_msg=method)
    assert len(np.unique(images["naive"])) > 1


@pytest.mark.parametrize("visible", [3, "mask"])
def test_every_method_completes_the_same_way(model, visible):
    images = random_levels(2, seed=5)
    if visible == "mask":                      # the first hidden pixel mid-row, visible pixels after it
        visible = np.random.default_rng(0).random(SHAPE) < 0.5
        visible[:2], visible[2, :4], visible[2, 4] = True, True, False
    done = {method: complete(model, images, visible, n_samples=2, seed=3, method=method) for method in METHODS}
    for method in METHODS:
        np.testing.assert_array_equal(done[method], done["naive"], err_msg=method)


def with_garbage_inputs(sampler):
    """``sampler`` whose kept inputs start full of random values (the padding stays zero)."""
    class Garbage(sampler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            rng = np.random.default_rng(123)
            for kept in self.inputs:
                kept[...] = rng.uniform(-3, 3, kept.shape)
    return Garbage


@pytest.mark.parametrize("method, name", [("plain-cached", "PlainCachedPixelCNN"), ("cached", "CachedPixelCNN")])
def test_the_samplers_never_read_a_dilated_input_they_have_not_written(model, method, name, monkeypatch):
    """A ring too short for the dilated window would read rows of garbage (or stale rows)."""
    images = random_levels(2, seed=3)
    clean = [sample(model, 2, SHAPE, seed=11, method=method), complete(model, images, 3, seed=11, method=method)]
    monkeypatch.setattr(sampling, name, with_garbage_inputs(getattr(sampling, name)))
    np.testing.assert_array_equal(sample(model, 2, SHAPE, seed=11, method=method), clean[0])
    np.testing.assert_array_equal(complete(model, images, 3, seed=11, method=method), clean[1])


# --------------------------------------------------------------------------- settings and checkpoints


def test_dilations_are_recorded_only_when_given():
    assert "dilations" not in npc.PixelCNN(hidden=2, blocks=2, head=2).config
    assert "dilations" not in npc.GatedPixelCNN(channels=2, layers=2, head=2).config
    model = npc.PixelCNN(hidden=2, blocks=2, head=2, dilations=(1, np.int64(2)))
    assert model.config["dilations"] == [1, 2] and all(type(d) is int for d in model.config["dilations"])
    assert [block.dilation for _, block in model.named_children()[1:3]] == [1, 2]


@pytest.mark.parametrize("build", [lambda: dilated_pixelcnn((2, 3)), lambda: dilated_gated((1, 3, 2))],
                         ids=["pixelcnn", "gated"])
def test_a_dilated_model_round_trips_through_a_checkpoint(build, tmp_path):
    model = build().astype(np.float32)
    loaded = npc.load_checkpoint(npc.save_checkpoint(model, tmp_path / "m.npz")).model
    assert type(loaded) is type(model) and loaded.config == model.config
    assert [layer.dilation for _, layer in loaded.named_leaves() if hasattr(layer, "dilation")] == \
           [layer.dilation for _, layer in model.named_leaves() if hasattr(layer, "dilation")]
    x = npc.to_model_input(random_levels(2), 4)
    np.testing.assert_array_equal(loaded.eval().forward(x), model.eval().forward(x))


def test_a_checkpoint_edited_to_an_absurd_dilation_is_refused(tmp_path):
    path = npc.save_checkpoint(dilated_pixelcnn((2, 3)).astype(np.float32), tmp_path / "m.npz")
    rewrite_meta(path, lambda meta: meta["model"].update(dilations=[2, 10 ** 9]))
    with pytest.raises(CheckpointError, match="window .* must be at most 255"):
        npc.load_checkpoint(path)


@pytest.mark.parametrize("build, error, message", [
    (lambda: npc.Conv2D(1, 1, 3, dilation=0), ValueError, "dilation must be at least 1"),
    (lambda: npc.MaskedConv2D(1, 1, 3, "B", dilation=1.5), TypeError, "dilation must be an int"),
    (lambda: npc.MaskedConv2D(1, 1, 3, "B", dilation=True), TypeError, "dilation must be an int"),
    (lambda: npc.MaskedConv2D(1, 1, 5, "A", dilation=64), ValueError,
     "dilation 64 spreads a 5x5 kernel over a window 257 pixels wide; it must be at most 255"),
    (lambda: GatedLayer(1, 2, 3, first=True, dilation=0), ValueError, "dilation must be at least 1"),
    (lambda: npc.PixelCNN(blocks=2, dilations=[1]), ValueError,
     "dilations must have one entry per residual block, 2, got 1"),
    (lambda: npc.PixelCNN(blocks=2, dilations=[1, 0]), ValueError, r"dilations\[1\] must be at least 1"),
    (lambda: npc.PixelCNN(blocks=2, dilations=[1, 2.0]), TypeError, r"dilations\[1\] must be an int"),
    (lambda: npc.PixelCNN(blocks=2, dilations=2), TypeError, "dilations must be a list of 2 ints, one per residual block"),
    (lambda: npc.PixelCNN(blocks=2, dilations=[1, 300]), ValueError, "window 601 pixels wide"),
    (lambda: npc.GatedPixelCNN(layers=3, dilations=[1, 2]), ValueError,
     "dilations must have one entry per gated layer, 3, got 2"),
    (lambda: npc.GatedPixelCNN(layers=2, dilations="12"), TypeError, "dilations must be a list"),
])
def test_bad_dilations_are_refused_clearly(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_the_dilated_presets_are_their_twins_with_dilated_taps():
    """Same sizes and training as the undilated twin, so the same parameters: dilation moves taps."""
    for model_class, name in [(npc.PixelCNN, "small-dilated"), (npc.GatedPixelCNN, "dilated")]:
        preset = model_class.presets[name]
        dilated = model_class(levels=4, **preset.model, seed=0)
        twin = model_class(levels=4, **{**preset.model, "dilations": None}, seed=0)
        assert dilated.num_params() == twin.num_params()
        assert max(preset.model["dilations"]) > 1
