"""The Gated PixelCNN (npixelcnn/gated.py): gradient checks of every new layer and of a whole
small model, causality, and the receptive field with no blind spot."""

import numpy as np
import pytest
from conftest import GRAD_TOL, assert_cached_logits_equal_the_forward_pass, randomize

import npixelcnn as npc
from npixelcnn.gated import Gate, GatedLayer, ShiftDown, horizontal_taps, vertical_taps
from npixelcnn.gradcheck import check_layer
from npixelcnn.layers import Layer


class PairAsArray(Layer):
    """A gated layer seen as array -> array, for check_layer: the input and the
    output pairs (v, h) are the two halves of the channels."""

    def __init__(self, layer):
        super().__init__()
        self.layer, self.params, self.grads = layer, layer.params, layer.grads

    def forward(self, x):
        if not self.layer.first:
            c = x.shape[-1] // 2
            x = (x[..., :c], x[..., c:])
        return np.concatenate(self.layer.forward(x), axis=-1)

    def backward(self, dy):
        c = dy.shape[-1] // 2
        dx = self.layer.backward((dy[..., :c], dy[..., c:]))
        return dx if self.layer.first else np.concatenate(dx, axis=-1)

    def zero_grad(self):
        self.layer.zero_grad()


def test_the_stacks_keep_the_taps_of_the_paper():
    assert vertical_taps(3) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert horizontal_taps(3, include_centre=True) == [(1, 0), (1, 1)]
    assert horizontal_taps(5, include_centre=False) == [(2, 0), (2, 1)]


def test_what_a_gated_layer_reads_of_its_pixel_is_its_horizontal_stacks_rule():
    """One source of truth: the layer's mask is read from its horizontal convolution, never copied."""
    first, later = GatedLayer(1, 4, first=True, rng=0), GatedLayer(4, 4, rng=0)
    assert (first.mask_type, later.mask_type) == ("A", "B")
    for layer in (first, later):
        assert layer.mask_type is layer.horizontal.mask_type
        assert layer.centre_mask is layer.in_groups is layer.out_groups is None     # grey: the taps say it all
    with pytest.raises(AttributeError):
        later.mask_type = "A"


def test_gate_is_tanh_times_sigmoid_and_its_backward_is_right(rng):
    x = rng.standard_normal((2, 3, 4, 6))
    y = Gate().forward(x)
    np.testing.assert_allclose(y, np.tanh(x[..., :3]) / (1 + np.exp(-x[..., 3:])), rtol=1e-12)
    errors = check_layer(Gate(), x)
    assert max(errors.values()) < GRAD_TOL, errors
    big = Gate().forward(np.full((1, 1, 1, 2), 1000.0))      # no overflow for large inputs
    assert np.isfinite(big).all() and big[0, 0, 0, 0] == pytest.approx(1.0)


def test_shift_down_moves_rows_and_its_backward_is_right(rng):
    x = rng.standard_normal((2, 4, 3, 2))
    y = ShiftDown().forward(x)
    assert (y[:, 0] == 0).all() and np.array_equal(y[:, 1:], x[:, :-1])
    errors = check_layer(ShiftDown(), x)
    assert max(errors.values()) < GRAD_TOL, errors


@pytest.mark.parametrize("first, kernel_size", [(True, 3), (False, 3), (False, 5), (True, 5)])
def test_gated_layer_gradients(first, kernel_size, rng):
    c = 3
    layer = randomize(GatedLayer(1 if first else c, c, kernel_size, first=first, rng=0), seed=1)
    x = rng.standard_normal((2, 5, 6, 1 if first else 2 * c))
    errors = check_layer(PairAsArray(layer), x)
    assert max(errors.values()) < GRAD_TOL, errors
    assert set(errors) == {"x"} | set(layer.params)


def test_whole_model_gradients(rng):
    model = randomize(npc.GatedPixelCNN(levels=3, channels=2, layers=2, head=3, seed=0), seed=2)
    x = rng.uniform(0.1, 0.9, (2, 4, 5, 1))
    errors = check_layer(model, x)
    assert max(errors.values()) < GRAD_TOL, errors


def tiny_gated(layers=3, seed=0, kernel_size=3):
    return randomize(npc.GatedPixelCNN(levels=4, channels=3, layers=layers, kernel_size=kernel_size,
                                       head=8, seed=seed), seed=seed + 1)


def influence(model, x, i, j, seed=0):
    """|d (w . logits[0, i, j]) / d x| for a random w: which pixels the logits at (i, j) read."""
    model.train()
    logits = model.forward(x)
    dlogits = np.zeros_like(logits)
    dlogits[0, i, j] = np.random.default_rng(seed).standard_normal(logits.shape[-1])
    return np.abs(model.backward(dlogits)[0, :, :, 0])


@pytest.mark.parametrize("layers, kernel_size", [(3, 3), (2, 5)])
def test_receptive_field_is_every_earlier_pixel_in_reach_with_no_blind_spot(layers, kernel_size):
    """With k = 2p + 1 and L layers, the logits at (i, j) read exactly: the
    pixels left of (i, j) on its row, up to pL columns away, and every pixel of
    the pL + 1 rows above, up to pL columns either side: a rectangle with
    no wedge missing (the plain PixelCNN misses the pixels up and to the right)."""
    model = tiny_gated(layers, kernel_size=kernel_size)
    height, width = 12, 13
    x = np.random.default_rng(3).uniform(0, 1, (1, height, width, 1))
    p, reach = kernel_size // 2, kernel_size // 2 * layers
    up = p * layers + 1
    for i, j in [(9, 6), (5, 2), (1, 12), (0, 4)]:
        expected = np.zeros((height, width), bool)
        expected[max(i - up, 0):i, max(j - reach, 0):j + reach + 1] = True
        expected[i, max(j - reach, 0):j] = True
        seen = influence(model, x, i, j) > 0
        assert np.array_equal(seen, expected), f"pixel {(i, j)}: reads {np.argwhere(seen ^ expected)} wrongly"


def test_the_outputs_at_a_pixel_never_change_with_that_pixel_or_a_later_one():
    model = tiny_gated(3).eval()
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (2, 7, 8, 1))
    logits = model.forward(x)
    raster = np.arange(7 * 8).reshape(7, 8)
    for i, j in [(0, 0), (3, 4), (6, 7), (2, 0)]:
        x2 = x.copy()
        x2[:, i, j] = 1 - x2[:, i, j]
        changed = np.abs(model.forward(x2) - logits).max(axis=(0, 3)) > 1e-12
        assert not changed[raster <= raster[i, j]].any(), f"pixel {(i, j)} changed an earlier logit"
        assert changed[raster > raster[i, j]].any() or raster[i, j] == raster.max()


def test_a_gated_model_saves_loads_and_trains(tmp_path):
    model = npc.GatedPixelCNN(levels=4, channels=4, layers=2, head=8, seed=0)
    path = npc.save_checkpoint(model, tmp_path / "g.npz")
    loaded = npc.load_checkpoint(path).model
    assert type(loaded) is npc.GatedPixelCNN and loaded.config == model.config
    assert all(np.array_equal(p, loaded.params[k]) for k, p in model.params.items())
    images = np.random.default_rng(0).integers(0, 4, (32, 6, 6))
    config = npc.TrainConfig(levels=4, batch_size=8, total_steps=6, evals=1, warmup_steps=1)
    trainer = npc.Trainer(config, images, images[:8], model=loaded)
    trainer.run()
    assert trainer.state.step == 6 and np.isfinite(trainer.state.last_test_bits)


@pytest.mark.parametrize("kwargs, message", [
    (dict(kernel_size=4), "odd int >= 3"), (dict(kernel_size=1), "odd int >= 3"),
    (dict(layers=0), "layers"), (dict(channels=0), "channels"), (dict(levels=1), "levels"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        npc.GatedPixelCNN(**kwargs)


# --------------------------------------------------------------------------- the cached sampler


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_cached_logits_equal_the_forward_pass_at_every_pixel(kernel_size):
    images = np.random.default_rng(5).integers(0, 4, (2, 6, 7))
    assert_cached_logits_equal_the_forward_pass(tiny_gated(3, kernel_size=kernel_size), images)


def test_the_cached_gate_with_halved_weights_is_the_gate_to_the_last_bit():
    """The cached horizontal stack folds the gate's two halvings into its weights, and
    the vertical one computes the gate in place (gated_steps.GatedLayerAt); scaling by
    1/2 is exact, so they must give, bit for bit, what the gate written out in full
    gives from the layer's own weights."""
    from npixelcnn.gated_steps import GatedLayerAt
    from npixelcnn.pixel_steps import weights_and_bias
    model = tiny_gated(3, kernel_size=3).astype(np.float32)
    net = npc.CachedPixelCNN(model, 5, (6, 7))
    rng = np.random.default_rng(0)
    for q in range(6 * 7):                         # sample a whole image so that every row has been computed
        i, j = divmod(q, 7)
        net.outputs_at(i, j)
        net.set_pixel(i, j, rng.integers(0, 4, 5))
    step = [s for s in net.steps if isinstance(s, GatedLayerAt)][1]          # a layer with a residual
    layer, c = step.layer, step.layer.channels
    h = np.ones((5, c + 1), np.float32)
    h[:, :-1] = rng.standard_normal((5, c))
    i, j = 5, 4
    y = step._horizontal(i, j, h)[1].copy()
    link_row = step.link_row[j].copy()
    link_row[:, c:] *= 2                           # the link as the layer computes it
    pre = step.h_cols @ weights_and_bias(layer.horizontal) + link_row
    gate = np.tanh(pre[:, :c]) * (0.5 * (1 + np.tanh(0.5 * pre[:, c:])))
    gate_and_one = np.concatenate([gate, np.ones((5, 1), np.float32)], axis=1)
    expected = gate_and_one @ weights_and_bias(layer.out) + h[:, :-1]
    assert np.array_equal(y[:, :-1], expected)
    # The vertical stack of the last row it computed (row 4), from the im2col row it kept:
    # the gate in place is Gate's, and the link (b half halved) is the layer's link.
    v_pre = step.v_cols.reshape(7, 5, -1) @ weights_and_bias(layer.vertical)[:-1] + layer.vertical.params["b"]
    assert np.array_equal(step.v_out, Gate().forward(v_pre))
    link = v_pre @ weights_and_bias(layer.link)[:-1] + layer.link.params["b"]
    link[..., c:] *= 0.5
    assert np.array_equal(step.link_row, link)


@pytest.mark.parametrize("visible", ["none", 0, 3, "mask"])
def test_cached_and_naive_sampling_and_completion_agree(visible):
    model = tiny_gated(2, kernel_size=3)
    shape = (7, 6)
    if visible == "none":
        naive = npc.sample(model, 3, shape, seed=1, method="naive")
        cached = npc.sample(model, 3, shape, seed=1, method="cached")
    else:
        images = np.random.default_rng(6).integers(0, 4, (2,) + shape)
        if visible == "mask":
            visible = np.ones(shape, bool)
            visible[2, 4:] = False                       # the first hidden pixel mid-row
            visible[5:] = False
        naive = npc.complete(model, images, visible, n_samples=2, seed=1, method="naive")
        cached = npc.complete(model, images, visible, n_samples=2, seed=1, method="cached")
    assert np.array_equal(naive, cached) and naive.std() > 0


def test_cached_gated_sampling_never_reads_a_pixel_it_has_not_produced(monkeypatch):
    from npixelcnn import sampling

    class GarbageCache(npc.CachedPixelCNN):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            rng = np.random.default_rng(7)
            for buffer in self.inputs:
                buffer[...] = rng.uniform(-3, 3, buffer.shape)

    model = tiny_gated(2).astype(np.float32)
    clean = npc.sample(model, 2, (6, 6), seed=2, method="cached")
    monkeypatch.setattr(sampling, "CachedPixelCNN", GarbageCache)
    assert np.array_equal(npc.sample(model, 2, (6, 6), seed=2, method="cached"), clean)


def test_the_cli_trains_a_gated_model_and_refuses_a_preset_it_lacks(tmp_path, few_mnist_images, capsys):
    from npixelcnn import cli
    out = tmp_path / "run"
    assert cli.main(["train", "--arch", "gated", "--steps", "2", "--evals", "1", "--samples", "1",
                     "--no-progress", "--out", str(out)]) == 0
    ckpt = npc.load_checkpoint(out / "checkpoint.npz")
    assert type(ckpt.model) is npc.GatedPixelCNN and ckpt.meta["train"]["arch"] == "gated"
    assert ckpt.model.config["layers"] == npc.GatedPixelCNN.presets["small"].model["layers"]
    assert ckpt.meta["train"]["model"] == npc.GatedPixelCNN.presets["small"].model     # its own settings only
    assert cli.main(["train", "--arch", "gated", "--preset", "seed", "--steps", "1",
                     "--out", str(tmp_path / "other")]) == 2
    assert "--arch gated has the presets ['dilated', 'medium', 'medium-k5', 'small'], not 'seed'" in capsys.readouterr().err
