"""The model contract (npixelcnn/autoregressive.py): the machinery works for any model that honours it.

A small architecture that is not a PixelCNN, with a different structure, other
layer names, a convolution over hand-picked causal taps and a residual
connection, is trained, saved, loaded, evaluated, sampled (naive and cached),
completed and run through the CLI. Adding it takes this one definition, with its
presets, and no edit to any table of the package: ``train --arch test-tiny`` then
trains it. The cached sampler refuses, with a clear reason, what it cannot
compute one pixel at a time.
"""

import json

import numpy as np
import pytest
from conftest import randomize, rewrite_meta

import npixelcnn as npc
from npixelcnn import cli
from npixelcnn.autoregressive import ARCHITECTURES, AutoregressiveModel, Preset
from npixelcnn.blocks import Residual
from npixelcnn.layers import Layer

SHAPE = (6, 7)


class TinyCausalNet(AutoregressiveModel, arch="test-tiny"):
    """5x5 mask A -> ReLU -> [x + (1x1, ReLU, a 1x3 causal conv: left and centre)] -> ReLU -> 1x1."""

    presets = {"tiny": Preset(model=dict(width=3), training=dict(batch_size=4, lr=1e-2, warmup_steps=1)),
               "wide": Preset(model=dict(width=6), training=dict(batch_size=8, lr=5e-3, warmup_steps=1))}

    def __init__(self, levels=3, width=4, seed=None):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.config, self.levels = {"levels": levels, "width": width}, levels
        self.add("see_before", npc.MaskedConv2D(1, width, 5, "A", rng=rng))
        self.add("nonlinear", npc.ReLU())
        mixer = self.add("mixer", Residual())
        mixer.add("squeeze", npc.Conv2D(width, width, 1, rng=rng))
        mixer.add("relu", npc.ReLU())
        mixer.add("left_and_here", npc.Conv2D(width, width, 3, rng=rng, taps=[(1, 0), (1, 1)]))
        self.add("nonlinear2", npc.ReLU())
        self.add("to_levels", npc.Conv2D(width, levels, 1, rng=rng))


class NestedNet(AutoregressiveModel, arch="test-nested"):
    """Structures the PixelCNN does not have: sequences of one layer, one after
    another (each one's output is the next one's input), a residual inside a
    residual, a residual first in a branch and a ReLU right after a residual."""

    def __init__(self, levels=3, width=3, seed=None):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.config, self.levels = {"levels": levels, "width": width}, levels
        self.add("first", npc.MaskedConv2D(1, width, 3, "A", rng=rng))
        for k in range(2):
            one = self.add(f"one.{k}", npc.Sequential())
            one.add("conv", npc.Conv2D(width, width, 1, rng=rng))
        outer = self.add("outer", Residual())
        inner = outer.add("inner", Residual())
        inner.add("relu", npc.ReLU())
        inner.add("conv", npc.MaskedConv2D(width, width, 3, "B", rng=rng))
        outer.add("relu", npc.ReLU())
        outer.add("conv", npc.MaskedConv2D(width, width, 5, "B", rng=rng))
        self.add("relu", npc.ReLU())
        self.add("out", npc.Conv2D(width, levels, 1, rng=rng))


def tiny(dtype=np.float64, seed=0):
    model = TinyCausalNet(seed=seed)
    return randomize(model, seed=seed) if dtype == np.float64 else model


def random_levels(n, seed=0, levels=3):
    return np.random.default_rng(seed).integers(0, levels, (n,) + SHAPE)


def test_a_subclass_with_a_name_is_registered_and_rebuilt_from_its_config():
    assert ARCHITECTURES["test-tiny"] is TinyCausalNet and ARCHITECTURES["pixelcnn"] is npc.PixelCNN
    model = TinyCausalNet(levels=5, width=2, seed=1)
    rebuilt = type(model)(**model.config, seed=1)
    assert all(np.array_equal(p, rebuilt.params[k]) for k, p in model.params.items())
    assert "TinyCausalNet(levels=5, width=2;" in repr(model)


def test_two_architectures_cannot_share_a_name():
    with pytest.raises(ValueError, match="two architectures are called 'test-tiny'"):
        class Impostor(AutoregressiveModel, arch="test-tiny"):
            pass


def test_the_tiny_model_is_causal():
    model = tiny()
    x = npc.to_model_input(random_levels(1), 3).astype(np.float64)
    logits = model.forward(x)
    x2 = x.copy()
    x2[0, 3, 4] = 1 - x2[0, 3, 4]                      # change pixel (3, 4)
    changed = np.abs(model.forward(x2) - logits).max(axis=-1)[0] > 1e-10
    raster = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    assert changed.any() and (raster[changed] > raster[3, 4]).all()


@pytest.mark.parametrize("architecture", [TinyCausalNet, NestedNet])
def test_cached_logits_equal_the_forward_pass_at_every_pixel(architecture):
    model = randomize(architecture(seed=0))
    n = 3
    net = npc.CachedPixelCNN(model, n, SHAPE)
    images = random_levels(n, seed=2)
    full = model.eval().forward(npc.to_model_input(images, 3).astype(np.float64))
    for i in range(SHAPE[0]):
        for j in range(SHAPE[1]):
            np.testing.assert_allclose(net.outputs_at(i, j), full[:, i, j], rtol=0, atol=1e-12)
            net.set_pixel(i, j, images[:, i, j])


@pytest.mark.parametrize("visible", [0, 3])
def test_cached_and_naive_sample_and_complete_alike(visible):
    model = tiny()
    if visible == 0:
        naive = npc.sample(model, 4, SHAPE, seed=3, method="naive")
        cached = npc.sample(model, 4, SHAPE, seed=3, method="cached")
    else:
        images = random_levels(2, seed=4)
        naive = npc.complete(model, images, visible, n_samples=2, seed=3, method="naive")
        cached = npc.complete(model, images, visible, n_samples=2, seed=3, method="cached")
        assert np.array_equal(cached[:, :, :visible], np.repeat(images[:, None, :visible], 2, axis=1))
    assert np.array_equal(naive, cached) and naive.std() > 0


def test_trained_saved_loaded_and_resumed_like_a_pixelcnn(tmp_path):
    images = random_levels(64, seed=5)
    config = npc.TrainConfig(levels=3, arch="test-tiny", batch_size=8, lr=1e-2, warmup_steps=2,
                             total_steps=12, evals=2)
    trainer = npc.Trainer(config, images, images[:16], model=TinyCausalNet(seed=0))
    trainer.run(max_steps=6)
    path = trainer.save(tmp_path / "ckpt.npz")
    assert json.loads(str(np.load(path)["meta"]))["arch"] == "test-tiny"
    ckpt = npc.load_checkpoint(path)
    assert type(ckpt.model) is TinyCausalNet and ckpt.model.config == {"levels": 3, "width": 4}
    resumed = npc.Trainer.from_checkpoint(ckpt, images, images[:16], path)
    trainer.run()
    resumed.run()
    assert resumed.state.step == trainer.state.step == 12
    for name, p in trainer.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], p, err_msg=name)
    first, last = trainer.state.history[0]["train_bits"], trainer.state.history[-1]["train_bits"]
    assert last < first                                   # it learns
    assert npc.evaluate(ckpt.model, images[:16]) > 0


def test_the_cli_trains_a_new_architecture_by_its_name_and_its_own_presets(tmp_path, few_mnist_images, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--arch", "test-tiny", "--steps", "3", "--evals", "1", "--samples", "1",
                     "--no-progress", "--out", str(out)]) == 0
    ckpt = npc.load_checkpoint(out / "checkpoint.npz")
    assert type(ckpt.model) is TinyCausalNet and ckpt.model.config == {"levels": 4, "width": 3}   # "tiny": the first
    assert ckpt.meta["train"]["model"] == {"width": 3} and ckpt.meta["train"]["batch_size"] == 4
    assert cli.main(["train", "--arch", "test-tiny", "--preset", "wide", "--steps", "1", "--evals", "1",
                     "--samples", "0", "--no-progress", "--out", str(tmp_path / "wide")]) == 0
    assert npc.load_checkpoint(tmp_path / "wide" / "checkpoint.npz").model.config["width"] == 6
    assert cli.main(["train", "--arch", "test-tiny", "--preset", "small", "--steps", "1",
                     "--out", str(tmp_path / "other")]) == 2
    assert "--arch test-tiny has the presets ['tiny', 'wide'], not 'small'" in capsys.readouterr().err


def test_a_config_is_made_from_an_architectures_preset():
    config = npc.TrainConfig.from_preset("test-tiny", "wide", levels=5, lr=1e-3)
    assert (config.arch, config.levels, config.model, config.batch_size, config.lr) == ("test-tiny", 5, {"width": 6}, 8, 1e-3)
    assert npc.build_model(config.arch, config.model_settings()).config == {"levels": 5, "width": 6}
    with pytest.raises(ValueError, match=r"architecture 'test-tiny' has the presets \['tiny', 'wide'\], not 'huge'"):
        npc.TrainConfig.from_preset("test-tiny", "huge")


def test_a_config_holding_run_settings_among_the_models_is_refused():
    with pytest.raises(ValueError, match="levels and seed are settings of the run"):
        npc.Trainer(npc.TrainConfig(arch="test-tiny", model={"levels": 3}, batch_size=8),
                    random_levels(16), random_levels(4))
    with pytest.raises(ValueError, match=r"'test-tiny' has no settings \['depth'\]; its settings are \['width'\]"):
        npc.Trainer(npc.TrainConfig(arch="test-tiny", levels=3, model={"depth": 3}, batch_size=8),
                    random_levels(16), random_levels(4))


def test_a_trainer_refuses_a_model_whose_levels_disagree_with_the_config():
    config = npc.TrainConfig(levels=4, batch_size=8)
    with pytest.raises(ValueError, match="predicts 3 levels but the config says levels=4"):
        npc.Trainer(config, random_levels(16), random_levels(4), model=TinyCausalNet(levels=3))


def test_a_config_naming_an_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture 'wavenet'"):
        npc.Trainer(npc.TrainConfig(arch="wavenet", batch_size=8), random_levels(16), random_levels(4))


def test_the_cli_evaluates_samples_and_completes_any_architecture(tmp_path, mnist_dir, capsys):
    path = npc.save_checkpoint(TinyCausalNet(levels=4, seed=0), tmp_path / "tiny.npz")
    assert cli.main(["eval", "--checkpoint", str(path), "--data-dir", str(mnist_dir)]) == 0
    assert "TinyCausalNet(levels=4, width=4" in capsys.readouterr().out
    assert cli.main(["sample", "--checkpoint", str(path), "--n", "2", "--no-progress",
                     "--out", str(tmp_path / "s.png")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (2, 28, 28)
    assert cli.main(["complete", "--checkpoint", str(path), "--n", "1", "--samples", "2", "--no-progress",
                     "--data-dir", str(mnist_dir), "--out", str(tmp_path / "c.png")]) == 0
    assert np.load(tmp_path / "c.npy").shape == (1, 2, 28, 28)


def test_a_checkpoint_of_an_unknown_architecture_is_refused(tmp_path):
    path = npc.save_checkpoint(TinyCausalNet(seed=0), tmp_path / "tiny.npz")
    rewrite_meta(path, lambda meta: meta.update(arch="transformer"))
    with pytest.raises(npc.CheckpointError, match="architecture 'transformer', which this npixelcnn does not know"):
        npc.load_checkpoint(path)


def test_a_checkpoint_without_an_architecture_is_a_pixelcnn(tmp_path):
    """Files written before the contract (the shipped one) name no architecture."""
    path = npc.save_checkpoint(npc.PixelCNN(levels=3, hidden=2, blocks=1, head=4, seed=0), tmp_path / "p.npz")
    rewrite_meta(path, lambda meta: meta.pop("arch"))
    assert type(npc.load_checkpoint(path).model) is npc.PixelCNN


# --------------------------------------------------------------------------- what the cached sampler refuses


class SeesItself(AutoregressiveModel):
    """Its first layer reads the pixel it predicts: not a model of p(x_i | x_<i)."""

    def __init__(self, first):
        super().__init__()
        self.config, self.levels = {}, 2
        self.add("first", first)
        self.add("out", npc.Conv2D(first.out_channels, 2, 1, rng=0))


class Doubler(Layer):
    """A layer kind the cached sampler has no step for."""

    def forward(self, x):
        return 2 * x


@pytest.mark.parametrize("first, message", [
    (npc.MaskedConv2D(1, 2, 3, "B", rng=0), "must be a convolution that does not read the pixel it predicts"),
    (npc.Conv2D(1, 2, 1, rng=0), "must be a convolution that does not read the pixel it predicts"),
    (npc.Conv2D(1, 2, 3, rng=0), r"reads pixels after the one it computes"),
])
def test_the_cached_sampler_refuses_a_model_that_is_not_causal(first, message):
    with pytest.raises(ValueError, match=message):
        npc.CachedPixelCNN(SeesItself(first), 1, SHAPE)


def test_the_cached_sampler_names_a_layer_it_cannot_step():
    model = SeesItself(npc.MaskedConv2D(1, 2, 3, "A", rng=0))
    model.add("double", Doubler())
    with pytest.raises(TypeError, match="cannot compute a Doubler one pixel at a time"):
        npc.CachedPixelCNN(model, 1, SHAPE)
    assert npc.sample(model, 1, SHAPE, method="naive").shape == (1,) + SHAPE   # the naive loop needs no step
