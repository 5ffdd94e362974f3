"""Nothing lost, nothing silent: a resume knows its data, a run never replaces a file it did not
write, every budget and option is bounded before any step, and the API checks its settings
where they are set.

Each test is a case a careless or hostile user met (issue 33); the answer is the safe behaviour
or one clear line. The interrupts have their own file (test_interrupts.py), and so do malformed
checkpoints (test_malformed_checkpoints.py).
"""

import json
import os
import shutil
import signal
import warnings

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn import commands, files, train_command
from npixelcnn.config import TrainConfig
from npixelcnn.data import check_data_dir
from npixelcnn.data_identity import OtherDataError
from npixelcnn.train import Trainer

from conftest import one_clear_line, run_cli as run

FAST = ["--batch-size", "8", "--evals", "1", "--samples", "0", "--no-progress"]




@pytest.fixture
def data_folders(tmp_path, monkeypatch, mnist_dir):
    """Three MNIST folders: "a" and "b" hold the same files, "other" stands for another data set.

    The CLI reads each folder with the real loader (so --data-dir and $NPIXELCNN_DATA are
    resolved and checked as a user's are), cut to 256 training and 32 test images of 12 x 12
    pixels to keep a run to a second; "other" gives the next 256 training images instead.
    """
    for name in ("a", "b", "other"):
        shutil.copytree(mnist_dir, tmp_path / name)

    def load_mnist(split="train", data_dir=None):
        folder = check_data_dir(data_dir)
        images, labels = npc.load_mnist(split, folder, mirrors=[])
        start = 256 if folder.name == "other" else 0
        n = 256 if split == "train" else 32
        return images[start:start + n, 8:20, 8:20], labels[start:start + n]

    monkeypatch.setitem(commands.DATASETS["mnist"], "load", load_mnist)
    monkeypatch.delenv("NPIXELCNN_DATA", raising=False)
    return {name: tmp_path / name for name in ("a", "b", "other")}


def stop_after_step(monkeypatch, stop_step):
    """Make the CLI's run stop as Ctrl-C stops it, after update ``stop_step``."""
    original = Trainer.train_step

    def step(self):
        loss = original(self)
        if self.state.step == stop_step:
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    monkeypatch.setattr(Trainer, "train_step", step)
    return original


# ------------------------------------------------------------------ a resume knows its data


def test_a_resume_on_other_data_is_refused_with_one_line_naming_both(data_folders, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    stop_after_step(monkeypatch, 2)
    assert run("train", "--steps", 6, *FAST, "--data-dir", data_folders["a"], "--out", out) == 0
    before = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()

    assert run("train", "--resume", out / "checkpoint.npz", "--data-dir", data_folders["other"],
               "--samples", 0, "--no-progress") == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and "was trained on 256 training and 32 test images" in err
    assert str(data_folders["a"]) in err and "resume it with the data it was trained on" in err
    assert (out / "checkpoint.npz").read_bytes() == before             # untouched

    # The same through $NPIXELCNN_DATA.
    monkeypatch.setenv("NPIXELCNN_DATA", str(data_folders["other"]))
    assert run("train", "--resume", out / "checkpoint.npz", "--samples", 0, "--no-progress") == 2
    assert "was trained on" in capsys.readouterr().err


def test_a_resume_on_the_same_data_from_another_folder_is_bit_exact(data_folders, tmp_path, monkeypatch):
    assert run("train", "--steps", 6, *FAST, "--data-dir", data_folders["a"], "--out", tmp_path / "straight") == 0
    original = stop_after_step(monkeypatch, 2)
    assert run("train", "--steps", 6, *FAST, "--data-dir", data_folders["a"], "--out", tmp_path / "stopped") == 0
    monkeypatch.setattr(Trainer, "train_step", original)
    shutil.rmtree(data_folders["a"])                       # the data moved: only "b" holds it now
    monkeypatch.setenv("NPIXELCNN_DATA", str(data_folders["b"]))
    assert run("train", "--resume", tmp_path / "stopped" / "checkpoint.npz", "--samples", 0, "--no-progress") == 0

    straight = npc.load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    resumed = npc.load_checkpoint(tmp_path / "stopped" / "checkpoint.npz")
    assert resumed.meta["state"]["step"] == 6
    for name, p in straight.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], p, err_msg=name)
    assert resumed.meta["data"] == straight.meta["data"]
    assert resumed.meta["data_source"] == str(data_folders["b"].resolve())


def test_the_api_refuses_a_resume_on_other_images_and_warns_for_a_file_that_does_not_record_them(tmp_path):
    rng = np.random.default_rng(0)
    train_images, test_images = rng.integers(0, 4, (40, 6, 6)), rng.integers(0, 4, (8, 6, 6))
    config = TrainConfig(levels=4, model=dict(hidden=2, blocks=1, head=4), batch_size=8, total_steps=4, evals=1)
    trainer = Trainer(config, train_images, test_images)
    trainer.run(max_steps=2, progress=False)
    path = trainer.save(tmp_path / "run.npz")

    # The same values in another integer type are the same data.
    Trainer.resume(path, train_images.astype(np.uint8), test_images.astype(np.int32))
    changed = train_images.copy()
    changed[0, 0, 0] = (changed[0, 0, 0] + 1) % 4
    with pytest.raises(OtherDataError, match="was trained on 40 training and 8 test images"):
        Trainer.resume(path, changed, test_images)
    with pytest.raises(OtherDataError):
        Trainer.resume(path, train_images, test_images[:4])

    ckpt = npc.load_checkpoint(path)
    del ckpt.meta["data"]                                   # as written before checkpoints recorded it
    with pytest.warns(UserWarning, match="does not record the data it was trained on"):
        Trainer.from_checkpoint(ckpt, train_images, test_images)


def test_a_trainer_refuses_images_that_are_not_levels_of_its_config():
    config = TrainConfig(levels=4, model=dict(hidden=2, blocks=1, head=4), batch_size=2, total_steps=2, evals=1)
    images = np.full((4, 5, 5), 4)
    with pytest.raises(ValueError, match=r"Trainer \(train_images\): images must hold levels in \[0, 3\]"):
        Trainer(config, images, images % 4)


# ------------------------------------------------------------------ every output guarded


@pytest.mark.usefixtures("few_mnist_images")
def test_a_new_run_never_replaces_files_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    mine = {"metrics.json": b"{\"my\": 1}", "samples.png": b"my picture", "loss_curve.png": b"my curve"}
    for name, content in mine.items():
        (out / name).write_bytes(content)

    assert run("train", "--steps", 2, "--batch-size", 8, "--evals", 1, "--no-progress", "--out", out) == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and "metrics.json, loss_curve.png, samples.png" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == mine       # untouched, and no lock left

    # Said so: the run replaces them.
    assert run("train", "--steps", 2, "--batch-size", 8, "--evals", 1, "--samples", 2, "--no-progress",
               "--overwrite", "--out", out) == 0
    assert json.loads((out / "metrics.json").read_text())["metrics"]["step"] == 2
    assert (out / "samples.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.usefixtures("few_mnist_images")
def test_only_the_files_a_run_writes_are_guarded(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "samples.png").write_bytes(b"my picture")
    (out / "notes.txt").write_bytes(b"mine")
    assert run("train", "--steps", 2, *FAST, "--out", out) == 0         # --samples 0: no samples.png written
    assert (out / "samples.png").read_bytes() == b"my picture" and (out / "notes.txt").read_bytes() == b"mine"


@pytest.mark.usefixtures("few_mnist_images")
def test_a_resume_into_another_folder_never_replaces_its_files(tmp_path, capsys):
    assert run("train", "--steps", 2, *FAST, "--out", tmp_path / "a") == 0
    other = tmp_path / "b"
    other.mkdir()
    (other / "loss_curve.png").write_bytes(b"my curve")
    capsys.readouterr()
    assert run("train", "--resume", tmp_path / "a" / "checkpoint.npz", "--out", other, "--samples", 0,
               "--no-progress") == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and "loss_curve.png" in err
    assert (other / "loss_curve.png").read_bytes() == b"my curve"


@pytest.mark.usefixtures("few_mnist_images")
@pytest.mark.parametrize("case", ["no full batch", "corrupt resume", "folder in use"])
def test_a_refused_start_leaves_no_folder_or_lock_behind(case, tmp_path, capsys):
    out = tmp_path / "new" / "run"
    if case == "no full batch":
        status = run("train", "--epochs", "0.00001", *FAST, "--out", out)
    elif case == "corrupt resume":
        bad = tmp_path / "bad.npz"
        bad.write_bytes(b"PK\x03\x04 not really")
        status = run("train", "--resume", bad, "--samples", 0, "--no-progress", "--out", out)
    else:
        out = tmp_path / "busy"
        with files.claim_folder(out):
            status = run("train", "--steps", 2, *FAST, "--out", out)
            assert (out / files.LOCK_NAME).exists()           # the holder's lock stays while it runs
        assert not out.exists()                               # and goes with it (the folder was empty)
    assert status == 2 and one_clear_line(capsys.readouterr().err)
    assert not (tmp_path / "new").exists()


def test_a_claim_removes_its_lock_file_and_refuses_a_lock_on_a_removed_file(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "checkpoint.npz").write_bytes(b"x")
    with files.claim_folder(folder):
        assert (folder / files.LOCK_NAME).exists()
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.npz"]


# ------------------------------------------------------------------ bounds, checked before any step


@pytest.mark.usefixtures("few_mnist_images")
@pytest.mark.parametrize("args, message", [
    (["--steps", "100000000000000000000"], "--steps must be between 1 and 100,000"),
    (["--epochs", "1e300"], "--epochs must be a number of passes between 0 and 10,000"),
    (["--epochs", "9999"], "is 319,968 steps"),        # the fixture's 256 images: 32 batches of 8
    (["--steps", "2", "--samples", "100000000"], "--samples (images sampled at the end of the run)"),
    (["--steps", "2", "--data-dir", ""], "--data-dir is empty"),
], ids=["steps", "epochs", "epochs-in-steps", "samples", "empty-data-dir"])
def test_budgets_and_outputs_are_bounded_before_any_step(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train_command, "MAX_STEPS", 100_000)     # (the real bound, ten million, in the others)
    taken = []
    original = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", lambda self: taken.append(1) or original(self))
    extra = [a for a in FAST if a not in ("--samples", "0")] if "--samples" in args else FAST
    assert run("train", *args, *extra, "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and message in err
    assert taken == [] and not (tmp_path / "run").exists()


def test_a_config_longer_than_the_bound_is_refused():
    with pytest.raises(ValueError, match="total_steps must be at most 10,000,000"):
        Trainer(TrainConfig(total_steps=10**20), np.zeros((40, 4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8))


@pytest.mark.usefixtures("few_mnist_images")
def test_a_learning_rate_that_overflows_the_weights_is_a_divergence_not_a_crash(tmp_path, capsys):
    assert run("train", "--steps", 1, "--lr", 1e41, *FAST, "--out", tmp_path / "run") == 1
    err = capsys.readouterr().err
    assert one_clear_line(err) and "training diverged: the parameters became NaN or infinite at step 0" in err
    assert "last good checkpoint is kept" in err
    ckpt = npc.load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert ckpt.meta["state"]["step"] == 0


@pytest.fixture
def checkpoint(tmp_path):
    model = npc.PixelCNN(levels=4, hidden=2, blocks=1, head=4, seed=0)
    return npc.save_checkpoint(model, tmp_path / "model.npz")


@pytest.mark.usefixtures("few_mnist_images")
@pytest.mark.parametrize("args, message", [
    (["sample", "--seed", "-1"], "--seed must be 0 or more, got -1"),
    (["complete", "--seed", "-1"], "--seed must be 0 or more, got -1"),
    (["complete", "--samples", "0"], "--samples (completions per image) must be at least 1, got 0"),
    (["complete", "--rows", "-1"], "--rows must be 0 or more"),
    (["sample", "--temperature", "nan"], "--temperature must be a finite number > 0"),
    (["complete", "--data-dir", ""], "--data-dir is empty"),
])
def test_sampling_options_name_the_option(args, message, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(*args, "--checkpoint", checkpoint, "--no-progress") == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and message in err
    assert not list(tmp_path.glob("*.png"))


def test_eval_refuses_an_empty_data_dir(checkpoint, capsys):
    assert run("eval", "--checkpoint", checkpoint, "--data-dir", "") == 2
    assert "--data-dir is empty" in capsys.readouterr().err


def test_a_huge_temperature_samples_without_a_warning(checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # an overflow RuntimeWarning would fail here
        assert run("sample", "--checkpoint", checkpoint, "--n", 2, "--temperature", 1e300,
                   "--no-progress", "--out", "hot.png") == 0
    assert np.load(tmp_path / "hot.npy").shape == (2, 28, 28)


def test_a_full_disk_while_writing_samples_says_so(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def short_write(f, array, allow_pickle=False):        # what ndarray.tofile says when the disk fills
        f.write(b"\x93NUMPY")
        raise OSError("50176 requested and 12160 written")

    monkeypatch.setattr(files.np, "save", short_write)
    assert run("sample", "--checkpoint", checkpoint, "--n", 2, "--no-progress", "--out", "s.png") == 1   # the work was done
    err = capsys.readouterr().err
    assert one_clear_line(err) and "No space left on device" in err and "bytes free" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]        # no partial file


# ------------------------------------------------------------------ the API checks settings where they are set


@pytest.mark.parametrize("build", [lambda: npc.PixelCNN(levels=257), lambda: npc.GatedPixelCNN(levels=300)])
def test_models_refuse_more_than_256_levels(build):
    with pytest.raises(ValueError, match="levels must be at most 256"):
        build()


@pytest.mark.parametrize("max_steps, error", [(-1, ValueError), (1.5, TypeError), ("3", TypeError)])
def test_run_refuses_a_max_steps_that_is_not_a_count(max_steps, error):
    config = TrainConfig(levels=4, model=dict(hidden=2, blocks=1, head=4), batch_size=2, total_steps=3, evals=1)
    trainer = Trainer(config, np.zeros((4, 4, 4), np.uint8), np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(error, match="max_steps"):
        trainer.run(max_steps=max_steps, progress=False)
    assert trainer.state.step == 0
    trainer.run(max_steps=0, progress=False)                  # zero more steps is a count
    assert trainer.state.step == 0


def test_an_optimizer_checks_its_learning_rate_whenever_it_is_set():
    model = npc.PixelCNN(levels=4, hidden=2, blocks=1, head=4)
    opt = npc.Adam(model, lr=1e-3)
    for bad in (-1, 0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lr must be a finite number > 0"):
            opt.lr = bad
    with pytest.raises(TypeError, match="lr must be a number"):
        opt.lr = "0.1"
    with pytest.raises(ValueError, match="clip_norm"):
        opt.clip_norm = -1
    assert opt.lr == 1e-3


@pytest.mark.parametrize("model", [None, object(), {"params": {}}])
def test_an_optimizer_refuses_what_is_not_a_model(model):
    with pytest.raises(TypeError, match="an optimizer needs a model with 'params' and 'grads'"):
        npc.Adam(model)



@pytest.mark.parametrize("build", [lambda: npc.GatedPixelCNN(kernel_size=20001),
                                   lambda: npc.MaskedConv2D(1, 2, 20001, "A")])
def test_a_kernel_wider_than_any_image_is_refused_before_its_taps_are_listed(build):
    with pytest.raises(ValueError, match="kernel_size must be at most 255"):
        build()


def test_a_time_budget_never_makes_a_run_longer_than_the_bound(monkeypatch):
    from npixelcnn import run_control
    monkeypatch.setattr(run_control, "MAX_STEPS", 30)      # a week of this tiny model would be millions of steps
    config = TrainConfig(levels=4, model=dict(hidden=2, blocks=1, head=4), batch_size=2, evals=1,
                         minutes=7 * 24 * 60)
    trainer = Trainer(config, np.zeros((8, 4, 4), np.uint8), np.zeros((2, 4, 4), np.uint8))
    steps, _ = run_control.steps_for_minutes(trainer, config.minutes)
    assert steps == 30
    config.total_steps = 25
    check = run_control.BudgetCheck(trainer, every=1)
    trainer.train_step()
    check.moved_the_end()
    assert config.total_steps == 30
