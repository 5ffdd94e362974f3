"""The command line of a colour model, end to end on the committed MNIST subset in colour.

``train --data colour-mnist`` trains a model of R, G and B sub-pixels on coloured MNIST (made from
MNIST's files, so ``--data-dir`` is MNIST's folder), records the data set's name in its checkpoint,
and every later command (``--resume``, ``eval``, ``sample``, ``complete``) reads the same data from
it. The pictures they write are in colour: a grey picture of colour images would hide the very
thing the model learnt.
"""

import matplotlib.image
import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn import commands

from conftest import MNIST_SUBSET, one_clear_line
from conftest import run_cli as run

LEVELS = 4
COLOUR = ["--data", "colour-mnist", "--arch", "pixelcnn", "--preset", "small", "--levels", LEVELS,
          "--batch-size", 8, "--evals", 1, "--data-dir", MNIST_SUBSET, "--no-progress"]


@pytest.fixture
def few_colour_images(monkeypatch):
    """Coloured MNIST cut as the grey tests cut MNIST: 64 training and 16 test images of their
    central 12 x 12 pixels, so that a run takes a second."""
    cache = {split: npc.load_coloured_mnist(split, MNIST_SUBSET) for split in ("train", "test")}

    def load_coloured_mnist(split="train", data_dir=None):
        images, labels = cache[split]
        n = 64 if split == "train" else 16
        return images[:n, 8:20, 8:20], labels[:n]

    monkeypatch.setitem(commands.DATASETS["colour-mnist"], "load", load_coloured_mnist)


def is_in_colour(path):
    """A PNG whose pixels are not all grey (R = G = B): drawn in colour."""
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[-1] in (3, 4)
    rgb = pixels[..., :3]
    return bool(np.any(rgb[..., 0] != rgb[..., 1]) or np.any(rgb[..., 1] != rgb[..., 2]))


@pytest.fixture
def colour_run(tmp_path, few_colour_images):
    out = tmp_path / "run"
    assert run("train", *COLOUR, "--steps", 4, "--samples", 4, "--out", out) == 0
    return out


def test_a_colour_run_trains_a_colour_model_and_records_its_data(colour_run):
    ckpt = npc.load_checkpoint(colour_run / "checkpoint.npz")
    assert ckpt.model.in_channels == 3 and ckpt.model.channel_order == "ordered"
    assert ckpt.meta["dataset"] == "colour-mnist"
    assert ckpt.meta["data"]["train"]["channels"] == 3
    samples = np.load(colour_run / "samples.npy")
    assert samples.shape == (4, 12, 12, 3) and samples.max() < LEVELS
    assert is_in_colour(colour_run / "samples.png")


def test_the_independent_baseline_is_chosen_by_channel_order(tmp_path, few_colour_images):
    out = tmp_path / "independent"
    assert run("train", *COLOUR, "--channel-order", "independent", "--steps", 2, "--samples", 0, "--out", out) == 0
    assert npc.load_checkpoint(out / "checkpoint.npz").model.channel_order == "independent"


def test_channel_coefficients_train_a_mixture_whose_g_and_b_follow_r(tmp_path, few_colour_images):
    """--channel-coefficients: PixelCNN++'s coefficients, recorded in the checkpoint, with samples drawn
    through them; refused, in one line, where they mean nothing."""
    out = tmp_path / "coefficients"
    assert run("train", *COLOUR, "--output", "logistic-mixture", "--components", 2, "--channel-coefficients",
               "--steps", 2, "--samples", 2, "--out", out) == 0
    model = npc.load_checkpoint(out / "checkpoint.npz").model
    assert model.config["channel_coefficients"] is True
    assert model.output.channels == 3 * 2 + 2 * 2             # 3K + (C - 1)K numbers per sub-pixel
    assert np.load(out / "samples.npy").shape == (2, 12, 12, 3)


@pytest.mark.parametrize("options", [["--channel-coefficients"],
                                     ["--output", "logistic-mixture", "--channel-coefficients",
                                      "--channel-order", "independent"]])
def test_channel_coefficients_need_an_ordered_colour_mixture(options, tmp_path, capsys, few_colour_images):
    assert run("train", *COLOUR, *options, "--steps", 1, "--out", tmp_path / "refused") == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and "--channel-coefficients" in err and "logistic-mixture" in err


def test_eval_sample_complete_and_resume_read_the_checkpoints_data(colour_run, tmp_path, capsys):
    checkpoint = colour_run / "checkpoint.npz"
    capsys.readouterr()
    assert run("eval", "--checkpoint", checkpoint, "--data-dir", MNIST_SUBSET) == 0
    assert "16 images of coloured MNIST" in capsys.readouterr().out

    grid = tmp_path / "samples.png"
    assert run("sample", "--checkpoint", checkpoint, "--n", 2, "--out", grid, "--no-progress") == 0
    assert np.load(grid.with_suffix(".npy")).shape == (2, 28, 28, 3)      # the data set's image size
    assert is_in_colour(grid)

    completions = tmp_path / "completions.png"
    assert run("complete", "--checkpoint", checkpoint, "--rows", 6, "--n", 2, "--samples", 2,
               "--data-dir", MNIST_SUBSET, "--out", completions, "--no-progress") == 0
    drawn = np.load(completions.with_suffix(".npy"))
    assert drawn.shape == (2, 2, 12, 12, 3)
    test_images = npc.quantize(commands.load_images("colour-mnist", "test")[0][:2], LEVELS)
    np.testing.assert_array_equal(drawn[:, :, :6], np.broadcast_to(test_images[:, None, :6], (2, 2, 6, 12, 3)))
    assert is_in_colour(completions)

    # The resume reads coloured MNIST again (its data record would refuse grey MNIST).
    assert run("train", "--resume", checkpoint, "--steps", 8) == 2          # options of a new run refused
    assert run("train", "--resume", checkpoint, "--data-dir", MNIST_SUBSET, "--no-progress", "--samples", 0) == 0
    assert npc.load_checkpoint(checkpoint).meta["dataset"] == "colour-mnist"


def test_grey_runs_stay_grey(tmp_path, few_mnist_images):
    out = tmp_path / "grey"
    assert run("train", "--preset", "small", "--steps", 2, "--batch-size", 8, "--evals", 1, "--samples", 2,
               "--data-dir", MNIST_SUBSET, "--no-progress", "--out", out) == 0
    ckpt = npc.load_checkpoint(out / "checkpoint.npz")
    assert ckpt.model.in_channels == 1 and ckpt.meta["dataset"] == "mnist"
    assert not is_in_colour(out / "samples.png")


def test_a_checkpoint_without_a_data_set_name_is_mnist(tmp_path, few_mnist_images):
    from conftest import rewrite_meta
    out = tmp_path / "old"
    assert run("train", "--preset", "small", "--steps", 2, "--batch-size", 8, "--evals", 1, "--samples", 0,
               "--data-dir", MNIST_SUBSET, "--no-progress", "--out", out) == 0
    checkpoint = rewrite_meta(out / "checkpoint.npz", lambda meta: meta.pop("dataset"))
    assert run("eval", "--checkpoint", checkpoint, "--data-dir", MNIST_SUBSET) == 0
    assert run("train", "--resume", checkpoint, "--data-dir", MNIST_SUBSET, "--no-progress", "--samples", 0) == 0


def test_channel_order_needs_colour_data(tmp_path, capsys):
    assert run("train", "--channel-order", "independent", "--steps", 2, "--out", tmp_path / "x") == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and "--channel-order" in err and "--data colour-mnist" in err
    assert not (tmp_path / "x").exists()


def test_an_unknown_data_set_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        run("train", "--data", "svhn")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--data: invalid choice: 'svhn'" in err and "colour-mnist" in err and "cifar10" in err


def test_a_checkpoint_naming_an_unknown_data_set_is_refused(colour_run, capsys):
    from conftest import rewrite_meta
    checkpoint = rewrite_meta(colour_run / "checkpoint.npz", lambda meta: meta.update(dataset="svhn"))
    capsys.readouterr()
    assert run("eval", "--checkpoint", checkpoint) == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and "'svhn'" in err


def test_colour_pictures_are_the_dequantized_levels(tmp_path):
    from npixelcnn import viz
    images = np.random.default_rng(0).integers(0, LEVELS, size=(3, 5, 4, 3))
    grid = viz.colour_grid(images, LEVELS, ncols=3)
    assert grid.shape == (1 + 5 + 1, 1 + 3 * (4 + 1), 3)
    np.testing.assert_array_equal(grid[1:6, 1:5], npc.dequantize(images[0], LEVELS))
    np.testing.assert_array_equal(grid[1:6, 6:10], npc.dequantize(images[1], LEVELS))
    path = viz.save_image_grid(images, LEVELS, tmp_path / "grid.png", ncols=3, scale=1)
    np.testing.assert_array_equal(np.rint(matplotlib.image.imread(path)[..., :3] * 255).astype(np.uint8), grid)
    viz.plot_class_grid(images.reshape(1, 3, 5, 4, 3), [7], LEVELS, path=tmp_path / "classes.png")
    assert is_in_colour(tmp_path / "classes.png")
