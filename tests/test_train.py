"""Training: the schedule, the data order, evaluation, exact resume and divergence."""

import warnings

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn.config import TrainConfig, steps_for_epochs
from npixelcnn.train import Trainer


def tiny_config(**overrides):
    settings = dict(levels=4, model=dict(hidden=4, blocks=2, head=8), batch_size=8, lr=3e-3,
                    warmup_steps=3, total_steps=12, evals=2, seed=0)
    settings.update(overrides)
    return TrainConfig(**settings)


def random_levels(n, levels=4, size=8, seed=0):
    """Blobs of bright pixels on a dark background: learnable, unlike pure noise."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size), np.uint8)
    images[:, 2:6, 2:6] = rng.integers(levels // 2, levels, (n, 4, 4))
    return images


@pytest.fixture
def data():
    return random_levels(64), random_levels(16, seed=1)


def test_learning_rate_warms_up_linearly_then_decays_by_a_cosine_to_the_final_fraction():
    cfg = tiny_config(lr=1.0, warmup_steps=4, total_steps=104, final_lr_fraction=0.1)
    lrs = [npc.learning_rate(cfg, step) for step in range(105)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[54] == pytest.approx(0.1 + 0.9 * 0.5)           # halfway through the decay
    assert lrs[104] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))      # never rises after warmup


def test_each_epoch_visits_every_image_once_in_a_seeded_order(data):
    trainer = Trainer(tiny_config(), *data)
    per_epoch = 64 // 8
    epoch0 = np.concatenate([trainer.batch_indices(s) for s in range(per_epoch)])
    epoch1 = np.concatenate([trainer.batch_indices(s) for s in range(per_epoch, 2 * per_epoch)])
    assert sorted(epoch0) == list(range(64)) and sorted(epoch1) == list(range(64))
    assert not np.array_equal(epoch0, epoch1)                  # reshuffled every epoch
    again = Trainer(tiny_config(), *data)
    np.testing.assert_array_equal(again.batch_indices(9), trainer.batch_indices(9))
    other_seed = Trainer(tiny_config(seed=1), *data)
    assert not np.array_equal(other_seed.batch_indices(0), trainer.batch_indices(0))


def test_steps_for_epochs_drops_the_last_partial_batch():
    assert steps_for_epochs(1, 60000, 32) == 1875
    assert steps_for_epochs(2.5, 100, 32) == 8


def test_training_lowers_the_test_nll_and_records_a_history(data):
    trainer = Trainer(tiny_config(total_steps=60, evals=3, lr=1e-2), *data)
    before = npc.evaluate(trainer.model, data[1])
    state = trainer.run(progress=False)
    after = npc.evaluate(trainer.model, data[1])
    assert state.step == 60
    assert after < 0.5 * before
    tested = [h for h in state.history if h["test_bits"] is not None]
    assert [h["step"] for h in tested] == [20, 40, 60]
    assert tested[-1]["test_bits"] == pytest.approx(npc.nats_to_bits(after))
    assert all(h["train_bits"] > 0 and h["time"] > 0 for h in state.history)


def test_on_checkpoint_runs_after_each_evaluation_once_and_a_quiet_run_prints_nothing(data, capsys):
    seen = []
    trainer = Trainer(tiny_config(total_steps=12, evals=3), *data)
    trainer.run(on_checkpoint=lambda t: seen.append(t.state.step), progress=False)
    assert seen == [4, 8, 12]                     # not 12 twice
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    trainer = Trainer(tiny_config(total_steps=12, evals=3), *data)
    seen.clear()
    trainer.run(max_steps=6, on_checkpoint=lambda t: seen.append(t.state.step), progress=False)
    assert seen == [4, 6]                         # stopped between evaluations: saved where it stopped


def test_evaluate_is_the_mean_nll_in_nats_and_leaves_no_cache(data):
    model = npc.PixelCNN(levels=4, hidden=4, blocks=2, head=8, seed=0)
    images = data[1]
    logits = model.forward(npc.to_model_input(images, 4))
    expected, _ = npc.softmax_cross_entropy(logits, images)
    model.zero_grad()
    for batch_size in (16, 5, 1):                  # batches of any size, even uneven ones
        assert npc.evaluate(model, images, batch_size=batch_size) == pytest.approx(expected, rel=1e-6)
    assert model.training                           # put back in the mode it was in
    # It ran in inference mode: the caches of the training forward above are gone.
    with pytest.raises(RuntimeError, match="before forward in training mode"):
        model.backward(np.zeros_like(logits))


def test_resume_is_bit_for_bit_the_same_as_training_straight(data, tmp_path):
    straight = Trainer(tiny_config(), *data)
    straight.run(progress=False)

    first = Trainer(tiny_config(), *data)
    first.run(max_steps=5, progress=False)
    first.save(tmp_path / "half.npz")
    resumed = Trainer.resume(tmp_path / "half.npz", *data)
    assert resumed.state.step == 5 and resumed.optimizer.t == 5
    resumed.run(progress=False)

    assert resumed.state.step == straight.state.step == 12
    for name, p in straight.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], p, err_msg=name)
        np.testing.assert_array_equal(resumed.optimizer.m[name], straight.optimizer.m[name])
        np.testing.assert_array_equal(resumed.optimizer.v[name], straight.optimizer.v[name])
    assert [h["test_bits"] for h in resumed.state.history if h["test_bits"]] == \
        [h["test_bits"] for h in straight.state.history if h["test_bits"]]


class FakeClock:
    """Stands in for time.perf_counter in npixelcnn.train: every training step takes
    ``seconds[step]`` (the last value once the list runs out), nothing else takes time."""

    def __init__(self, monkeypatch, trainer, seconds):
        self.now, self.seconds = 0.0, list(seconds)
        monkeypatch.setattr(npc.train.time, "perf_counter", lambda: self.now)
        real_step = trainer.train_step

        def timed_step():
            self.now += self.seconds[min(trainer.state.step, len(self.seconds) - 1)]
            return real_step()
        monkeypatch.setattr(trainer, "train_step", timed_step)


@pytest.mark.parametrize("first_estimate", [5, 30, 200])
def test_a_time_budget_ends_when_the_clock_says_whatever_the_first_estimate(data, monkeypatch, first_estimate):
    # 0.6 s of budget at 0.02 s per step is 30 steps, whether the first estimate
    # (from timing a few steps) said 5, 30 or 200.
    trainer = Trainer(tiny_config(total_steps=first_estimate, minutes=0.01, evals=3), *data)
    FakeClock(monkeypatch, trainer, [0.02])
    trainer.run(progress=False)
    assert trainer.state.step == trainer.config.total_steps == 30
    assert trainer.state.train_seconds == pytest.approx(0.6)
    tested = [h["step"] for h in trainer.state.history if h["test_bits"] is not None]
    assert tested[-1] == 30 and len(tested) <= 3           # the last evaluation at the end
    # The schedule ends with the run: the last step's learning rate is nearly 0.
    assert trainer.optimizer.lr < 0.01 * trainer.config.lr


def test_a_time_budget_follows_a_machine_that_slows_down(data, monkeypatch):
    # Planned at 0.02 s per step (30 steps), then every step from the 10th takes 0.06 s:
    # 10 steps at 0.02 and 6 at 0.06 spend 0.56 s; a 17th would overrun the 0.6 s.
    trainer = Trainer(tiny_config(total_steps=30, minutes=0.01), *data)
    FakeClock(monkeypatch, trainer, [0.02] * 10 + [0.06])
    trainer.run(progress=False)
    assert 15 <= trainer.state.step <= 17
    assert 0.5 <= trainer.state.train_seconds <= 0.6 + 0.06       # at most one step over the budget
    assert trainer.config.total_steps == trainer.state.step
    fixed = Trainer(tiny_config(total_steps=30), *data)            # no budget: the steps are the plan
    FakeClock(monkeypatch, fixed, [0.02] * 10 + [0.06])
    fixed.run(progress=False)
    assert fixed.state.step == 30


def test_a_resumed_run_keeps_to_its_budget(data, monkeypatch, tmp_path):
    first = Trainer(tiny_config(total_steps=30, minutes=0.01), *data)
    FakeClock(monkeypatch, first, [0.02])
    first.run(max_steps=12, progress=False)
    first.save(tmp_path / "part.npz")
    resumed = Trainer.resume(tmp_path / "part.npz", *data)
    assert resumed.config.minutes == 0.01 and resumed.state.train_seconds == pytest.approx(0.24)
    FakeClock(monkeypatch, resumed, [0.04])                        # slower after the restart
    resumed.run(progress=False)
    assert resumed.state.step == 12 + 9                            # 0.36 s left at 0.04 s per step
    assert resumed.state.train_seconds == pytest.approx(0.6)


@pytest.mark.parametrize("minutes, error", [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
                                            ("15", TypeError)])
def test_a_budget_that_no_run_can_use_is_refused(data, minutes, error):
    with pytest.raises(error, match="minutes"):
        Trainer(tiny_config(minutes=minutes), *data)


def test_a_huge_learning_rate_stops_training_with_a_clear_error(data):
    trainer = Trainer(tiny_config(lr=1e6, warmup_steps=1, clip_norm=None, total_steps=50), *data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the clear error, not a RuntimeWarning, comes first
        with pytest.raises(npc.TrainingDiverged, match="NaN or infinite at step"):
            trainer.run(progress=False)
    assert trainer.state.step < 50


def test_resume_refuses_a_checkpoint_without_training_state(data, tmp_path):
    model = npc.PixelCNN(levels=4, hidden=4, blocks=2, head=8, seed=0)
    npc.save_checkpoint(model, tmp_path / "model_only.npz")
    with pytest.raises(npc.CheckpointError, match="no training state"):
        Trainer.resume(tmp_path / "model_only.npz", *data)


def test_a_batch_larger_than_the_training_set_is_rejected(data):
    with pytest.raises(ValueError, match="larger than the training set"):
        Trainer(tiny_config(batch_size=65), *data)


@pytest.mark.parametrize("levels", [2, 256])
def test_two_and_256_levels_train_for_a_few_steps(levels):
    train = random_levels(16, levels=levels, seed=2)
    test = random_levels(8, levels=levels, seed=3)
    trainer = Trainer(tiny_config(levels=levels, total_steps=4, evals=1), train, test)
    state = trainer.run(progress=False)
    assert state.step == 4
    assert trainer.model.params["out.W"].shape[-1] == levels
    assert np.isfinite(state.last_test_bits) and 0 < state.last_test_bits < np.log2(levels) + 1
