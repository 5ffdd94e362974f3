"""A class condition (npixelcnn/conditioning.py): a model built with classes=K models p(x | y).

Every gate of a conditional Gated PixelCNN adds a learned bias per class, V[y], to both
halves of both stacks' pre-activations. These tests check its backward pass by central
differences, that the condition starts as nothing (V = 0) and then steers every pixel of
its own image and no other's, that it keeps the model causal, that the labels travel
through training (serial and data parallel), evaluation and checkpoints, and that every
mistake a user can make with labels is refused with a clear error.
"""

import hashlib

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn import data_parallel, fast_ops
from npixelcnn.conditioning import ClassBias, check_labels
from npixelcnn.config import TrainConfig, check_train_config
from npixelcnn.data_identity import OtherDataError, labels_fingerprint
from npixelcnn.gated import GatedLayer
from npixelcnn.gradcheck import check_layer, check_model_and_loss
from npixelcnn.train import Trainer

from conftest import GRAD_TOL, randomize
from test_gated import PairAsArray      # a gated layer seen as array -> array, for check_layer

ROUNDING = 1e-10      # float64 differences below this are rounding, not influence


def assert_all_below(errors, tol=GRAD_TOL):
    worst = max(errors, key=errors.get)
    assert errors[worst] < tol, f"relative error of d/d{worst} is {errors[worst]:.2e}: {errors}"


def class_bias_names(layers):
    """Both stacks' class biases in every layer but the last, whose vertical output nothing reads."""
    return ({f"layers.{i}.horizontal_class.V" for i in range(layers)}
            | {f"layers.{i}.vertical_class.V" for i in range(layers - 1)})


def conditional_gated(classes=3, layers=3, seed=0, **settings):
    """A small conditional Gated PixelCNN in float64 with every parameter random, V included."""
    settings = {"levels": 4, "channels": 3, "head": 8, **settings}
    model = npc.GatedPixelCNN(layers=layers, classes=classes, seed=seed, **settings)
    return randomize(model, seed=seed + 1)


# ------------------------------------------------------------------ gradient checks


def test_class_bias_adds_row_y_of_v_at_every_pixel_and_its_backward_is_right(rng):
    layer = randomize(ClassBias(classes=4, channels=3), seed=2)
    labels = np.array([2, 0, 2])
    layer.set_labels(labels)
    x = rng.standard_normal((3, 4, 5, 3))
    y = layer.forward(x)
    np.testing.assert_array_equal(y, x + layer.params["V"][labels][:, None, None, :])
    errors = check_layer(layer, x)
    assert set(errors) == {"x", "V"}
    assert_all_below(errors)
    # dV[k] is the upstream gradient summed over the pixels of the images of class k;
    # the classes no image has (1 and 3) get exactly zero.
    dy = rng.standard_normal(y.shape)
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(dy), dy)
    dv = layer.grads["V"]
    np.testing.assert_allclose(dv[2], dy[[0, 2]].sum(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(dv[0], dy[1].sum(axis=(0, 1)), rtol=1e-12)
    assert np.all(dv[[1, 3]] == 0)


@pytest.mark.parametrize("first, dilation", [(True, 1), (False, 1), (False, 2), (True, 2)])
def test_a_conditional_gated_layers_gradients_class_biases_included(first, dilation, rng):
    c, labels = 3, np.array([1, 0, 1])
    layer = randomize(GatedLayer(1 if first else c, c, 3, first=first, rng=0, dilation=dilation, classes=2), seed=1)
    for bias in (layer.vertical_class, layer.horizontal_class):
        bias.set_labels(labels)
    x = rng.standard_normal((3, 5, 6, 1 if first else 2 * c))
    errors = check_layer(PairAsArray(layer), x)
    assert set(errors) == {"x"} | set(layer.params)
    assert {"vertical_class.V", "horizontal_class.V"} <= set(errors)
    assert_all_below(errors)
    # Both classes are in the batch: every row of both V gets a gradient, so no check
    # above passed by comparing zero with zero.
    assert all(np.all(np.abs(layer.grads[name]).sum(axis=1) > 0)
               for name in ("vertical_class.V", "horizontal_class.V"))


def test_a_conditional_model_and_its_loss_give_the_right_gradient_for_every_parameter(rng):
    model = conditional_gated(classes=3, layers=2, channels=2, head=3, levels=3, seed=2)
    errors = check_model_and_loss(model, rng.integers(0, 3, (3, 4, 5)), labels=np.array([2, 0, 1]))
    assert set(errors) == set(model.params) and class_bias_names(2) <= set(errors)
    assert_all_below(errors)
    # Every parameter is live: the last layer, whose vertical stack nothing reads, has no
    # vertical class bias (it could not change the outputs), and every gradient is nonzero.
    assert "layers.1.vertical_class.V" not in model.params
    assert all(np.any(g != 0) for g in model.grads.values())


# ------------------------------------------------------------------ what the condition does


def test_a_new_conditional_model_is_its_unconditional_twin_until_v_moves():
    """V starts at zero and draws nothing from the seed: every other parameter is the twin's,
    and so is every output, whatever the labels."""
    settings = dict(levels=4, channels=3, layers=3, head=8, seed=7)
    conditional = npc.GatedPixelCNN(classes=5, **settings)
    twin = npc.GatedPixelCNN(**settings)
    assert conditional.classes == 5 and twin.classes is None
    assert set(conditional.params) - set(twin.params) == class_bias_names(3)
    for name, value in twin.params.items():
        np.testing.assert_array_equal(conditional.params[name], value, err_msg=name)
    for name in class_bias_names(3):
        assert np.all(conditional.params[name] == 0), name
    x = (np.random.default_rng(0).integers(0, 4, (4, 6, 7, 1)) / 3).astype(np.float32)
    plain = twin.forward(x)
    for labels in ([0, 1, 2, 3], [4, 4, 4, 4]):
        np.testing.assert_array_equal(conditional.forward(x, np.array(labels)), plain)
    # Once V moves, the labels matter: the same images with other labels get other outputs.
    for name in class_bias_names(3):
        conditional.params[name][...] = np.random.default_rng(1).standard_normal(conditional.params[name].shape)
    a = conditional.forward(x, np.array([0, 1, 2, 3]))
    b = conditional.forward(x, np.array([1, 2, 3, 4]))
    assert np.all(np.abs(a - b).max(axis=(1, 2, 3)) > 1e-3)


def test_the_label_of_an_image_steers_every_pixel_of_that_image_and_no_other():
    model = conditional_gated(classes=3, layers=3, channels=4, head=16)   # wide enough that no pixel's head is all off
    x = np.random.default_rng(3).integers(0, 4, (3, 6, 7, 1)) / 3
    labels = np.array([0, 1, 2])
    before = model.forward(x, labels)
    labels[1] = 0
    after = model.forward(x, labels)
    change = np.abs(after - before).max(axis=-1)                   # (N, H, W)
    assert np.all(change[[0, 2]] < ROUNDING), "another image's label moved these outputs"
    # A global condition: every pixel of image 1 moves, the first included (it sees no pixel).
    assert np.all(change[1] > 1e-4), f"pixels of image 1 its label does not reach: {np.argwhere(change[1] <= 1e-4)}"


@pytest.mark.parametrize("dilations", [None, [1, 2, 1]])
def test_with_labels_the_outputs_at_a_pixel_never_change_with_that_pixel_or_a_later_one(dilations):
    """Perturb pixel p and every pixel after it in raster order: the outputs at p (and before)
    stay as they were, and the ones after p do move."""
    model = conditional_gated(classes=3, layers=3, dilations=dilations).eval()
    rng = np.random.default_rng(4)
    height, width = 7, 8
    x = rng.uniform(0, 1, (3, height, width, 1))
    labels = np.array([2, 0, 1])
    outputs = model.forward(x, labels)
    raster = np.arange(height * width).reshape(height, width)
    for i, j in [(0, 0), (2, 0), (3, 4), (6, 7)]:
        later = raster >= raster[i, j]
        x2 = x.copy()
        x2[:, later] = rng.uniform(0, 1, x2[:, later].shape)
        changed = np.abs(model.forward(x2, labels) - outputs).max(axis=(0, 3)) > ROUNDING
        assert not changed[raster <= raster[i, j]].any(), f"perturbing {(i, j)} and later moved an earlier output"
        assert changed[raster > raster[i, j]].any() or raster[i, j] == raster.max()
    # The labels are seen at the first pixel too: the test above was not run on a model that ignores them.
    moved = model.forward(x, (labels + 1) % 3)
    assert np.all(np.abs(moved - outputs)[:, 0, 0] > 1e-4)


# ------------------------------------------------------------------ training with labels


def labelled_images(n, seed, size=6):
    """Class k (of 3) is a bright band across rows 2k and 2k + 1 of a dark image: given its
    label an image is easy to predict; without it the band could be in any of three places."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = np.zeros((n, size, size), np.uint8)
    for image, label in zip(images, labels):
        image[2 * label:2 * label + 2] = rng.integers(2, 4, (2, size))
    return images, labels


@pytest.fixture(scope="module")
def data():
    """(train images, test images, train labels, test labels)."""
    (train, train_labels), (test, test_labels) = labelled_images(32, seed=0), labelled_images(12, seed=1)
    return train, test, train_labels, test_labels


def conditional_config(**overrides):
    settings = dict(arch="gated", levels=4, model=dict(channels=4, layers=2, head=8, classes=3), batch_size=8,
                    lr=1e-2, warmup_steps=2, total_steps=8, evals=2, seed=0)
    settings.update(overrides)
    return TrainConfig(**settings)


def conditional_trainer(data, config=None, **kwargs):
    train, test, train_labels, test_labels = data
    return Trainer(config or conditional_config(), train, test, train_labels=train_labels,
                   test_labels=test_labels, **kwargs)


def loss_and_gradients(model, x, levels, labels=None):
    """What Trainer.loss_and_gradients does, without the trainer."""
    loss, doutputs = npc.softmax_cross_entropy(model.forward(x, labels), levels)
    model.backward(doutputs)
    return loss


def test_data_parallel_gives_the_serial_loss_and_gradient_with_each_part_its_own_labels():
    """Three replicas on a batch of 5 (parts of 1, 2 and 2 images), each with its part of the
    labels: the weighted mean of their gradients is the whole batch's, to float64 rounding."""
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 4, (5, 6, 6))
    x, labels = levels[..., None] / 3.0, np.array([2, 0, 1, 1, 0])
    serial = conditional_gated(seed=1)
    serial_loss = loss_and_gradients(serial, x, levels, labels)
    model = conditional_gated(seed=1)
    parallel = data_parallel.DataParallel(model, workers=3)
    loss = parallel.mean_loss_and_gradients(loss_and_gradients, x, levels, labels)
    assert loss == pytest.approx(serial_loss, rel=1e-13)
    for name, grad in serial.grads.items():
        np.testing.assert_allclose(model.grads[name], grad, rtol=1e-10, atol=1e-14, err_msg=name)
    # Had the parts been given the wrong labels, the class biases' gradients would differ.
    other = conditional_gated(seed=1)
    loss_and_gradients(other, x, levels, labels[::-1].copy())
    assert not np.allclose(other.grads["layers.0.horizontal_class.V"], model.grads["layers.0.horizontal_class.V"])


def test_the_trainer_gives_the_same_step_serial_and_split_over_two_cores(data, monkeypatch):
    """Trainer(parallel=True) on two cores hands each replica its images' labels: the loss and
    gradients of the first step are the serial ones, to float32 rounding."""
    steps = {}
    for parallel, workers in ((False, 1), (True, 2)):
        monkeypatch.setattr(fast_ops, "WORKERS", workers)
        trainer = conditional_trainer(data, parallel=parallel)
        for i, name in enumerate(sorted(class_bias_names(2))):      # V random, so that the labels matter
            trainer.model.params[name][...] = np.random.default_rng(i).normal(0, 0.5, (3, 8))
        steps[parallel] = trainer.train_step(), {n: g.copy() for n, g in trainer.model.grads.items()}
        assert (trainer.model in data_parallel._data_parallel) == parallel      # the step was split
    (serial_loss, serial_grads), (split_loss, split_grads) = steps[False], steps[True]
    assert split_loss == pytest.approx(serial_loss, rel=1e-5)       # float32 rounding
    for name, grad in serial_grads.items():
        np.testing.assert_allclose(split_grads[name], grad, rtol=1e-3, atol=1e-5 * np.abs(grad).max(), err_msg=name)


def test_evaluation_gives_each_image_its_own_label_in_batches_of_any_size_and_split_over_cores(data, monkeypatch):
    _, test, _, test_labels = data
    model = conditional_gated(seed=2)
    whole = npc.evaluate(model, test, labels=test_labels, batch_size=len(test))
    x = npc.to_model_input(test, 4).astype(np.float64)
    assert whole == pytest.approx(npc.softmax_cross_entropy(model.forward(x, test_labels), test)[0], rel=1e-12)
    assert npc.evaluate(model, test, labels=test_labels, batch_size=5) == pytest.approx(whole, rel=1e-12)
    monkeypatch.setattr(fast_ops, "WORKERS", 2)
    assert npc.evaluate(model, test, labels=test_labels, batch_size=5, parallel=True) == pytest.approx(whole, rel=1e-12)
    assert npc.evaluate(model, test, labels=(test_labels + 1) % 3) != pytest.approx(whole, rel=1e-3)


def test_training_lowers_the_conditional_nll_and_the_history_reports_it(data):
    train, test, train_labels, test_labels = data
    trainer = conditional_trainer(data, conditional_config(total_steps=40, evals=2))
    before = npc.evaluate(trainer.model, test, labels=test_labels)
    state = trainer.run(progress=False)
    after = npc.evaluate(trainer.model, test, labels=test_labels)
    assert after < 0.6 * before
    # The model learned to use the labels: the test images are likelier given their own.
    assert after < npc.evaluate(trainer.model, test, labels=(test_labels + 1) % 3)
    tested = [h for h in state.history if h["test_bits"] is not None]
    assert [h["step"] for h in tested] == [20, 40]
    assert tested[-1]["test_bits"] == pytest.approx(npc.nats_to_bits(after), rel=1e-12)


def test_a_checkpoint_records_the_classes_and_the_labels_and_resumes_exactly(data, tmp_path):
    train, test, train_labels, test_labels = data
    straight = conditional_trainer(data)
    straight.run(progress=False)

    first = conditional_trainer(data)
    first.run(max_steps=5, progress=False)
    path = first.save(tmp_path / "half.npz")
    ckpt = npc.load_checkpoint(path)
    assert ckpt.model.classes == 3 and ckpt.model.config["classes"] == 3
    assert ckpt.meta["train"]["model"]["classes"] == 3
    # The labels' fingerprint: their count and the SHA-256 of their bytes as int64.
    assert ckpt.meta["data"]["train_labels"] == {
        "labels": 32, "sha256": hashlib.sha256(train_labels.astype(np.int64).tobytes()).hexdigest()}
    assert ckpt.meta["data"]["test_labels"] == labels_fingerprint(test_labels)
    resumed = Trainer.resume(path, train, test, train_labels=train_labels, test_labels=test_labels)
    assert resumed.state.step == 5 and resumed.model.classes == 3
    resumed.run(progress=False)

    assert resumed.state.step == straight.state.step == 8
    for name, p in straight.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], p, err_msg=name)
        np.testing.assert_array_equal(resumed.optimizer.m[name], straight.optimizer.m[name], err_msg=name)
    assert [h["test_bits"] for h in resumed.state.history if h["test_bits"]] == \
        [h["test_bits"] for h in straight.state.history if h["test_bits"]]


def test_a_resume_with_other_labels_or_none_is_refused(data, tmp_path):
    train, test, train_labels, test_labels = data
    trainer = conditional_trainer(data)
    trainer.run(max_steps=1, progress=False)
    path = trainer.save(tmp_path / "run.npz")
    shuffled = np.roll(train_labels, 1)                 # the same labels, out of step with the images
    with pytest.raises(OtherDataError, match="other labels"):
        Trainer.resume(path, train, test, train_labels=shuffled, test_labels=test_labels)
    with pytest.raises(OtherDataError, match="other labels"):
        Trainer.resume(path, train, test, train_labels=train_labels, test_labels=np.roll(test_labels, 1))
    with pytest.raises(ValueError, match="class-conditional"):
        Trainer.resume(path, train, test)
    # And an unconditional run's checkpoint takes no labels.
    plain = Trainer(conditional_config(model=dict(channels=4, layers=2, head=8)), train, test)
    plain.run(max_steps=1, progress=False)
    path = plain.save(tmp_path / "plain.npz")
    with pytest.raises(ValueError, match="no classes"):
        Trainer.resume(path, train, test, train_labels=train_labels, test_labels=test_labels)


# ------------------------------------------------------------------ every mistake a user can make


@pytest.mark.parametrize("labels, error, message", [
    (None, ValueError, r"class-conditional \(3 classes\)"),
    ([0, 1], ValueError, r"one label per image, shape \(3,\), got shape \(2,\)"),
    ([[0], [1], [2]], ValueError, r"shape \(3,\), got shape \(3, 1\)"),
    (1, ValueError, "single value"),
    ([0.0, 1.0, 2.0], TypeError, "integers"),
    ([True, False, True], TypeError, "integers"),
    ([0, 1, 3], ValueError, r"in \[0, 3\).*from 0 to 3"),
    ([0, -1, 2], ValueError, r"in \[0, 3\).*from -1 to 2"),
], ids=["none", "too-few", "2-D", "scalar", "floats", "bools", "too-large", "negative"])
def test_labels_a_conditional_model_cannot_use_are_refused(labels, error, message):
    model = conditional_gated(classes=3)
    x = np.zeros((3, 4, 4, 1))
    with pytest.raises(error, match=message):
        model.forward(x, labels)
    with pytest.raises(error, match=message):
        npc.evaluate(model, np.zeros((3, 4, 4), int), labels=labels)
    with pytest.raises(error, match=message):
        check_labels(labels, 3, 3, "here")


def test_labels_are_refused_by_a_model_without_classes_and_a_list_of_ints_is_taken():
    plain = npc.GatedPixelCNN(levels=4, channels=3, layers=2, head=8, seed=0)
    x = np.zeros((2, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="no classes"):
        plain.forward(x, np.array([0, 1]))
    with pytest.raises(ValueError, match="no classes"):
        npc.evaluate(plain, np.zeros((2, 4, 4), int), labels=[0, 1])
    conditional = npc.GatedPixelCNN(levels=4, channels=3, layers=2, head=8, classes=2, seed=0)
    np.testing.assert_array_equal(conditional.forward(x, [0, 1]), conditional.forward(x, np.array([0, 1])))


def test_a_trainer_refuses_missing_or_unwanted_labels(data):
    train, test, train_labels, test_labels = data
    with pytest.raises(ValueError, match=r"Trainer \(train_labels\).*class-conditional"):
        Trainer(conditional_config(), train, test)
    with pytest.raises(ValueError, match=r"Trainer \(test_labels\).*shape \(12,\)"):
        Trainer(conditional_config(), train, test, train_labels=train_labels, test_labels=test_labels[:5])
    with pytest.raises(ValueError, match=r"Trainer \(train_labels\).*no classes"):
        Trainer(conditional_config(model=dict(channels=4, layers=2, head=8)), train, test,
                train_labels=train_labels, test_labels=test_labels)


@pytest.mark.parametrize("classes", [1, 0, -3, True, 2.5, "10"])
def test_a_number_of_classes_no_model_can_use_is_refused(classes):
    with pytest.raises(ValueError, match="classes must be None .* or an int >= 2"):
        npc.GatedPixelCNN(levels=4, channels=3, layers=2, head=8, classes=classes)


def test_a_numpy_integer_number_of_classes_is_taken_and_recorded_as_a_python_int():
    """GatedPixelCNN(classes=labels.max() + 1) works: the config, which checkpoints keep as JSON,
    holds a Python int."""
    model = npc.GatedPixelCNN(levels=4, channels=3, layers=2, head=8, classes=np.int64(10))
    assert model.classes == 10 and type(model.config["classes"]) is int


def test_a_pixelcnn_has_no_classes_setting_and_the_config_check_names_it():
    with pytest.raises(ValueError, match=r"'pixelcnn' has no settings \['classes'\]"):
        check_train_config(TrainConfig(arch="pixelcnn", model={"classes": 10}))
