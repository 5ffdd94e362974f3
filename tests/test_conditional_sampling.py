"""Sampling and completion from a class-conditional model: every method draws from p(x | y).

Claims tested here, for a Gated PixelCNN with classes, undilated and dilated, whose class
biases are random (a new model's are zeros, under which the labels would change nothing):

* at every pixel, the plain and the fast cached samplers given the labels give the outputs
  of one forward pass with those labels (float64, within 1e-12), and other labels give
  other outputs: the labels reach every layer, on the first row too;
* for one seed and one set of labels, ``sample`` and ``complete`` give the same images with
  all three methods, and each image is drawn given its own label (for ``complete``, every
  completion of an image given that image's label);
* images drawn with other labels differ: the labels are used;
* a new conditional model (class biases zero) samples what its unconditional twin samples;
* labels missing for a conditional model, given to an unconditional one, of the wrong
  length, out of range or not integers are refused, with a clear message, by ``sample``,
  ``complete`` and both cached samplers.

An unconditional model's results are those of tests/test_sampling.py and
tests/test_plain_cached.py, unchanged.
"""

from functools import partial

import numpy as np
import pytest
from conftest import outputs_pixel_by_pixel, randomize
from test_plain_cached import SHAPE, mid_row_mask      # a mask whose first hidden pixel is mid-row

import npixelcnn as npc
from npixelcnn import sampling
from npixelcnn.sampling import METHODS, CachedPixelCNN, PlainCachedPixelCNN, complete, sample

CLASSES = 3
SAMPLERS = [PlainCachedPixelCNN, CachedPixelCNN]


def conditional_gated(dilations=None, seed=0):
    """A float64 Gated PixelCNN with CLASSES classes, every parameter random, the class biases
    V included, twice the others' scale so that a class moves the levels' probabilities by
    about a tenth (a new model's V are zeros, under which the labels would change nothing)."""
    model = randomize(npc.GatedPixelCNN(levels=4, channels=3, layers=3, kernel_size=3, head=6,
                                        dilations=dilations, classes=CLASSES, seed=seed), seed=seed + 1)
    rng = np.random.default_rng(seed + 2)
    class_biases = [name for name in model.params if name.endswith("_class.V")]
    assert len(class_biases) == 2 * 3 - 1               # both stacks of every layer, but the last
                                                        # layer's vertical one (nothing reads it)
    for name in class_biases:
        model.params[name][...] = 2 * rng.standard_normal(model.params[name].shape)
    return model


MODELS = {
    "gated": lambda: conditional_gated(),
    "gated-dilated": lambda: conditional_gated(dilations=[1, 3, 2]),
}


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    return MODELS[request.param]()


def random_levels(n, seed=0):
    return np.random.default_rng(seed).integers(0, 4, (n,) + SHAPE)


def model_input(images):
    return npc.to_model_input(images, 4).astype(np.float64)


# --------------------------------------------------------------------------- same outputs


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_the_cached_samplers_give_the_outputs_of_one_forward_pass_with_the_labels(model, sampler):
    """The class biases are the same at every pixel, so the model stays causal: one forward pass
    over the finished images, with their labels, gives what each pixel had when it was drawn."""
    images, labels = random_levels(4, seed=2), np.array([0, 2, 1, 2])
    full = model.eval().forward(model_input(images), labels)
    outputs = outputs_pixel_by_pixel(partial(sampler, labels=labels), model, images)
    np.testing.assert_allclose(outputs, full, rtol=0, atol=1e-12)
    # Every row, the first included (above it, the link is its bias and V_h[y]), reads the labels.
    other = model.forward(model_input(images), (labels + 1) % CLASSES)
    assert np.abs(outputs - other).max(axis=(0, 2, 3)).min() > 1e-3


def test_in_float32_the_fast_sampler_with_labels_agrees_to_float32_rounding():
    model = conditional_gated().astype(np.float32)
    images, labels = random_levels(3, seed=4), np.array([1, 0, 2])
    full = model.eval().forward(npc.to_model_input(images, 4), labels)
    for sampler in SAMPLERS:
        outputs = outputs_pixel_by_pixel(partial(sampler, labels=labels), model, images)
        assert outputs.dtype == np.float32
        np.testing.assert_allclose(outputs, full, rtol=0, atol=1e-4, err_msg=sampler.__name__)


# --------------------------------------------------------------------------- same images


def test_every_method_samples_the_same_images_for_the_same_seed_and_labels(model):
    """float64: the methods' logits differ by ~1e-15, so a uniform draw would have to land
    that close to a class boundary to pick another level."""
    labels = np.array([0, 1, 2, 1])
    images = {method: sample(model, 4, SHAPE, seed=7, method=method, labels=labels) for method in METHODS}
    for method in METHODS:
        np.testing.assert_array_equal(images[method], images["naive"], err_msg=method)
    assert len(np.unique(images["naive"])) > 1


@pytest.mark.parametrize("visible", [3, "mask", "per_image"])
def test_every_method_completes_the_same_way_with_the_labels(model, visible):
    images, labels = random_levels(3, seed=5), np.array([2, 0, 1])
    if visible == "mask":
        visible = mid_row_mask()
    elif visible == "per_image":
        visible = np.random.default_rng(6).random((3,) + SHAPE) < 0.6
    done = {method: complete(model, images, visible, n_samples=2, seed=3, method=method, labels=labels)
            for method in METHODS}
    for method in METHODS:
        np.testing.assert_array_equal(done[method], done["naive"], err_msg=method)
    kept = np.broadcast_to(visible if not isinstance(visible, int) else np.arange(SHAPE[0])[:, None] < visible,
                           images.shape)
    for s in range(2):
        np.testing.assert_array_equal(done["cached"][:, s][kept], images[kept])
    assert not np.array_equal(done["naive"][:, 0], done["naive"][:, 1])      # two completions, not one twice


@pytest.mark.parametrize("method", METHODS)
def test_each_image_is_drawn_given_its_own_label(model, method):
    """Image k takes the k-th uniform of each pixel's draw, whatever the others' labels: so with
    one seed, the image drawn for a label does not change when the other images' labels do.
    For ``complete``, each image's n_samples completions all get that image's label."""
    a, b = np.array([0, 1, 2]), np.array([2, 1, 0])
    drawn_a = sample(model, 3, SHAPE, seed=5, method=method, labels=a)
    drawn_b = sample(model, 3, SHAPE, seed=5, method=method, labels=b)
    np.testing.assert_array_equal(drawn_a[1], drawn_b[1])
    assert not np.array_equal(drawn_a[0], drawn_b[0])
    images = random_levels(3, seed=8)
    done_a = complete(model, images, 2, n_samples=2, seed=5, method=method, labels=a)
    done_b = complete(model, images, 2, n_samples=2, seed=5, method=method, labels=b)
    np.testing.assert_array_equal(done_a[1], done_b[1])
    assert not np.array_equal(done_a[0], done_b[0])


@pytest.mark.parametrize("method", METHODS)
def test_images_drawn_with_other_labels_differ(model, method):
    """With one seed the uniforms are the same, so images of two classes share many pixels,
    but every image changes somewhere."""
    drawn = [sample(model, 3, SHAPE, seed=11, method=method, labels=np.full(3, k)) for k in range(CLASSES)]
    for k in range(1, CLASSES):
        assert (drawn[k] != drawn[0]).any(axis=(1, 2)).all(), k
    images = random_levels(2, seed=9)
    done = [complete(model, images, 3, seed=11, method=method, labels=np.full(2, k)) for k in range(CLASSES)]
    for k in range(1, CLASSES):
        assert not np.array_equal(done[k], done[0]), k
        np.testing.assert_array_equal(done[k][:, 0, :3], done[0][:, 0, :3])     # the visible rows stay


def test_the_fast_sampler_prefills_with_its_own_labels_not_those_the_model_last_saw(model):
    """The fast sampler fills a completion's given rows with the model's own layers, whose class
    biases read the labels of the last forward pass: it must hand them its own first."""
    images, labels = random_levels(2, seed=3), np.array([1, 2])
    expected = complete(model, images, mid_row_mask(seed=2), seed=4, method="naive", labels=labels)
    model.eval().forward(model_input(images), (labels + 1) % CLASSES)              # other labels, same batch
    np.testing.assert_array_equal(
        complete(model, images, mid_row_mask(seed=2), seed=4, method="cached", labels=labels), expected)


def test_a_new_conditional_model_samples_what_its_unconditional_twin_samples():
    """A new model's class biases are zeros, and the class-bias layers draw no random numbers at
    construction: the same seed gives the same weights, and every method the same images."""
    twin = npc.GatedPixelCNN(levels=4, channels=3, layers=2, head=6, seed=0).astype(np.float64)
    conditional = npc.GatedPixelCNN(levels=4, channels=3, layers=2, head=6, classes=CLASSES,
                                    seed=0).astype(np.float64)
    images = random_levels(2, seed=1)
    for method in METHODS:
        np.testing.assert_array_equal(
            sample(conditional, 3, SHAPE, seed=2, method=method, labels=np.array([0, 1, 2])),
            sample(twin, 3, SHAPE, seed=2, method=method), err_msg=method)
        np.testing.assert_array_equal(
            complete(conditional, images, mid_row_mask(), n_samples=2, seed=2, method=method,
                     labels=np.array([2, 0])),
            complete(twin, images, mid_row_mask(), n_samples=2, seed=2, method=method), err_msg=method)


@pytest.mark.parametrize("method, name", [("plain-cached", "PlainCachedPixelCNN"), ("cached", "CachedPixelCNN")])
def test_the_samplers_never_read_an_input_they_have_not_written_with_labels(method, name, monkeypatch):
    model = conditional_gated()
    images, labels = random_levels(2, seed=3), np.array([2, 1])
    clean = [sample(model, 2, SHAPE, seed=11, method=method, labels=labels),
             complete(model, images, mid_row_mask(seed=3), seed=11, method=method, labels=labels)]
    real = getattr(sampling, name)

    class Garbage(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            rng = np.random.default_rng(123)
            for kept in self.inputs:
                kept[...] = rng.uniform(-3, 3, kept.shape)

    monkeypatch.setattr(sampling, name, Garbage)
    np.testing.assert_array_equal(sample(model, 2, SHAPE, seed=11, method=method, labels=labels), clean[0])
    np.testing.assert_array_equal(
        complete(model, images, mid_row_mask(seed=3), seed=11, method=method, labels=labels), clean[1])


# --------------------------------------------------------------------------- clear errors


def unconditional():
    return npc.GatedPixelCNN(levels=4, channels=3, layers=2, head=6, seed=0)


BAD_LABELS = [
    # (model, labels for 2 images, error, message)
    (conditional_gated, None, ValueError, r"this model is class-conditional \(3 classes\): give the labels"),
    (unconditional, [0, 1], ValueError, r"this model has no classes .* so it takes no labels"),
    (conditional_gated, [0, 1, 2], ValueError, r"expected one label per image, shape \(2,\), got shape \(3,\)"),
    (conditional_gated, [[0, 1]], ValueError, r"expected one label per image, shape \(2,\), got shape \(1, 2\)"),
    (conditional_gated, 1, ValueError, "labels must be an array with one label per image"),
    (conditional_gated, [0, 3], ValueError, r"labels must be in \[0, 3\) .* got values from 0 to 3"),
    (conditional_gated, [-1, 0], ValueError, r"labels must be in \[0, 3\) .* got values from -1 to 0"),
    (conditional_gated, [0.0, 1.0], TypeError, r"labels must be integers in \[0, 3\), got dtype float64"),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("build, labels, error, message", BAD_LABELS)
def test_sample_refuses_bad_labels_clearly(build, labels, error, message, method):
    with pytest.raises(error, match=f"^sample: {message}"):
        sample(build(), 2, SHAPE, seed=0, method=method, labels=labels)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("build, labels, error, message", BAD_LABELS)
def test_complete_refuses_bad_labels_clearly(build, labels, error, message, method):
    with pytest.raises(error, match=f"^complete: {message}"):
        complete(build(), random_levels(2), 3, seed=0, method=method, labels=labels)


def test_complete_takes_one_label_per_given_image_not_per_completion():
    """Each given image's label is repeated for its n_samples completions, as the image is."""
    expected = r"^complete: expected one label per image, shape \(2,\), got shape \(6,\)"
    with pytest.raises(ValueError, match=expected):
        complete(conditional_gated(), random_levels(2), 3, n_samples=3, labels=np.zeros(6, int))


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("build, labels, error, message", BAD_LABELS)
def test_both_samplers_refuse_bad_labels_clearly(sampler, build, labels, error, message):
    with pytest.raises(error, match=f"^{sampler.__name__}: {message}"):
        sampler(build(), 2, SHAPE, labels=labels)
