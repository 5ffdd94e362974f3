"""The command line of a class-conditional model (issue 36), end to end on the committed MNIST subset.

One tiny conditional Gated PixelCNN is trained once for the module (20 steps, about a second of
training) and every command is run on it: ``train --classes``, ``eval``, ``sample --labels``,
``complete --labels`` and ``classify``. Each command's figures are held against the library
function it stands for, called on the same images with the same seed.

Twenty steps barely move the class biases V (they start at zero), so the labels change that
model's draws too little to show which label an image was drawn with. ``sample``, ``complete`` and
``classify`` therefore also run on two edits of it: "steered", its V set large and random, so that
the wrong label gives other images; and "blind", its V set to zero, so that every class explains
every image equally well and only the prior decides.

The second half checks the pieces the commands are made of: ``parse_labels``, and Bayes' rule in
``npc.classify`` on a float64 model small enough to score image by image.
"""

import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn import cli, data_parallel, fast_ops, train_command
from npixelcnn.commands import UsageError, parse_labels
from npixelcnn.train import Trainer

from conftest import MNIST_SUBSET, one_clear_line, randomize
from conftest import run_cli as run

LEVELS = 4
CONDITIONAL = ["--arch", "gated", "--preset", "small", "--classes", 10, "--steps", 20, "--evals", 1,
               "--data-dir", MNIST_SUBSET, "--no-progress"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    """The folder of one tiny run of p(x | y): 20 steps, one test evaluation, 10 preview samples;
    and the labels the run's preview samples were drawn with."""
    out = tmp_path_factory.mktemp("conditional") / "run"
    preview_labels = []

    def recording_sample(*args, labels=None, **kwargs):
        preview_labels.append(labels)
        return npc.sample(*args, labels=labels, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_command, "sample", recording_sample)
        assert run("train", *CONDITIONAL, "--samples", 10, "--out", out) == 0
    return out, preview_labels


@pytest.fixture(scope="module")
def checkpoint(conditional_run):
    return conditional_run[0] / "checkpoint.npz"


@pytest.fixture(scope="module")
def model(checkpoint):
    return npc.load_checkpoint(checkpoint).model


@pytest.fixture(scope="module")
def mnist_test():
    """The subset's 1,000 test images at 4 levels, and their digits."""
    images, labels = npc.load_mnist("test", MNIST_SUBSET)
    return npc.quantize(images, LEVELS), labels


@pytest.fixture(scope="module")
def nlls(model, mnist_test):
    """npc.evaluate of the run's model on the test set in nats/dim, each image given its own digit
    ("true") and the next digit ("other")."""
    test, test_labels = mnist_test
    return {"true": npc.evaluate(model, test, labels=test_labels, parallel=True),
            "other": npc.evaluate(model, test, labels=(test_labels + 1) % 10, parallel=True)}


def with_class_biases(model, path, make):
    """A checkpoint of ``model`` with every class bias V set to ``make(shape)``."""
    for name, p in model.params.items():
        if name.endswith("_class.V"):
            p[...] = make(p.shape)
    return npc.save_checkpoint(model, path)


@pytest.fixture(scope="module")
def steered(checkpoint, tmp_path_factory):
    """The run's model with large random class biases: the label of an image changes its draws."""
    rng = np.random.default_rng(0)
    model = npc.load_checkpoint(checkpoint).model
    return with_class_biases(model, tmp_path_factory.mktemp("steered") / "model.npz",
                             lambda shape: 3 * rng.standard_normal(shape))


@pytest.fixture(scope="module")
def blind(checkpoint, tmp_path_factory):
    """The run's model with every class bias zero: p(x | y) is the same for every y."""
    model = npc.load_checkpoint(checkpoint).model
    return with_class_biases(model, tmp_path_factory.mktemp("blind") / "model.npz", np.zeros)


@pytest.fixture(scope="module")
def unconditional(tmp_path_factory):
    """A checkpoint of a model of p(x), without classes."""
    return npc.save_checkpoint(npc.PixelCNN(levels=LEVELS, hidden=4, blocks=1, head=8, seed=0),
                               tmp_path_factory.mktemp("unconditional") / "model.npz")


# ------------------------------------------------------------------ train and eval


def test_train_with_classes_learns_p_of_x_given_y_and_reports_its_conditional_nll(conditional_run, model, nlls):
    assert model.classes == 10
    metrics = json.loads((conditional_run[0] / "metrics.json").read_text())
    assert metrics["config"]["model"]["classes"] == 10
    reported = metrics["history"][-1]["test_bits"]
    assert metrics["metrics"]["test_bits_per_dim"] == reported
    # The figure of the run is -log p(x | y), each test image given its own digit ...
    assert reported == pytest.approx(npc.nats_to_bits(nlls["true"]), rel=1e-6)
    # ... and not given another's: after 20 steps the labels already move it by about 1e-4.
    assert reported != pytest.approx(npc.nats_to_bits(nlls["other"]), rel=1e-6)


def test_the_preview_samples_of_a_conditional_run_cycle_through_the_classes(conditional_run, model):
    out, preview_labels = conditional_run
    samples = np.load(out / "samples.npy")
    assert samples.shape == (10, 28, 28) and samples.max() < LEVELS
    assert is_png(out / "samples.png")
    assert len(preview_labels) == 1
    np.testing.assert_array_equal(preview_labels[0], np.arange(10))        # one image of each digit
    expected = npc.sample(model, 10, seed=0, method="cached", labels=np.arange(10))
    np.testing.assert_array_equal(samples, expected)


@pytest.mark.parametrize("args, message", [
    (["--arch", "pixelcnn", "--classes", "10"], "the pixelcnn architecture has no class condition"),
    (["--arch", "gated", "--classes", "1"], "--classes must be at least 2"),
    (["--resume", "some/checkpoint.npz", "--classes", "10"], "cannot change --classes"),
])
def test_train_refuses_classes_it_cannot_use_in_one_line_before_any_work(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", *args, "--data-dir", MNIST_SUBSET, "--out", out) == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and message in err, err
    assert not out.exists()


def test_a_conditional_run_stopped_by_ctrl_c_resumes_with_its_labels_to_the_same_weights(
        checkpoint, tmp_path, monkeypatch, capsys):
    """Stopped at step 10 of 20 and resumed, the run ends with the weights of the module's run,
    which was never stopped: the resume reloaded the digits the images are trained with."""
    original_step = Trainer.train_step

    def interrupted_step(self):
        loss = original_step(self)
        if self.state.step == 10:
            os.kill(os.getpid(), signal.SIGINT)          # as if the user pressed Ctrl-C
        return loss

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    stopped = tmp_path / "stopped" / "checkpoint.npz"
    assert run("train", *CONDITIONAL, "--samples", 0, "--out", stopped.parent) == 0
    assert "resume with" in capsys.readouterr().out
    assert npc.load_checkpoint(stopped).meta["state"]["step"] == 10

    monkeypatch.setattr(Trainer, "train_step", original_step)
    assert run("train", "--resume", stopped, "--data-dir", MNIST_SUBSET, "--samples", 0, "--no-progress") == 0
    assert "resuming" in capsys.readouterr().out
    resumed, straight = npc.load_checkpoint(stopped), npc.load_checkpoint(checkpoint)
    assert resumed.meta["state"]["step"] == 20 and resumed.model.classes == 10
    for name, p in straight.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], p, err_msg=name)


def test_eval_of_a_conditional_checkpoint_gives_each_test_image_its_true_label(checkpoint, nlls, capsys):
    assert run("eval", "--checkpoint", checkpoint, "--data-dir", MNIST_SUBSET) == 0
    printed = capsys.readouterr().out
    assert "1000 images" in printed and "each given its true label" in printed
    # nats/image, printed to 0.01: another digit's label moves it by about 0.1.
    per_image = float(re.search(r"= ([\d.]+) nats/image", printed)[1])
    assert per_image == pytest.approx(npc.nats_per_image(nlls["true"]), abs=0.0051)
    assert per_image != pytest.approx(npc.nats_per_image(nlls["other"]), abs=0.02)


# ------------------------------------------------------------------ sample and complete


def test_sample_labels_0_9_draws_a_row_per_class_as_the_library_does(steered, tmp_path, capsys):
    out = tmp_path / "digits.png"
    assert run("sample", "--checkpoint", steered, "--labels", "0-9", "--n", 2, "--seed", 3,
               "--out", out, "--no-progress") == 0
    printed = capsys.readouterr().out
    assert "sampled 20 images (2 of each of the classes 0-9)" in printed
    assert f"and {tmp_path / 'digits_labels.npy'}" in printed
    images, labels = np.load(tmp_path / "digits.npy"), np.load(tmp_path / "digits_labels.npy")
    assert images.shape == (20, 28, 28) and images.dtype == np.uint8 and images.max() < LEVELS
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9])
    assert is_png(out)
    model = npc.load_checkpoint(steered).model
    np.testing.assert_array_equal(images, npc.sample(model, 20, seed=3, method="cached", labels=labels))
    # The labels steer the draws: the same seed with the classes in another order gives other images.
    other = npc.sample(model, 20, seed=3, method="cached", labels=np.tile(np.arange(10), 2))
    assert not np.array_equal(images, other)


def test_sample_one_label_draws_n_images_of_that_class(steered, tmp_path, capsys):
    out = tmp_path / "threes.png"
    assert run("sample", "--checkpoint", steered, "--labels", "3", "--n", 4, "--seed", 5,
               "--method", "plain-cached", "--out", out, "--no-progress") == 0
    assert "sampled 4 images of class 3 " in capsys.readouterr().out
    images = np.load(tmp_path / "threes.npy")
    assert images.shape == (4, 28, 28)
    np.testing.assert_array_equal(np.load(tmp_path / "threes_labels.npy"), [3, 3, 3, 3])
    model = npc.load_checkpoint(steered).model
    expected = npc.sample(model, 4, seed=5, method="plain-cached", labels=np.full(4, 3))
    np.testing.assert_array_equal(images, expected)
    assert is_png(out)


@pytest.mark.parametrize("command", ["sample", "complete"])
@pytest.mark.parametrize("which, labels, message", [
    ("unconditional", ["--labels", "3"], "this checkpoint's model has no classes"),
    ("conditional", [], "is class-conditional (10 classes): say which with --labels"),
    ("conditional", ["--labels", "10"], "the model has 10 classes, 0 to 9; got 10"),
    ("conditional", ["--labels", "5-3"], "the range 5-3 goes down"),
    ("conditional", ["--labels", "x"], "--labels must list classes as in 3, 0-9 or 1,4,7"),
])
def test_labels_a_checkpoint_cannot_take_are_one_clear_line_and_nothing_is_written(
        command, which, labels, message, checkpoint, unconditional, tmp_path, capsys):
    path = checkpoint if which == "conditional" else unconditional
    out = tmp_path / "out.png"
    data = ["--data-dir", MNIST_SUBSET] if command == "complete" else []
    assert run(command, "--checkpoint", path, *labels, "--n", 1, *data, "--out", out, "--no-progress") == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_complete_with_labels_completes_each_top_half_as_each_class(steered, mnist_test, tmp_path, capsys):
    out = tmp_path / "as.png"
    assert run("complete", "--checkpoint", steered, "--labels", "0,1", "--n", 2, "--samples", 2,
               "--rows", 14, "--seed", 1, "--data-dir", MNIST_SUBSET, "--out", out, "--no-progress") == 0
    assert "each as the classes 0, 1" in capsys.readouterr().out
    completions = np.load(tmp_path / "as.npy")
    # A row per (image, class): image 0 as 0, image 0 as 1, image 1 as 0, image 1 as 1.
    assert completions.shape == (4, 2, 28, 28)
    originals = mnist_test[0][:2]
    given = np.repeat(originals, 2, axis=0)
    np.testing.assert_array_equal(completions[:, :, :14], np.repeat(given[:, None, :14], 2, axis=1))
    visible = np.zeros((28, 28), bool)
    visible[:14] = True
    model = npc.load_checkpoint(steered).model
    expected = npc.complete(model, given, visible, n_samples=2, seed=1, method="cached",
                            labels=np.array([0, 1, 0, 1]))
    np.testing.assert_array_equal(completions, expected)
    other = npc.complete(model, given, visible, n_samples=2, seed=1, method="cached",
                         labels=np.array([0, 0, 1, 1]))
    assert not np.array_equal(completions, other)         # as each class in turn, not each image in turn
    assert is_png(out)


# ------------------------------------------------------------------ classify


def printed_confusion(text):
    """The confusion matrix classify prints: (10, 10) counts, a row per true class, each count in
    the column of its predicted class (the numbers end where the header's class numbers end)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("true \\ predicted"))
    header, rows = lines[start], lines[start + 1:start + 11]
    columns = [m.end() for m in re.finditer(r"\d+", header)]
    assert [int(m[0]) for m in re.finditer(r"\d+", header)] == list(range(10))
    matrix = []
    for k, row in enumerate(rows):
        numbers = list(re.finditer(r"\d+", row))
        assert int(numbers[0][0]) == k
        assert [m.end() for m in numbers[1:11]] == columns, f"{header}\n{row}"
        matrix.append([int(m[0]) for m in numbers[1:11]])
    return np.array(matrix)


@pytest.mark.parametrize("options, prior, rows", [
    ([], None, None),
    (["--prior", "train"], "train", None),
    (["--rows", "14"], None, 14),
])
def test_classify_reports_the_accuracy_and_confusion_of_npc_classify(options, prior, rows, steered, mnist_test,
                                                                     tmp_path, capsys):
    out = tmp_path / "confusion.png"
    assert run("classify", "--checkpoint", steered, "--n", 50, *options, "--data-dir", MNIST_SUBSET,
               "--out", out) == 0
    printed = capsys.readouterr().out
    assert "on 50 test images" in printed and (f"top {rows} rows" in printed if rows else "whole images" in printed)
    test, test_labels = mnist_test
    if prior == "train":
        prior = npc.class_prior(npc.load_mnist("train", MNIST_SUBSET)[1], 10)
    predicted = npc.classify(npc.load_checkpoint(steered).model, test[:50], prior=prior, rows=rows).argmax(axis=1)
    true = test_labels[:50]
    errors = int((predicted != true).sum())
    assert f"accuracy: {np.mean(predicted == true):.2%} ({errors} errors)" in printed
    matrix = printed_confusion(printed)
    assert matrix.sum() == 50 and np.trace(matrix) == 50 - errors
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(true, minlength=10))
    np.testing.assert_array_equal(matrix, npc.confusion_matrix(true, predicted, 10))
    assert is_png(out)


@pytest.mark.parametrize("prior", ["uniform", "train"])
def test_when_every_class_explains_the_images_equally_the_prior_decides(prior, blind, mnist_test, capsys):
    """With V = 0, p(x | y) is the same for every y, so p(y | x) = p(y): a uniform prior leaves a
    tie (argmax: class 0), the training set's picks its commonest digit for every image."""
    assert run("classify", "--checkpoint", blind, "--n", 50, "--prior", prior, "--data-dir", MNIST_SUBSET) == 0
    printed = capsys.readouterr().out
    commonest = np.bincount(npc.load_mnist("train", MNIST_SUBSET)[1]).argmax()
    chosen = 0 if prior == "uniform" else commonest
    assert commonest != 0
    matrix = printed_confusion(printed)
    assert matrix[:, chosen].sum() == 50 == matrix.sum()
    true = mnist_test[1][:50]
    assert f"accuracy: {np.mean(true == chosen):.2%}" in printed


def test_classify_of_a_model_without_classes_is_one_clear_line(unconditional, capsys):
    assert run("classify", "--checkpoint", unconditional, "--n", 5, "--data-dir", MNIST_SUBSET) == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and "holds a model without classes: Bayes' rule needs p(x | y)" in err, err


@pytest.mark.parametrize("option, message", [
    (["--n", "0"], "--n must be between 1 and 1000, got 0"),
    (["--n", "1001"], "--n must be between 1 and 1000, got 1001"),
    (["--rows", "0"], "--rows must be between 1 and 28, got 0"),
    (["--rows", "29"], "--rows must be between 1 and 28, got 29"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--out", "confusion.jpg"], "--out must be a .png file"),
])
def test_classify_refuses_bad_options_in_one_line(option, message, checkpoint, capsys):
    assert run("classify", "--checkpoint", checkpoint, *option, "--data-dir", MNIST_SUBSET) == 2
    err = capsys.readouterr().err
    assert one_clear_line(err) and message in err, err


# ------------------------------------------------------------------ help


def test_python_dash_m_lists_the_classify_command():
    result = subprocess.run([sys.executable, "-m", "npixelcnn", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and re.search(r"^\s+classify\s", result.stdout, re.M), result.stdout


@pytest.mark.parametrize("command, options", [
    ("classify", ["--checkpoint", "--n", "--prior", "--rows", "--batch-size", "--data-dir", "--out"]),
    ("train", ["--classes"]),
    ("sample", ["--labels"]),
    ("complete", ["--labels"]),
])
def test_help_lists_the_new_command_and_options_with_examples(command, options, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert all(option in text for option in options), text
    assert "examples:" in text
    example = {"classify": "classify --checkpoint", "train": "--classes 10", "sample": "--labels 0-9",
               "complete": "--labels 0-9"}[command]
    assert example in text


# ------------------------------------------------------------------ parse_labels


@pytest.mark.parametrize("spec, classes", [
    ("3", [3]),
    ("0-9", list(range(10))),
    ("1,4,7", [1, 4, 7]),
    ("0-4,9", [0, 1, 2, 3, 4, 9]),
    (" 1 , 3 - 5 ", [1, 3, 4, 5]),
    ("2,2", [2, 2]),
])
def test_parse_labels_reads_single_classes_ranges_and_lists(spec, classes):
    assert parse_labels(spec, 10) == classes


@pytest.mark.parametrize("spec, classes, message", [
    ("3", None, "has no classes"),
    ("10", 10, "the model has 10 classes, 0 to 9; got 10"),
    ("0-12", 10, "the model has 10 classes, 0 to 9; got 0-12"),
    ("1, 0-999999999999", 10, "got 0-999999999999"),          # refused at once, not listed first
    ("5-3", 10, "the range 5-3 goes down; write it as 3-5"),
    ("x", 10, "must list classes as in 3, 0-9 or 1,4,7"),
    ("", 10, "must list classes"),
    ("1,,2", 10, "must list classes"),
    ("-1", 10, "must list classes"),
    ("1.5", 10, "must list classes"),
])
def test_parse_labels_refuses_what_is_not_a_list_of_the_models_classes(spec, classes, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_labels(spec, classes)


# ------------------------------------------------------------------ Bayes' rule, unit by unit

CLASSES = 3


@pytest.fixture(scope="module")
def tiny():
    """A float64 conditional Gated PixelCNN, every parameter random, the class biases at twice the
    scale (a new model's are zeros, under which every class would score the same)."""
    model = randomize(npc.GatedPixelCNN(levels=LEVELS, channels=3, layers=3, kernel_size=3, head=6,
                                        classes=CLASSES, seed=0), seed=1)
    rng = np.random.default_rng(2)
    for name in model.params:
        if name.endswith("_class.V"):
            model.params[name][...] = 2 * rng.standard_normal(model.params[name].shape)
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(3).integers(0, LEVELS, (5, 6, 7))


def pixel_nll_given(model, images, label):
    """-log p(x_ij | x_<ij, y=label) of every pixel, (N, H, W), from one forward pass of the whole images."""
    x = npc.to_model_input(images, model.levels).astype(np.float64)
    return model.eval().output.pixel_nll(model.forward(x, np.full(len(images), label)), images)


def log_likelihoods_image_by_image(model, images):
    """log p(x | y) for every image and class, one forward pass per (image, class): (N, K)."""
    return np.array([[-pixel_nll_given(model, image[None], k).sum() for k in range(model.classes)]
                     for image in images])


def normalise(log_joint):
    """log p(y | x) from log p(x, y), (N, K): subtract log p(x) = logsumexp over the classes."""
    return log_joint - np.logaddexp.reduce(log_joint, axis=1, keepdims=True)


def test_the_posterior_over_classes_is_bayes_rule_on_per_image_likelihoods(tiny, images):
    direct = log_likelihoods_image_by_image(tiny, images)
    np.testing.assert_allclose(npc.class_log_likelihoods(tiny, images), direct, rtol=1e-12)
    log_posterior = npc.classify(tiny, images)
    assert log_posterior.shape == (5, CLASSES) and (log_posterior <= 0).all()
    np.testing.assert_allclose(np.exp(log_posterior).sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_allclose(log_posterior, normalise(direct), rtol=1e-10, atol=1e-12)
    # The class biases matter: the images are not equally likely under every class.
    assert np.ptp(direct, axis=1).min() > 1e-3


def test_batches_of_any_size_give_the_same_scores(tiny, images):
    whole = npc.class_log_likelihoods(tiny, images, batch_size=50)
    np.testing.assert_allclose(npc.class_log_likelihoods(tiny, images, batch_size=2), whole, rtol=1e-12)


@pytest.mark.parametrize("rows", [1, 3, 6])
def test_rows_scores_only_the_top_rows_as_the_whole_model_sees_them(tiny, images, rows):
    """log p(top rows | y) from the cut images equals the whole images' per-pixel NLL summed over
    the top rows: a causal model's top rows never see what is below them."""
    expected = np.stack([-pixel_nll_given(tiny, images, k)[:, :rows].sum(axis=(1, 2)) for k in range(CLASSES)],
                        axis=1)
    np.testing.assert_allclose(npc.class_log_likelihoods(tiny, images, rows=rows), expected, rtol=1e-12)
    np.testing.assert_allclose(npc.classify(tiny, images, rows=rows), normalise(expected), rtol=1e-10, atol=1e-12)


def test_a_prior_shifts_the_posterior_as_bayes_rule_says(tiny, images):
    prior = np.array([0.2, 0.5, 0.3])
    uniform, shifted = npc.classify(tiny, images), npc.classify(tiny, images, prior=prior)
    np.testing.assert_allclose(np.exp(shifted).sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_allclose(shifted, normalise(npc.class_log_likelihoods(tiny, images) + np.log(prior)),
                               rtol=1e-10, atol=1e-12)
    # The odds of class b against class a are multiplied by prior[b] / prior[a], whatever the image.
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        np.testing.assert_allclose(shifted[:, b] - shifted[:, a],
                                   uniform[:, b] - uniform[:, a] + np.log(prior[b] / prior[a]), rtol=1e-10)
    np.testing.assert_allclose(npc.classify(tiny, images, prior=np.full(3, 1 / 3)), uniform, rtol=1e-12)


def test_split_over_two_cores_classify_gives_the_serial_posterior(tiny, images, monkeypatch):
    monkeypatch.setattr(fast_ops, "WORKERS", 2)
    serial = npc.classify(tiny, images)
    split = npc.classify(tiny, images, parallel=True)
    assert tiny in data_parallel._data_parallel                  # the batch was split
    np.testing.assert_allclose(split, serial, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(npc.classify(tiny, images, rows=2, parallel=True),
                               npc.classify(tiny, images, rows=2), rtol=1e-12, atol=1e-12)


def test_class_prior_is_each_class_share_and_the_confusion_matrix_counts_true_by_predicted():
    np.testing.assert_allclose(npc.class_prior([0, 2, 2, 1, 2, 0], 3), [2 / 6, 1 / 6, 3 / 6])
    with pytest.raises(ValueError, match=re.escape("classes [1] never occur")):
        npc.class_prior([0, 2, 2], 3)
    matrix = npc.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert matrix.sum() == 6 and np.trace(matrix) == 4


@pytest.mark.parametrize("call, message", [
    (lambda m, x: npc.classify(npc.GatedPixelCNN(levels=LEVELS, channels=2, layers=1, head=4), x), "has no classes"),
    (lambda m, x: npc.classify(m, x, rows=0), "rows must be an int in [1, 6]"),
    (lambda m, x: npc.classify(m, x, rows=7), "rows must be an int in [1, 6]"),
    (lambda m, x: npc.classify(m, x, prior=[0.5, 0.5]), "prior must be 3 positive probabilities"),
    (lambda m, x: npc.classify(m, x, prior=[0.5, 0.6, -0.1]), "prior must be 3 positive probabilities"),
])
def test_classify_refuses_what_bayes_rule_cannot_use(call, message, tiny, images):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(tiny, images)
