"""The output distribution belongs to the model (npixelcnn/distributions.py): the softmax and the
discretized logistic mixture go through the same training step, evaluation, gradient check,
checkpoints, samplers and CLI, and ``model.log_probs`` is a normalised distribution for both."""

import json
import math

import numpy as np
import pytest
from conftest import assert_cached_logits_equal_the_forward_pass, one_clear_line, rewrite_meta, run_cli

import npixelcnn as npc
from npixelcnn.distributions import LogisticMixtureOutput, SoftmaxOutput, output_distribution
from npixelcnn.gradcheck import check_model_and_loss
from npixelcnn.train import Trainer

SHAPE = (5, 6)
MIXTURE = dict(output="logistic-mixture", components=3)


def small_model(arch, levels, seed=0, **settings):
    """A small float64 model of ``arch`` with random (not init-scale) weights and the given
    settings (the output, dilations)."""
    if arch == "pixelcnn":
        model = npc.PixelCNN(levels=levels, hidden=4, blocks=2, head=6, seed=seed, **settings)
    else:
        model = npc.GatedPixelCNN(levels=levels, channels=4, layers=3, kernel_size=3, head=6, seed=seed, **settings)
    model.astype(np.float64)
    rng = np.random.default_rng(seed + 1)
    for name, value in model.params.items():      # away from the near-uniform start, so the test can fail
        value += 0.3 * rng.standard_normal(value.shape) * (value != 0 if name.endswith(".W") else 1)
    return model


def random_levels(levels, n=3, seed=0):
    return np.random.default_rng(seed).integers(0, levels, size=(n,) + SHAPE).astype(np.uint8)


@pytest.mark.parametrize("arch", ["pixelcnn", "gated"])
@pytest.mark.parametrize("levels, output", [(4, {}), (256, {}), (4, MIXTURE), (256, MIXTURE)])
def test_log_probs_sum_to_one_and_give_the_training_nll(arch, levels, output):
    model = small_model(arch, levels, **output)
    images = random_levels(levels)
    x = npc.to_model_input(images, levels).astype(np.float64)
    log_p = model.log_probs(x)
    assert log_p.shape == images.shape + (levels,)
    total = np.exp(log_p).sum(axis=-1)
    # The mixture's mid-bin approximation (a density times the bin width where the CDF
    # difference underflows) may move the sum by a little; the softmax is exact.
    np.testing.assert_allclose(total, 1.0, atol=1e-9 if not output else 1e-4)
    nll_from_log_probs = -np.take_along_axis(log_p, images[..., None].astype(np.intp), axis=-1).sum()
    loss, _ = model.output.loss(model.forward(x), images)
    assert math.isclose(nll_from_log_probs, loss * images.size, rel_tol=1e-9)
    assert math.isclose(model.output.total_nll(model.forward(x), images), loss * images.size, rel_tol=1e-9)


@pytest.mark.parametrize("arch", ["pixelcnn", "gated"])
def test_whole_model_gradient_check_with_the_mixture(arch):
    model = small_model(arch, 256, **MIXTURE)
    images = random_levels(256, n=2)
    images[0, 0, :3] = [0, 255, 128]                   # both edge bins and an inner one
    errors = check_model_and_loss(model, images)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-5, (worst, errors[worst])


@pytest.mark.parametrize("arch, dilations", [("pixelcnn", None), ("gated", None),
                                             ("pixelcnn", [2, 1]), ("gated", [1, 2, 1])])
def test_cached_samplers_equal_naive_with_the_mixture(arch, dilations):
    model = small_model(arch, 256, dilations=dilations, **MIXTURE).astype(np.float32)
    drawn = {method: npc.sample(model, 4, shape=SHAPE, seed=7, method=method)
             for method in ("naive", "plain-cached", "cached")}
    np.testing.assert_array_equal(drawn["plain-cached"], drawn["naive"])
    np.testing.assert_array_equal(drawn["cached"], drawn["naive"])
    assert len(np.unique(drawn["naive"])) > 10         # draws from the mixture, not one level
    images = random_levels(256, n=2)
    done = {method: npc.complete(model, images, 2, n_samples=2, seed=3, method=method)
            for method in ("naive", "cached")}
    np.testing.assert_array_equal(done["cached"], done["naive"])
    np.testing.assert_array_equal(done["naive"][:, :, :2], np.repeat(images[:, None, :2], 2, axis=1))


def test_cached_outputs_of_a_mixture_model_equal_the_forward_pass():
    model = small_model("pixelcnn", 256, **MIXTURE)
    assert_cached_logits_equal_the_forward_pass(model, random_levels(256, n=2))


def test_the_mixture_draw_follows_its_log_probs():
    output = LogisticMixtureOutput(8, 2)
    params = np.array([[0.0, 1.0, -0.5, 0.4, np.log(0.2), np.log(0.1)]])
    log_p = output.log_probs(params)[0]
    rng = np.random.default_rng(0)
    levels = np.concatenate([output.draw(np.repeat(params, 1000, axis=0), 1.0, rng) for _ in range(20)])
    frequencies = np.bincount(levels, minlength=8) / len(levels)
    np.testing.assert_allclose(frequencies, np.exp(log_p), atol=0.01)


def test_softmax_log_probs_are_the_log_softmax():
    logits = np.random.default_rng(0).normal(size=(4, 7)) * 30
    log_p = SoftmaxOutput(7).log_probs(logits)
    expected = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
        - logits.max(1, keepdims=True)
    np.testing.assert_allclose(log_p, expected, atol=1e-12)


def test_a_mixture_model_trains_and_round_trips_through_a_checkpoint(tmp_path):
    levels = 16
    rng = np.random.default_rng(0)
    train_images = (rng.random((64,) + SHAPE) < 0.3).astype(np.uint8) * (levels - 1)
    config = npc.TrainConfig(levels=levels, model=dict(hidden=4, blocks=1, head=8, **MIXTURE),
                             batch_size=16, lr=1e-2, warmup_steps=1, total_steps=60, evals=1)
    trainer = Trainer(config, train_images, train_images[:16])
    first = trainer.train_step()
    trainer.run(progress=False)
    # Pixels that are 0 or L-1 at random, 30% of them L-1: H(0.3) = 0.88 bits is the best a model can do.
    assert trainer.state.last_test_bits < 0.6 * npc.nats_to_bits(first)
    path = tmp_path / "mixture.npz"
    trainer.save(path)
    loaded = npc.load_checkpoint(path)
    assert isinstance(loaded.model.output, LogisticMixtureOutput) and loaded.model.output.components == 3
    x = npc.to_model_input(train_images[:4], levels)
    np.testing.assert_array_equal(loaded.model.forward(x), trainer.model.forward(x))
    assert math.isclose(npc.evaluate(loaded.model, train_images[:16]),
                        npc.evaluate(trainer.model, train_images[:16]), rel_tol=1e-12)


def test_a_checkpoint_with_an_unknown_output_is_refused_clearly(tmp_path):
    model = npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8, **MIXTURE)
    path = tmp_path / "model.npz"
    npc.save_checkpoint(model, path)

    def other_output(meta):
        meta["model"]["output"] = "gaussian"
    rewrite_meta(path, other_output)
    with pytest.raises(npc.CheckpointError, match=r"unknown output distribution 'gaussian'; expected one of "
                                                  r"\['logistic-mixture', 'softmax'\]"):
        npc.load_checkpoint(path)


def test_softmax_models_record_no_output_setting():
    # Checkpoints of earlier versions have no "output": the softmax models they rebuild must
    # have the same config, so that their resumed runs' configs compare equal.
    assert "output" not in npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8).config
    assert npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8, **MIXTURE).config["components"] == 3


@pytest.mark.parametrize("settings, message", [
    (dict(output="logistic-mixture", components=0), r"components must be .*at least 1|components must be an int >= 1"),
    (dict(output="logistic-mixture", components=2.5), r"components"),
    (dict(output="softmax", components=3), r"the softmax output has none"),
    (dict(output="gaussian"), r"unknown output distribution 'gaussian'"),
])
def test_bad_output_settings_are_refused(settings, message):
    with pytest.raises((TypeError, ValueError), match=message):
        npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8, **settings)


def test_a_mixture_needs_two_levels():
    with pytest.raises(ValueError, match="levels"):
        output_distribution("logistic-mixture", 1, 3)


def test_the_cli_trains_a_mixture_and_refuses_components_alone(tmp_path, few_mnist_images, mnist_dir, capsys):
    out = tmp_path / "run"
    code = run_cli("train", "--levels", "256", "--output", "logistic-mixture", "--components", "2",
                   "--steps", "3", "--evals", "1", "--samples", "2", "--out", out, "--no-progress",
                   "--data-dir", mnist_dir)
    assert code == 0, capsys.readouterr().err
    loaded = npc.load_checkpoint(out / "checkpoint.npz")
    assert loaded.model.config["output"] == "logistic-mixture" and loaded.model.config["components"] == 2
    assert json.loads((out / "metrics.json").read_text())["metrics"]["test_bits_per_dim"] > 0
    capsys.readouterr()
    code = run_cli("train", "--components", "3", "--steps", "1", "--out", tmp_path / "other", "--data-dir", mnist_dir)
    err = capsys.readouterr().err
    assert code == 2 and one_clear_line(err)
    assert "--components is the number of logistics of --output logistic-mixture" in err


def test_a_cold_mixture_draw_takes_the_heaviest_component_at_its_mean():
    # logits / T picks the heaviest component as T -> 0, and scale * T puts the value at its mean.
    output = LogisticMixtureOutput(256, 3)
    params = np.array([[0.0, 2.0, 1.0, -0.5, 0.2, 0.9, -2.0, -2.0, -2.0]] * 50)
    expected = round((0.2 + 1) / 2 * 255)                      # the level whose bin holds the mean 0.2
    for temperature in (1e-6, 1e-320):                         # 1e-320: logits / T would overflow
        with np.errstate(over="raise", invalid="raise"):
            levels = output.draw(params, temperature, np.random.default_rng(0))
        np.testing.assert_array_equal(levels, expected)
    warm = output.draw(params, 1.0, np.random.default_rng(0))
    assert len(np.unique(warm)) > 5                            # at temperature 1 the draws spread out
