"""The command line, end to end, on a few hundred real MNIST images."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn import cli, commands
from npixelcnn.train import Trainer

from conftest import run_cli as run

FAST = ["--batch-size", "8", "--evals", "1", "--samples", "0", "--no-progress"]


pytestmark = pytest.mark.usefixtures("few_mnist_images")



@pytest.mark.parametrize("command", [[], ["train"], ["eval"]])
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(command + ["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "usage: python -m npixelcnn" in text
    if command:
        assert "examples:" in text and "python -m npixelcnn " + command[0] in text


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "npixelcnn", "eval", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--checkpoint" in result.stdout


def test_train_writes_checkpoint_metrics_plots_and_samples_and_eval_reports_the_nll(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--steps", 4, *FAST[:-3], "--samples", 2, "--no-progress", "--out", out) == 0
    for name in ("checkpoint.npz", "metrics.json", "loss_curve.png", "samples.png", "samples.npy"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metrics"]["step"] == 4
    assert metrics["command"].startswith("python -m npixelcnn train --steps 4")
    samples = np.load(out / "samples.npy")
    assert samples.shape == (2, 12, 12) and samples.max() < 4

    ckpt = npc.load_checkpoint(out / "checkpoint.npz")
    assert ckpt.meta["command"] == metrics["command"]
    assert ckpt.meta["metrics"]["test_bits_per_dim"] == metrics["metrics"]["test_bits_per_dim"]
    capsys.readouterr()
    assert run("eval", "--checkpoint", out / "checkpoint.npz") == 0
    printed = capsys.readouterr().out
    bits = metrics["metrics"]["test_bits_per_dim"]
    assert f"{bits:.4f} bits/dim" in printed and "nats/image" in printed


def test_a_time_budget_ends_the_run_when_the_clock_says(tmp_path, capsys):
    assert run("train", "--minutes", 0.01, *FAST, "--out", tmp_path / "run") == 0
    meta = npc.load_checkpoint(tmp_path / "run" / "checkpoint.npz").meta
    assert "checked against the clock as the run goes" in capsys.readouterr().out
    assert meta["train"]["minutes"] == 0.01
    assert meta["state"]["step"] == meta["train"]["total_steps"]
    # 0.6 s of training: a step of this tiny model takes a few ms, so the run ends
    # within a step or two of the budget, not where the first estimate put it.
    assert 0.45 <= meta["state"]["train_seconds"] <= 0.85


def test_ctrl_c_saves_and_resume_then_matches_a_run_that_was_never_stopped(tmp_path, monkeypatch, capsys):
    assert run("train", "--steps", 6, *FAST, "--out", tmp_path / "straight") == 0

    original_step = Trainer.train_step

    def interrupted_step(self):
        loss = original_step(self)
        if self.state.step == 2:
            os.kill(os.getpid(), signal.SIGINT)          # as if the user pressed Ctrl-C
        return loss

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    assert run("train", "--steps", 6, *FAST, "--out", tmp_path / "stopped") == 0
    assert "resume with" in capsys.readouterr().out
    saved = npc.load_checkpoint(tmp_path / "stopped" / "checkpoint.npz")
    assert saved.meta["state"]["step"] == 2              # stopped between two steps, saved

    monkeypatch.setattr(Trainer, "train_step", original_step)
    assert run("train", "--resume", tmp_path / "stopped" / "checkpoint.npz", "--samples", 0, "--no-progress") == 0
    straight = npc.load_checkpoint(tmp_path / "straight" / "checkpoint.npz").model.params
    resumed = npc.load_checkpoint(tmp_path / "stopped" / "checkpoint.npz").model.params
    for name in straight:
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)


def test_train_with_ema_saves_and_samples_the_average_and_resumes_from_the_trained_weights(tmp_path):
    out = tmp_path / "run"
    assert run("train", "--steps", 5, "--ema", 0.5, *FAST[:-3], "--samples", 2, "--no-progress",
               "--out", out) == 0
    ckpt = npc.load_checkpoint(out / "checkpoint.npz")
    assert ckpt.meta["train"]["ema"] == 0.5 and ckpt.trained_params is not None
    assert any(not np.array_equal(ckpt.model.params[n], ckpt.trained_params[n]) for n in ckpt.trained_params)
    # The samples at the end of the run come from the model in the file: the average.
    samples = np.load(out / "samples.npy")
    expected = npc.sample(ckpt.model, 2, shape=samples.shape[1:], seed=0, method="cached")
    np.testing.assert_array_equal(samples, expected)
    # The trainer rebuilt from the file trains on from the trained weights, not the average.
    trainer = Trainer.resume(out / "checkpoint.npz", *commands.load_levels(None, 4))     # the run's own data
    for name, p in trainer.model.params.items():
        np.testing.assert_array_equal(p, ckpt.trained_params[name])
        np.testing.assert_array_equal(trainer.average.averages[name], ckpt.model.params[name])


def test_a_diverging_run_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--steps", 30, "--lr", 1e5, *FAST, "--out", out) == 1
    err = capsys.readouterr().err
    assert "training diverged" in err and "last good checkpoint is kept" in err
    ckpt = npc.load_checkpoint(out / "checkpoint.npz")           # loads: finite, complete
    assert ckpt.meta["state"]["step"] < 30
    assert all(np.isfinite(p).all() for p in ckpt.model.params.values())


@pytest.mark.parametrize("levels", [2, 256])
def test_two_and_256_levels_train_from_the_cli(levels, tmp_path):
    assert run("train", "--levels", levels, "--steps", 2, *FAST, "--out", tmp_path / "run") == 0
    assert npc.load_checkpoint(tmp_path / "run" / "checkpoint.npz").model.levels == levels


@pytest.mark.parametrize("args, message", [
    (["train", "--levels", "1"], "--levels must be at least 2, got 1"),
    (["train", "--levels", "300"], "--levels must be at most 256"),
    (["train", "--lr", "-1"], "--lr must be positive"),
    (["train", "--minutes", "0"], "--minutes must be a number of minutes between 0 and"),
    (["train", "--resume", "x.npz", "--lr", "1e-3"], "cannot change --lr"),
    (["train", "--ema", "1"], "--ema is the weight average's decay, a number between 0 and 1"),
    (["train", "--ema", "0"], "--ema is the weight average's decay"),
    (["eval", "--checkpoint", "missing.npz"], "no checkpoint at missing.npz"),
])
def test_bad_options_give_one_clear_line(args, message, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_existing_run_is_never_overwritten(tmp_path, capsys):
    assert run("train", "--steps", 1, *FAST, "--out", tmp_path / "run") == 0
    before = (tmp_path / "run" / "checkpoint.npz").read_bytes()
    assert run("train", "--steps", 1, *FAST, "--out", tmp_path / "run") == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() == before


def test_eval_of_a_file_that_is_not_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "notes.npz").write_text("not a checkpoint")
    assert run("eval", "--checkpoint", tmp_path / "notes.npz") == 2
    assert "not an npixelcnn checkpoint" in capsys.readouterr().err


@pytest.fixture
def checkpoint(tmp_path):
    return npc.save_checkpoint(npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8, seed=0),
                               tmp_path / "model.npz")


def test_sample_writes_a_grid_and_the_levels_and_a_seed_repeats_them(checkpoint, tmp_path):
    assert run("sample", "--checkpoint", checkpoint, "--n", 3, "--seed", 5, "--out", tmp_path / "a.png",
               "--no-progress") == 0
    assert run("sample", "--checkpoint", checkpoint, "--n", 3, "--seed", 5, "--out", tmp_path / "b.png",
               "--no-progress") == 0
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (3, 28, 28) and a.dtype == np.uint8 and a.max() < 4
    np.testing.assert_array_equal(a, b)
    assert (tmp_path / "a.png").stat().st_size > 0


def test_complete_keeps_the_top_rows_of_test_images(checkpoint, tmp_path, mnist_dir):
    out = tmp_path / "c.png"
    assert run("complete", "--checkpoint", checkpoint, "--rows", 5, "--n", 3, "--samples", 2,
               "--out", out, "--no-progress") == 0
    completions = np.load(tmp_path / "c.npy")
    assert completions.shape == (3, 2, 12, 12)               # the fixture's 12 x 12 test images
    originals = npc.quantize(npc.load_mnist("test", mnist_dir)[0][:3, 8:20, 8:20], 4)
    np.testing.assert_array_equal(completions[:, :, :5], np.repeat(originals[:, None, :5], 2, axis=1))
    assert out.is_file()


@pytest.mark.parametrize("args, message", [
    (["sample", "--temperature", "0"], "temperature must be a finite number > 0"),
    (["sample", "--n", "0"], "n must be at least 1"),
    (["sample", "--out", "samples.jpg"], "--out must be a .png file"),
    (["complete", "--rows", "99"], "--rows must be between 0 and 12"),
    (["complete", "--n", "0"], "--n must be at least 1"),
    (["complete", "--n", "33"], "--n must be between 1 and 32"),
])
def test_bad_sampling_options_give_one_clear_line(args, message, checkpoint, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(args + ["--checkpoint", str(checkpoint), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
