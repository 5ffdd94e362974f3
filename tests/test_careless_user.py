"""What a careless (or unlucky) user does must never lose a run or end in a traceback.

Each test is one mistake or fault: a resume into another run's folder, two runs
racing for one folder, a learning rate that makes the loss explode, OS errors
(read-only folders, a full disk, a file where a folder should be), options a
resume would ignore, an edited checkpoint, extreme temperatures and budgets,
``kill -9`` in the middle of a save, and the smaller slips. The answer is always
either the safe behaviour or one clear line on stderr.
"""

import errno
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn import cli, commands, files
from npixelcnn.sampling import draw

from conftest import one_clear_line, randomize, rewrite_meta, run_cli as run
from npixelcnn import train
from npixelcnn.config import TrainConfig, evaluation_steps
from npixelcnn.train import Trainer

REPO = Path(__file__).resolve().parents[1]
FAST = ["--batch-size", "8", "--evals", "1", "--samples", "0", "--no-progress"]




def count_steps(monkeypatch):
    """Count the training steps the CLI takes (a refused run must take none)."""
    calls = []
    original = Trainer.train_step

    def counted(self):
        calls.append(self.state.step)
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", counted)
    return calls


# ------------------------------------------------------------ 1. a resume into another run's folder


@pytest.mark.usefixtures("few_mnist_images")
def test_a_resume_never_overwrites_another_runs_checkpoint_unless_asked(tmp_path, capsys):
    assert run("train", "--steps", 2, *FAST, "--out", tmp_path / "a") == 0
    assert run("train", "--steps", 2, "--seed", 1, *FAST, "--out", tmp_path / "b") == 0
    theirs = (tmp_path / "b" / "checkpoint.npz").read_bytes()
    capsys.readouterr()

    assert run("train", "--resume", tmp_path / "a" / "checkpoint.npz", "--out", tmp_path / "b",
               "--samples", 0, "--no-progress") == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and "already holds another run's checkpoint" in err and "--overwrite" in err
    assert (tmp_path / "b" / "checkpoint.npz").read_bytes() == theirs

    # Said so: the resumed run A now lives in b.
    assert run("train", "--resume", tmp_path / "a" / "checkpoint.npz", "--out", tmp_path / "b",
               "--overwrite", "--samples", 0, "--no-progress") == 0
    assert npc.load_checkpoint(tmp_path / "b" / "checkpoint.npz").meta["train"]["seed"] == 0


# ------------------------------------------------------------ 2. two runs, one folder


def test_a_folder_is_claimed_by_one_run_at_a_time(tmp_path):
    with files.claim_folder(tmp_path / "run"):
        with pytest.raises(files.FolderInUseError, match=rf"{tmp_path / 'run'} is in use by another run \(pid {os.getpid()}\)"):
            with files.claim_folder(tmp_path / "run"):
                pass
    with files.claim_folder(tmp_path / "run"):      # released when the first claim ended
        pass


def test_a_claim_dies_with_its_process(tmp_path):
    """kill -9 cannot leave a folder claimed forever: the OS drops the lock with the process."""
    folder = tmp_path / "run"
    code = f"from npixelcnn.files import claim_folder; import time\n" \
           f"with claim_folder({str(folder)!r}):\n    print('claimed', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "claimed"
    with pytest.raises(files.FolderInUseError):
        with files.claim_folder(folder):
            pass
    child.kill()
    child.wait()
    with files.claim_folder(folder):
        pass


@pytest.mark.usefixtures("few_mnist_images")
def test_a_second_training_on_a_folder_in_use_is_refused(tmp_path, monkeypatch, capsys):
    """The race of two runs started together, made certain: run B starts while run A
    has checked its folder but not yet written its first checkpoint."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "npixelcnn", "train", "--steps", "2", "--batch-size", "8", "--evals", "1",
               "--samples", "0", "--no-progress", "--data-dir", str(REPO / "tests" / "data" / "mnist"),
               "--seed", "1", "--out", str(out)]
    second = []
    real_save = Trainer.save

    def save_after_another_run_started(self, path, **meta):
        if not second:
            second.append(subprocess.run(command, capture_output=True, text=True, timeout=300))
        return real_save(self, path, **meta)

    monkeypatch.setattr(Trainer, "save", save_after_another_run_started)
    assert run("train", "--steps", 3, *FAST, "--out", out) == 0
    b = second[0]
    assert b.returncode == 2 and one_clear_line(b.stderr), b.stderr
    assert f"{out} is in use by another run (pid {os.getpid()})" in b.stderr
    ckpt = npc.load_checkpoint(out / "checkpoint.npz")
    assert ckpt.meta["train"]["seed"] == 0 and ckpt.meta["state"]["step"] == 3     # A's run, whole


# ------------------------------------------------------------ 3. a loss that explodes


@pytest.mark.usefixtures("few_mnist_images")
def test_a_learning_rate_that_makes_the_loss_explode_stops_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--lr", 10, "--steps", 200, *FAST, "--out", out) == 1
    err = capsys.readouterr().err
    assert one_clear_line(err) and "training diverged" in err and "bits/dim" in err
    assert "last good checkpoint is kept" in err
    ckpt = npc.load_checkpoint(out / "checkpoint.npz")
    assert ckpt.meta["state"]["step"] < 200


def test_divergence_is_judged_against_a_uniform_guess(mnist_dir):
    """A run goes on below three times log2(L) bits/dim (what a uniform guess costs)."""
    images = npc.quantize(npc.load_mnist("train", mnist_dir)[0][:64, 8:20, 8:20], 4)
    trainer = Trainer(TrainConfig(levels=4, model=dict(hidden=4, blocks=1, head=8), batch_size=8), images, images)
    uniform = np.log(4)
    for _ in range(20):
        trainer.check_loss(2.9 * uniform, step=0)             # bad, but not exploding
    with pytest.raises(npc.TrainingDiverged, match=r"rose to \S+ bits/dim at step 1 .*uniform guess \(2 bits/dim\)"):
        trainer.check_loss(1e8, step=1)


# ------------------------------------------------------------ 4. OS errors


@pytest.mark.usefixtures("few_mnist_images")
@pytest.mark.parametrize("where", ["file", "under-file"])
def test_out_naming_a_file_is_one_line_before_any_training(where, tmp_path, capsys, monkeypatch):
    steps = count_steps(monkeypatch)
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" if where == "file" else tmp_path / "notes.txt" / "run"
    assert run("train", "--steps", 2, *FAST, "--out", out) == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and "notes.txt" in err
    assert steps == [] and (tmp_path / "notes.txt").read_text() == "mine"


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder behave as read-only (the tests may run as root, who can write anywhere)."""
    folders = []
    real_open = os.open

    def guarded_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and any(
                Path(path).resolve().is_relative_to(f) for f in folders):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)

    def make(folder):
        folder.mkdir(parents=True, exist_ok=True)
        folders.append(folder.resolve())
        return folder
    return make


@pytest.mark.usefixtures("few_mnist_images")
def test_a_read_only_out_folder_is_one_line_before_any_training(tmp_path, capsys, monkeypatch, read_only):
    assert run("train", "--steps", 2, *FAST, "--out", tmp_path / "done") == 0
    steps = count_steps(monkeypatch)
    capsys.readouterr()
    locked = read_only(tmp_path / "locked")
    assert run("train", "--steps", 2, *FAST, "--out", locked) == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and "Permission denied" in err and str(locked) in err

    read_only(tmp_path / "done")                             # resume into a folder that became read-only
    assert run("train", "--resume", tmp_path / "done" / "checkpoint.npz", "--no-progress") == 2
    assert one_clear_line(capsys.readouterr().err)
    assert steps == []


@pytest.mark.usefixtures("few_mnist_images")
def test_sample_into_a_read_only_folder_is_one_line_before_sampling(tmp_path, capsys, monkeypatch, read_only):
    checkpoint = npc.save_checkpoint(npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8, seed=0),
                                     tmp_path / "model.npz")
    sampled = []
    monkeypatch.setattr(commands, "sample", lambda *a, **k: sampled.append(1))
    locked = read_only(tmp_path / "locked")
    assert run("sample", "--checkpoint", checkpoint, "--out", locked / "s.png", "--no-progress") == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and "Permission denied" in err and sampled == []


@pytest.mark.usefixtures("few_mnist_images")
def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real_fsync, saves = os.fsync, []

    def fsync(fd):
        saves.append(fd)
        if len(saves) > 1:                                   # the first checkpoint fits, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert run("train", "--steps", 3, *FAST, "--out", out) == 1
    err = capsys.readouterr().err
    assert one_clear_line(err) and "No space left on device" in err
    assert f"The last checkpoint written is kept: {out / 'checkpoint.npz'}" in err
    assert npc.load_checkpoint(out / "checkpoint.npz").meta["state"]["step"] == 0   # the step-0 save
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.usefixtures("few_mnist_images")
def test_a_disk_full_from_the_start_says_no_checkpoint_was_written(tmp_path, capsys, monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    assert run("train", "--steps", 3, *FAST, "--out", tmp_path / "run") == 1
    err = capsys.readouterr().err
    assert one_clear_line(err) and "No space left on device. No checkpoint could be written" in err
    assert not (tmp_path / "run").exists()        # nothing written: the folder it made is gone too


@pytest.mark.usefixtures("few_mnist_images")
def test_sample_out_naming_a_folder_writes_nothing(tmp_path, capsys):
    checkpoint = npc.save_checkpoint(npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8, seed=0),
                                     tmp_path / "model.npz")
    folder = tmp_path / "grid.png"
    folder.mkdir()
    assert run("sample", "--checkpoint", checkpoint, "--n", 2, "--out", folder, "--no-progress") == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and "is a folder" in err
    assert not (tmp_path / "grid.npy").exists() and list(folder.iterdir()) == []


@pytest.mark.usefixtures("few_mnist_images")
@pytest.mark.parametrize("command", ["train", "complete", "eval"])
def test_data_dir_naming_a_file_or_a_missing_folder_is_one_line(command, tmp_path, capsys):
    (tmp_path / "mnist.gz").write_bytes(b"")
    checkpoint = npc.save_checkpoint(npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8, seed=0),
                                     tmp_path / "model.npz")
    extra = {"train": ["--steps", 1, *FAST, "--out", tmp_path / "run"],
             "complete": ["--checkpoint", checkpoint, "--out", tmp_path / "c.png", "--no-progress"],
             "eval": ["--checkpoint", checkpoint]}[command]
    for folder, message in [(tmp_path / "mnist.gz", f"--data-dir {tmp_path / 'mnist.gz'} is a file, not a folder"),
                            (tmp_path / "mnsit", f"--data-dir {tmp_path / 'mnsit'} does not exist")]:
        assert run(command, "--data-dir", folder, *extra) == 2
        err = capsys.readouterr().err
        assert one_clear_line(err) and message in err
    assert not (tmp_path / "mnsit").exists()


# ------------------------------------------------------------ 5. options a resume would ignore


@pytest.mark.parametrize("option, value", [("--levels", "2"), ("--preset", "seed"), ("--seed", "3"),
                                           ("--evals", "5"), ("--batch-size", "4"), ("--ema", "0.999")])
def test_a_resume_refuses_options_it_would_ignore(option, value, capsys):
    assert cli.main(["train", "--resume", "x.npz", option, value]) == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and f"cannot change {option}" in err


# ------------------------------------------------------------ 6. an edited checkpoint


@pytest.fixture
def saved_run(tmp_path, mnist_dir):
    images = npc.quantize(npc.load_mnist("train", mnist_dir)[0][:64, 8:20, 8:20], 4)
    config = TrainConfig(levels=4, model=dict(hidden=4, blocks=1, head=8), batch_size=8, total_steps=6, evals=1)
    trainer = Trainer(config, images, images[:16])
    trainer.run(max_steps=2, progress=False)
    return trainer.save(tmp_path / "run" / "checkpoint.npz"), images


def edit_meta(path, change):
    rewrite_meta(path, change)           # the checksum too: each edit must meet its own check


EDITS = {
    "unknown key": (lambda m: m["train"].update(momentum=0.9), r"unknown setting.*'momentum'"),
    "missing key": (lambda m: m["train"].pop("batch_size"), r"missing.*'batch_size'"),
    "no state": (lambda m: m.pop("state"), r"no training state to resume"),
    "state not a dict": (lambda m: m.update(state=[2]), r"'state' must be"),
    "batch_size 0": (lambda m: m["train"].update(batch_size=0), r"batch_size must be at least 1, got 0"),
    "batch_size text": (lambda m: m["train"].update(batch_size="8"), r"batch_size must be an int, got str"),
    "negative step": (lambda m: m["state"].update(step=-1), r"step must be .*, got -1"),
    "step past the end": (lambda m: m["state"].update(step=99), r"step must be .*6.*, got 99"),
    "levels disagree": (lambda m: m["train"].update(levels=3), r"levels=3 .* model .* levels=4"),
    "hidden disagrees": (lambda m: m["train"]["model"].update(hidden=7), r"hidden=7 .* model .* hidden=4"),
    "lr negative": (lambda m: m["train"].update(lr=-1.0), r"lr must be .*> 0"),
    "history not a list": (lambda m: m.update(history={}), r"history must be a list"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_an_edited_checkpoint_is_refused_on_resume_with_the_reason(edit, saved_run):
    path, images = saved_run
    change, message = EDITS[edit]
    edit_meta(path, change)
    with pytest.raises(npc.CheckpointError, match=message):
        Trainer.resume(path, images, images[:16])


def test_an_unedited_checkpoint_still_resumes(saved_run):
    path, images = saved_run
    assert Trainer.resume(path, images, images[:16]).state.step == 2


# ------------------------------------------------------------ 7. extreme temperatures


@pytest.mark.parametrize("temperature", [1e-320, 1e-300, 5e-324])
def test_a_vanishing_temperature_picks_the_most_likely_level(temperature):
    logits = np.array([[0.0, 3.0, 1.0, -2.0], [5.0, 4.0, 4.5, 1e3], [-1e30, 0.0, 1e30, 9e29]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # no overflow, no NaN
        levels = draw(logits, temperature, np.random.default_rng(0))
    assert levels.tolist() == [1, 3, 2]


@pytest.mark.parametrize("temperature", [1e-30, 1e-50, 1e-320])
def test_a_vanishing_temperature_picks_the_most_likely_level_from_float32_logits(temperature):
    """float32 logits are drawn in float32, where 1e-50 and 1e-320 round to 0: no 0/0."""
    logits = np.array([[0.0, 3.0, 1.0, -2.0], [5.0, 4.0, 4.5, 1e3]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        levels = draw(logits, temperature, np.random.default_rng(0))
    assert levels.tolist() == [1, 3]


def test_a_vanishing_temperature_samples_the_greedy_image():
    model = randomize(npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8, seed=0))   # no ties between levels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        greedy = npc.sample(model, 2, shape=(5, 5), temperature=1e-320, seed=0, method="cached")
    np.testing.assert_array_equal(greedy[0], greedy[1])      # no randomness left
    logits = model.forward(npc.to_model_input(greedy, 4).astype(np.float64))
    np.testing.assert_array_equal(greedy, logits.argmax(axis=-1))


def test_a_huge_temperature_is_uniform_not_nan():
    levels = draw(np.array([[0.0, 1e300, -1e300, 5.0]] * 4000), 1e308, np.random.default_rng(0))
    assert np.bincount(levels, minlength=4).min() > 800


def test_logits_that_are_not_finite_are_reported():
    with pytest.raises(ValueError, match="NaN or infinite logits"):
        draw(np.array([[0.0, np.nan]]), 1.0, np.random.default_rng(0))


# ------------------------------------------------------------ 8. budgets


@pytest.mark.usefixtures("few_mnist_images")
@pytest.mark.parametrize("args, message", [
    (["--minutes", "inf"], "--minutes must be a number of minutes between 0 and 10080"),
    (["--minutes", "nan"], "--minutes must be a number of minutes between 0 and 10080"),
    (["--minutes", "1e300"], "--minutes must be a number of minutes between 0 and 10080"),
    (["--minutes", "-1"], "--minutes must be a number of minutes between 0 and 10080"),
    (["--epochs", "0"], "--epochs must be a number of passes between 0 and 10,000"),
    (["--epochs", "-1"], "--epochs must be a number of passes between 0 and 10,000"),
    (["--epochs", "inf"], "--epochs must be a number of passes between 0 and 10,000"),
    (["--epochs", "0.00001"], "gives no full batch"),
    (["--steps", "0"], "--steps must be between 1 and 10,000,000"),
    (["--steps", "2", "--evals", "0"], "--evals must be at least 1"),
    (["--steps", "2", "--samples", "-1"], "--samples (images sampled at the end of the run) must be between 0 and 1,000"),
], ids=lambda value: "_".join(value) if isinstance(value, list) else "")
def test_impossible_budgets_are_refused_before_any_training(args, message, tmp_path, capsys, monkeypatch):
    steps = count_steps(monkeypatch)
    assert run("train", *args, "--out", tmp_path / "run", "--no-progress") == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and message in err, err
    assert steps == [] and not (tmp_path / "run" / "checkpoint.npz").exists()


# ------------------------------------------------------------ 9. kill -9 during a save


def start_a_slow_save(target):
    """A process that is in the middle of write_atomically(target), for a minute."""
    code = ("import time\nfrom npixelcnn.files import write_atomically\n"
            f"write_atomically({str(target)!r}, lambda f: (f.write(b'x' * 1000), f.flush(), "
            "print('writing', flush=True), time.sleep(60)))")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    return child


def temporaries(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("name", ["checkpoint.npz", "grid[1].png"])     # [1]: no glob pattern
def test_temporary_files_left_by_a_killed_save_are_removed_by_the_next_save(tmp_path, name):
    target = tmp_path / name
    child = start_a_slow_save(target)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    left = temporaries(tmp_path)
    assert len(left) == 1 and left[0].startswith(f".{name}.")

    files.write_atomically(target, lambda f: f.write(b"complete"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_save_of_the_same_file_in_progress_elsewhere_is_left_alone(tmp_path):
    """Only the temporary files of processes that are gone are removed."""
    target = tmp_path / "checkpoint.npz"
    child = start_a_slow_save(target)
    try:
        theirs = temporaries(tmp_path)
        files.write_atomically(target, lambda f: f.write(b"ours"))
        assert temporaries(tmp_path) == theirs and target.read_bytes() == b"ours"
    finally:
        child.kill()
        child.wait()


# ------------------------------------------------------------ 10. smaller slips


@pytest.mark.parametrize("settings, error, message", [
    (dict(lr=float("inf")), ValueError, "lr must be a finite number > 0, got inf"),
    (dict(lr="1e-3"), TypeError, "lr must be a number, got str"),
    (dict(lr=0.0), ValueError, "lr must be a finite number > 0, got 0.0"),
    (dict(eps=0.0), ValueError, "eps must be a finite number > 0, got 0.0"),
    (dict(eps=-1e-8), ValueError, "eps must be a finite number > 0"),
    (dict(beta1=1.0), ValueError, r"beta1 must be in \[0, 1\), got 1.0"),
    (dict(beta2=-0.1), ValueError, r"beta2 must be in \[0, 1\)"),
    (dict(clip_norm=float("nan")), ValueError, "clip_norm must be a finite number > 0, got nan"),
])
def test_adam_refuses_settings_that_cannot_train(settings, error, message):
    model = npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8, seed=0)
    with pytest.raises(error, match=message):
        npc.Adam(model, **{"lr": 1e-3, **settings})


def test_evaluating_no_images_is_a_clear_error():
    model = npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8, seed=0)
    with pytest.raises(ValueError, match="evaluate: no images to evaluate"):
        npc.evaluate(model, np.zeros((0, 28, 28), np.uint8))


@pytest.mark.usefixtures("few_mnist_images")
def test_more_samples_than_memory_is_one_line(tmp_path, capsys):
    checkpoint = npc.save_checkpoint(npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8, seed=0),
                                     tmp_path / "model.npz")
    assert run("sample", "--checkpoint", checkpoint, "--n", 10 ** 12, "--out", tmp_path / "s.png",
               "--no-progress") == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and "not enough memory" in err and "--n" in err


@pytest.mark.usefixtures("few_mnist_images")
def test_sigterm_is_reported_as_sigterm_and_the_run_can_resume(tmp_path, capsys, monkeypatch):
    original = Trainer.train_step

    def terminated(self):
        loss = original(self)
        if self.state.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)             # as `kill PID` does
        return loss

    monkeypatch.setattr(Trainer, "train_step", terminated)
    assert run("train", "--steps", 6, *FAST, "--out", tmp_path / "run") == 0
    out = capsys.readouterr().out
    assert "stopped by SIGTERM at step 2" in out and "Ctrl-C" not in out.split("stopped by")[1]


# ------------------------------------------------------------ the evaluation schedule and the bar


@pytest.mark.parametrize("total, evals, expected", [
    (923, 2, [462, 923]),
    (10, 10, list(range(1, 11))),
    (7, 2, [4, 7]),
    (3, 10, [1, 2, 3]),                                      # never more evaluations than steps
    (1, 1, [1]),
])
def test_evaluations_are_spread_evenly_and_the_last_is_the_final_step(total, evals, expected):
    assert evaluation_steps(total, evals) == expected


def test_a_run_evaluates_once_per_scheduled_step_and_never_twice(mnist_dir, monkeypatch):
    images = npc.quantize(npc.load_mnist("train", mnist_dir)[0][:64, 8:20, 8:20], 4)
    config = TrainConfig(levels=4, model=dict(hidden=4, blocks=1, head=8), batch_size=8, total_steps=7, evals=2)
    trainer = Trainer(config, images, images[:8])
    evaluated = []
    real_record = Trainer.record
    monkeypatch.setattr(Trainer, "record", lambda self, losses, test: (
        evaluated.append(self.state.step) if test else None, real_record(self, losses, test))[1])
    trainer.run(progress=False)
    assert evaluated == [4, 7]
    assert [h["step"] for h in trainer.state.history if h["test_bits"] is not None] == [4, 7]


def test_the_bar_counts_training_time_only():
    """An evaluation pause changes neither the rate nor the remaining time."""
    from npixelcnn.progress import paused, tqdm
    now = [1000.0]
    bar = tqdm(total=100, file=open(os.devnull, "w"), mininterval=0, miniters=1, smoothing=0)
    bar._time = lambda: now[0]
    bar.start_t = bar.last_print_t = now[0]
    for _ in range(10):
        now[0] += 0.5                                        # a step takes 0.5 s
        bar.update(1)
    with paused(bar):
        now[0] += 60.0                                       # a one-minute evaluation
    for _ in range(10):
        now[0] += 0.5
        bar.update(1)
    stats = bar.format_dict
    assert stats["rate"] == pytest.approx(2.0) or stats["n"] / stats["elapsed"] == pytest.approx(2.0)
    assert stats["elapsed"] == pytest.approx(10.0)
    bar.close()


@pytest.mark.usefixtures("few_mnist_images")
def test_the_time_budget_says_it_counts_training_only(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "training time only" in " ".join(capsys.readouterr().out.split())
    assert run("train", "--minutes", 0.01, *FAST, "--out", tmp_path / "run") == 0
    out = capsys.readouterr().out
    assert "training time only" in out and "test evaluations" in out and "in all" in out


@pytest.mark.usefixtures("few_mnist_images")
def test_a_run_no_better_than_a_uniform_guess_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train, "evaluate", lambda model, images, **kwargs: 1.5 * np.log(4))   # 3 bits/dim
    assert run("train", "--steps", 2, *FAST, "--out", tmp_path / "run") == 0
    out = capsys.readouterr().out
    assert "test 3.0000 bits/dim" in out and "no better than a uniform guess (2 bits/dim)" in out
