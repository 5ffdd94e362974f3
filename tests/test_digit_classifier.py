"""The digit classifier that judges samples (benchmarks/digit_classifier.py): a small MLP whose
backward is the gradient of its loss, trained here for a few steps on the committed MNIST subset.

It is the independent judge of "what share of samples read as digits", so these tests hold it to
what that needs: probabilities that are probabilities, accuracy far above chance, a cache that
gives back the very same classifier, shares counted right, and a clear error for images at the
wrong number of levels, of the wrong shape or dtype.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import npixelcnn as npc
from conftest import GRAD_TOL, load_module

dc = load_module("digit_classifier", Path(__file__).resolve().parents[1] / "benchmarks" / "digit_classifier.py")

LEVELS = 4
FEW_EPOCHS = 4          # 2,000 training images: 4 x 15 steps of 128, well under a second


@pytest.fixture(scope="module")
def classifier(mnist_dir):
    return dc.train_classifier(LEVELS, mnist_dir, seed=0, epochs=FEW_EPOCHS)


@pytest.fixture(scope="module")
def test_digits(mnist_dir):
    images, labels = npc.load_mnist("test", mnist_dir, mirrors=[], progress=False)
    return npc.quantize(images, LEVELS), labels


class Fixed:
    """A stand-in classifier whose probabilities are given: readable_share's arithmetic, by hand."""

    def __init__(self, probs):
        self.probs = np.asarray(probs, dtype=np.float64)

    def predict_proba(self, level_images):
        return self.probs

    def predict(self, level_images):
        return self.probs.argmax(axis=1)


def one_hot_ish(rows):
    """(class, probability) per row -> (N, 10) probabilities: the rest spread evenly over the other classes."""
    probs = np.empty((len(rows), 10))
    for i, (c, p) in enumerate(rows):
        probs[i] = (1 - p) / 9
        probs[i, c] = p
    return probs


def test_the_backward_pass_is_the_gradient_of_the_loss():
    rng = np.random.default_rng(0)
    params = [(W, 0.1 * rng.standard_normal(b.shape))      # random biases: no ReLU input sits on its kink
              for W, b in dc.init_params(rng, hidden=(7, 5), dtype=np.float64)]
    x, labels = rng.random((6, 784)), rng.integers(0, 10, 6)
    _, grads = dc.loss_and_grads(params, x, labels)
    for (W, b), (dW, db) in zip(params, grads):
        for p, g in ((W, dW), (b, db)):
            numeric = npc.gradcheck.numerical_gradient(lambda: dc.loss_and_grads(params, x, labels)[0], p)
            assert npc.gradcheck.relative_error(g, numeric) < GRAD_TOL


def test_a_shift_moves_each_image_by_at_most_two_pixels(test_digits):
    images = test_digits[0][:16]
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    shifted = dc.shifted_batch(padded, np.arange(16), np.random.default_rng(0), shift=2)
    assert shifted.shape == (16, 28, 28)
    moves = set()
    for original, moved in zip(padded, shifted):
        found = [(2 - dy, 2 - dx) for dy in range(5) for dx in range(5)
                 if np.array_equal(original[dy:dy + 28, dx:dx + 28], moved)]
        assert found, "each image is its original, moved by -2..2 pixels in each direction"
        moves.add(found[0])
    assert len(moves) > 1, "the shifts are random, not one for all"
    unshifted = dc.shifted_batch(images, np.arange(16), np.random.default_rng(0), shift=0)
    np.testing.assert_array_equal(unshifted, images)


def test_probabilities_are_one_distribution_per_image(classifier, test_digits):
    probs = classifier.predict_proba(test_digits[0][:50])
    assert probs.shape == (50, 10)
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(classifier.predict(test_digits[0][:50]), probs.argmax(axis=1))


def test_a_few_steps_already_beat_chance_by_a_wide_margin(classifier, test_digits):
    images, labels = test_digits
    accuracy, per_class = dc.accuracy(classifier, images, labels)
    assert accuracy > 0.7, f"1,000 real test digits, 10 classes: chance is 0.1, got {accuracy:.3f}"
    assert len(per_class) == 10


def test_the_cache_gives_back_the_same_classifier(tmp_path, mnist_dir, test_digits, monkeypatch):
    first = dc.load_or_train(LEVELS, mnist_dir, seed=3, cache=tmp_path, epochs=1)
    assert first.path == dc.cache_path(LEVELS, 3, 1, tmp_path) and first.path.exists()
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name], "no temporary file left behind"

    def no_training(*args, **kwargs):
        raise AssertionError("a cached classifier must not be trained again")

    monkeypatch.setattr(dc, "train_classifier", no_training)
    second = dc.load_or_train(LEVELS, mnist_dir, seed=3, cache=tmp_path, epochs=1)
    images = test_digits[0][:100]
    np.testing.assert_array_equal(second.predict_proba(images), first.predict_proba(images))
    assert second.levels == LEVELS and second.meta["seed"] == 3 and second.meta["train_images"] == 2000
    with pytest.raises(AssertionError, match="trained again"):     # another seed is another classifier
        dc.load_or_train(LEVELS, mnist_dir, seed=4, cache=tmp_path, epochs=1)


def test_a_broken_cache_file_is_replaced_by_a_fresh_classifier(tmp_path, mnist_dir, capsys):
    path = dc.cache_path(LEVELS, 0, 1, tmp_path)
    path.write_bytes(b"not an npz")
    fresh = dc.load_or_train(LEVELS, mnist_dir, seed=0, cache=tmp_path, epochs=1)
    assert "is not a digit classifier file" in capsys.readouterr().err
    assert dc.Classifier.load(path).meta == fresh.meta


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 28, 28, 1), np.uint8), r"shape \(N, 28, 28\)"),
    (np.zeros((28, 28), np.uint8), r"shape \(N, 28, 28\)"),
    (np.zeros((2, 32, 32), np.uint8), r"shape \(N, 28, 28\)"),
    (np.full((2, 28, 28), 0.5), "integer levels.*float64"),
    (np.full((2, 28, 28), LEVELS, np.uint8), r"levels in \[0, 4\), got values in \[4, 4\]"),
    (np.full((2, 28, 28), -1, np.int8), r"levels in \[0, 4\), got values in \[-1, -1\]"),
    (np.full((2, 28, 28), 255, np.uint8), "another number of levels"),
])
def test_images_it_cannot_judge_are_refused_clearly(classifier, bad, message):
    with pytest.raises(ValueError, match=message):
        classifier.predict_proba(bad)


@pytest.mark.parametrize("levels", [1, 257, 4.0, True, "4"])
def test_levels_must_be_an_integer_from_2_to_256(levels, tmp_path):
    with pytest.raises(ValueError, match=r"levels must be an integer in \[2, 256\]"):
        dc.load_or_train(levels, cache=tmp_path)


def test_readable_share_counts_by_hand():
    probs = one_hot_ish([(3, 0.95), (1, 0.9), (0, 0.5), (3, 0.89), (7, 0.99)])
    share = dc.readable_share(Fixed(probs), None)
    assert share["images"] == 5 and share["readable"] == 3      # 0.9 itself counts as readable
    assert share["share"] == pytest.approx(3 / 5)
    assert share["mean_confidence"] == pytest.approx((0.95 + 0.9 + 0.5 + 0.89 + 0.99) / 5)
    assert share["counts"] == [1, 1, 0, 2, 0, 0, 0, 1, 0, 0]
    assert share["readable_counts"] == [0, 1, 0, 1, 0, 0, 0, 1, 0, 0]
    assert dc.readable_share(Fixed(probs), None, confidence=0.99)["readable"] == 1
    with pytest.raises(ValueError, match="at least one image"):
        dc.readable_share(Fixed(np.empty((0, 10))), None)


def test_intended_share_counts_by_hand():
    probs = one_hot_ish([(3, 0.95), (3, 0.6), (1, 0.9), (2, 0.99)])
    asked = dc.intended_share(Fixed(probs), np.zeros((4, 28, 28), np.uint8), np.array([3, 5, 1, 1]))
    assert asked["as_intended"] == 2 and asked["share"] == pytest.approx(0.5)
    assert asked["per_class"] == [None, 0.5, None, 1.0, None, 0.0, None, None, None, None]
    images = np.zeros((4, 28, 28), np.uint8)
    for labels, message in [(np.array([1, 2, 3]), r"shape \(4,\)"), (np.array([0, 1, 2, 10]), r"\[0, 9\]"),
                            (np.array([0.0, 1, 2, 3]), "integer classes")]:
        with pytest.raises(ValueError, match=message):
            dc.intended_share(Fixed(probs), images, labels)


def test_the_command_line_judges_samples_against_real_digits(tmp_path, mnist_dir, test_digits, capsys):
    images, labels = test_digits
    np.save(tmp_path / "samples.npy", images[:40])
    np.save(tmp_path / "labels.npy", labels[:40])
    dc.main(["--levels", str(LEVELS), "--data-dir", str(mnist_dir), "--cache", str(tmp_path / "cache"),
             "--epochs", "1", "--samples", str(tmp_path / "samples.npy"), "--labels", str(tmp_path / "labels.npy")])
    out = capsys.readouterr().out
    assert "test accuracy at 4 levels" in out and "labelled as asked" in out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["levels"] == LEVELS and len(result["per_class_accuracy"]) == 10
    assert result["reference"]["images"] == 1000
    judged = result["samples"][str(tmp_path / "samples.npy")]
    assert judged["images"] == 40 and sum(judged["counts"]) == 40
    assert judged["intended"]["images"] == 40


def test_the_command_line_refuses_samples_at_other_levels(tmp_path, mnist_dir, capsys):
    np.save(tmp_path / "samples.npy", np.full((3, 28, 28), 200, np.uint8))
    with pytest.raises(SystemExit) as exit_:
        dc.main(["--levels", str(LEVELS), "--data-dir", str(mnist_dir), "--cache", str(tmp_path),
                 "--samples", str(tmp_path / "samples.npy")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "levels in [0, 4)" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [tmp_path / "samples.npy"], "refused before any training"
