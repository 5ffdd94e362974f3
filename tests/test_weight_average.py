"""The moving average of the weights (TrainConfig.ema): its arithmetic, that the run
evaluates and saves the average, and that a resumed run is still bit-for-bit exact."""

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from npixelcnn.optim import WeightAverage
from npixelcnn.train import Trainer, evaluate

from test_train import random_levels, tiny_config


@pytest.fixture
def data():
    return random_levels(64), random_levels(16, seed=1)


def test_the_average_follows_its_formula_with_the_ramp_at_the_start():
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(3, 2))}
    average = WeightAverage(params, decay=0.9)
    expected = params["w"].copy()
    for t in range(1, 40):
        params["w"] = params["w"] + rng.normal(size=(3, 2))      # what an update does
        weight = 1 - min(0.9, (1 + t) / (10 + t))
        expected = expected + weight * (params["w"] - expected)
        average.update(params, t)
        np.testing.assert_allclose(average.averages["w"], expected, rtol=1e-12)
    assert average.weight(1) == pytest.approx(1 - 2 / 11)         # early updates count more...
    assert average.weight(1000) == pytest.approx(0.1)             # ...then 1 - decay


def test_swapped_in_restores_the_trained_weights_even_after_an_error():
    params = {"w": np.arange(4.0)}
    average = WeightAverage(params, decay=0.5)
    average.averages["w"][:] = -1.0
    view = params["w"]                                 # a replica shares the array itself
    with pytest.raises(KeyError):
        with average.swapped_in(params) as trained:
            np.testing.assert_array_equal(view, [-1.0] * 4)
            np.testing.assert_array_equal(trained["w"], np.arange(4.0))
            raise KeyError("boom")
    np.testing.assert_array_equal(view, np.arange(4.0))


@pytest.mark.parametrize("decay", [0, 1, 1.5, -0.1])
def test_a_decay_outside_0_1_is_refused(decay, data):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage({"w": np.zeros(2)}, decay)
    with pytest.raises(ValueError, match="ema"):
        Trainer(tiny_config(ema=decay), *data)


def test_the_run_evaluates_and_saves_the_average_and_trains_on_the_trained_weights(data, tmp_path):
    trainer = Trainer(tiny_config(ema=0.8), *data)
    trainer.run(progress=False)
    averages = trainer.average.averages
    trained = {name: p.copy() for name, p in trainer.model.params.items()}
    assert any(not np.array_equal(averages[n], trained[n]) for n in trained)   # they differ

    with trainer.weights_to_use():
        expected = npc.nats_to_bits(evaluate(trainer.model, trainer.test_images))
    assert trainer.state.last_test_bits == expected
    for name, p in trainer.model.params.items():       # put back after the evaluation
        np.testing.assert_array_equal(p, trained[name])

    trainer.save(tmp_path / "run.npz")
    ckpt = load_checkpoint(tmp_path / "run.npz")
    for name in trained:
        np.testing.assert_array_equal(ckpt.model.params[name], averages[name])
        np.testing.assert_array_equal(ckpt.trained_params[name], trained[name])
    assert npc.nats_to_bits(evaluate(ckpt.model, trainer.test_images)) == pytest.approx(expected, rel=1e-6)


def test_resume_with_an_average_is_bit_for_bit_the_same_as_training_straight(data, tmp_path):
    straight = Trainer(tiny_config(ema=0.9), *data)
    straight.run(progress=False)

    first = Trainer(tiny_config(ema=0.9), *data)
    first.run(max_steps=5, progress=False)
    first.save(tmp_path / "half.npz")
    resumed = Trainer.resume(tmp_path / "half.npz", *data)
    resumed.run(progress=False)

    for name, p in straight.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], p, err_msg=name)
        np.testing.assert_array_equal(resumed.average.averages[name], straight.average.averages[name])
    assert [h["test_bits"] for h in resumed.state.history if h["test_bits"]] == \
        [h["test_bits"] for h in straight.state.history if h["test_bits"]]


def test_a_checkpoint_whose_averaged_weights_went_missing_is_refused_on_resume(data, tmp_path):
    trainer = Trainer(tiny_config(ema=0.9), *data)
    trainer.run(max_steps=3, progress=False)
    # The same file without the trained weights: the run could not go on from them.
    save_checkpoint(trainer.model, tmp_path / "edited.npz", trainer.optimizer, **trainer.checkpoint_meta())
    with pytest.raises(CheckpointError, match="ema=0.9 but the file has no trained weights"):
        Trainer.resume(tmp_path / "edited.npz", *data)


def test_a_run_without_an_average_saves_no_trained_weights(data, tmp_path):
    trainer = Trainer(tiny_config(), *data)
    trainer.run(max_steps=2, progress=False)
    trainer.save(tmp_path / "plain.npz")
    assert trainer.average is None and load_checkpoint(tmp_path / "plain.npz").trained_params is None
