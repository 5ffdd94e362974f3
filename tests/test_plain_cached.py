"""The plain cached sampler, the fast one and the naive loop: three ways to one result.

Claims tested here, for every architecture of the family (the PixelCNN, the
Gated PixelCNN with kernels 3 and 5, and the test architectures of
tests/test_contract.py):

* at every pixel, the plain and the fast cached samplers give the logits of one
  full forward pass (float64, within 1e-12);
* for one seed, ``sample`` and ``complete`` give the same images with all three
  methods, because they consume the random generator alike;
* the plain sampler refuses what it cannot compute with the fast one's errors;
* the step tables are filled by the step classes themselves, where they are
  defined, and every step base class documents its defaults.
"""

import ast
import inspect

import numpy as np
import pytest
from conftest import outputs_pixel_by_pixel, randomize, tiny_pixelcnn
from test_contract import Doubler, NestedNet, SeesItself, TinyCausalNet
from test_gated import tiny_gated

import npixelcnn as npc
from npixelcnn import (cached_sampler, gated_steps, pixel_steps, plain_sampler, plain_steps, sampling,
                       steps)
from npixelcnn.distributions import SoftmaxOutput
from npixelcnn.gated import GatedLayer, TakeHorizontal
from npixelcnn.layers import Conv2D, ReLU
from npixelcnn.sampling import METHODS, CachedPixelCNN, PlainCachedPixelCNN, complete, sample
from npixelcnn.steps import FastStep, PixelStep, PlainStep

SHAPE = (6, 7)
SAMPLERS = [PlainCachedPixelCNN, CachedPixelCNN]

ARCHITECTURES = {
    "pixelcnn": lambda: tiny_pixelcnn(levels=4, seed=0),
    "gated-k3": lambda: tiny_gated(3, kernel_size=3),
    "gated-k5": lambda: tiny_gated(2, kernel_size=5),
    "test-tiny": lambda: randomize(TinyCausalNet(seed=0)),
    "test-nested": lambda: randomize(NestedNet(seed=0)),
}


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def model(request):
    """A float64 model with random weights and biases, masks respected."""
    return ARCHITECTURES[request.param]()


def random_levels(model, n, seed=0):
    return np.random.default_rng(seed).integers(0, model.levels, (n,) + SHAPE)


def mid_row_mask(seed=0):
    """A boolean mask (H, W), True = visible: the first hidden pixel mid-row, visible pixels after it."""
    mask = np.random.default_rng(seed).random(SHAPE) < 0.5
    mask[:2] = True
    mask[2, :4] = True
    mask[2, 4] = False
    return mask


# --------------------------------------------------------------------------- same logits


def test_plain_and_fast_give_the_logits_of_one_forward_pass_at_every_pixel(model):
    """The model is causal, so one forward pass over the finished images gives the logits that
    each pixel had when the pixels before it were all there was."""
    images = random_levels(model, 3, seed=2)
    full = model.eval().forward(npc.to_model_input(images, model.levels).astype(np.float64))
    plain = outputs_pixel_by_pixel(PlainCachedPixelCNN, model, images)
    fast = outputs_pixel_by_pixel(CachedPixelCNN, model, images)
    np.testing.assert_allclose(plain, full, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast, full, rtol=0, atol=1e-12)
    np.testing.assert_allclose(plain, fast, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["pixelcnn", "gated-k3"])
def test_in_float32_plain_and_fast_agree_to_float32_rounding(name):
    model = ARCHITECTURES[name]().astype(np.float32)
    images = random_levels(model, 3, seed=4)
    full = model.eval().forward(npc.to_model_input(images, model.levels))
    plain = outputs_pixel_by_pixel(PlainCachedPixelCNN, model, images)
    assert PlainCachedPixelCNN(model, 3, SHAPE).outputs_at(0, 0).dtype == np.float32
    np.testing.assert_allclose(plain, full, rtol=0, atol=1e-4)
    np.testing.assert_allclose(plain, outputs_pixel_by_pixel(CachedPixelCNN, model, images), rtol=0, atol=1e-4)


# --------------------------------------------------------------------------- same images


def test_every_method_samples_the_same_images(model):
    """float64: the methods' logits differ by ~1e-15, so a uniform draw would have to land
    that close to a class boundary to pick another level."""
    images = {method: sample(model, 4, SHAPE, seed=7, method=method) for method in METHODS}
    for method in METHODS:
        np.testing.assert_array_equal(images[method], images["naive"], err_msg=method)
    assert len(np.unique(images["naive"])) > 1


@pytest.mark.parametrize("visible", [3, "mask", "per_image"])
def test_every_method_completes_the_same_way(model, visible):
    images = random_levels(model, 2, seed=5)
    if visible == "mask":
        visible = mid_row_mask()
    elif visible == "per_image":
        visible = np.random.default_rng(6).random((2,) + SHAPE) < 0.6
    done = {method: complete(model, images, visible, n_samples=2, seed=3, method=method) for method in METHODS}
    for method in METHODS:
        np.testing.assert_array_equal(done[method], done["naive"], err_msg=method)
    kept = np.broadcast_to(visible if not isinstance(visible, int) else np.arange(SHAPE[0])[:, None] < visible,
                           images.shape)
    for s in range(2):
        np.testing.assert_array_equal(done["plain-cached"][:, s][kept], images[kept])


def test_every_method_consumes_the_random_generator_alike(monkeypatch):
    """One rng.random(B) per pixel that is hidden somewhere, in raster order, for every method:
    the generator's state before each draw is the same sequence."""
    model = ARCHITECTURES["test-tiny"]()
    images, mask = random_levels(model, 2, seed=1), mid_row_mask(seed=1)
    real_draw = SoftmaxOutput.draw
    states = {}
    for method in METHODS:
        seen = states[method] = []

        def recording_draw(output, logits, temperature, rng, earlier=None, seen=seen):
            seen.append(rng.bit_generator.state["state"]["state"])
            return real_draw(output, logits, temperature, rng, earlier=earlier)
        monkeypatch.setattr(SoftmaxOutput, "draw", recording_draw)
        complete(model, images, mask, seed=9, method=method)
    assert len(states["naive"]) == (~mask).sum()
    assert states["plain-cached"] == states["cached"] == states["naive"]


def test_the_command_line_samples_with_the_plain_sampler(tmp_path):
    from npixelcnn import cli
    model = TinyCausalNet(levels=4, seed=0)
    path = npc.save_checkpoint(model, tmp_path / "tiny.npz")
    assert cli.main(["sample", "--checkpoint", str(path), "--n", "2", "--method", "plain-cached", "--seed", "3",
                     "--no-progress", "--out", str(tmp_path / "s.png")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"),
                                  sample(model, 2, (28, 28), seed=3, method="plain-cached"))


# --------------------------------------------------------------------------- nothing read before it is written


class GarbagePlain(PlainCachedPixelCNN):
    """A plain sampler whose kept images start full of random values (the padding stays zero)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rng = np.random.default_rng(123)
        for image in self.inputs:
            image[...] = rng.uniform(-3, 3, image.shape)


@pytest.mark.parametrize("name", ["pixelcnn", "gated-k3"])
def test_the_plain_sampler_never_reads_a_pixel_it_has_not_produced(name, monkeypatch):
    model = ARCHITECTURES[name]()
    # The garbage would be noticed: at the start of the last row, the logits read the rows above.
    clean_logits = PlainCachedPixelCNN(model, 2, SHAPE).outputs_at(SHAPE[0] - 1, 0)
    assert np.abs(GarbagePlain(model, 2, SHAPE).outputs_at(SHAPE[0] - 1, 0) - clean_logits).max() > 1e-3
    images, mask = random_levels(model, 2, seed=3), mid_row_mask(seed=3)
    clean = [sample(model, 2, SHAPE, seed=11, method="plain-cached"),
             complete(model, images, mask, seed=11, method="plain-cached")]
    monkeypatch.setattr(sampling, "PlainCachedPixelCNN", GarbagePlain)
    np.testing.assert_array_equal(sample(model, 2, SHAPE, seed=11, method="plain-cached"), clean[0])
    np.testing.assert_array_equal(complete(model, images, mask, seed=11, method="plain-cached"), clean[1])


# --------------------------------------------------------------------------- what both refuse


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("first, message", [
    (npc.MaskedConv2D(1, 2, 3, "B", rng=0), "must be a convolution that does not read the pixel it predicts"),
    (npc.Conv2D(1, 2, 1, rng=0), "must be a convolution that does not read the pixel it predicts"),
    (npc.Conv2D(1, 2, 3, rng=0), r"reads pixels after the one it computes"),
])
def test_both_samplers_refuse_a_model_that_is_not_causal(sampler, first, message):
    with pytest.raises(ValueError, match=f"{sampler.__name__}: .*{message}"):
        sampler(SeesItself(first), 1, SHAPE)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_both_samplers_name_a_layer_they_cannot_step(sampler):
    model = SeesItself(npc.MaskedConv2D(1, 2, 3, "A", rng=0))
    model.add("double", Doubler())
    with pytest.raises(TypeError, match=f"{sampler.__name__} cannot compute a Doubler one pixel at a time"):
        sampler(model, 1, SHAPE)


@pytest.mark.parametrize("not_a_model", [npc.ResidualBlock(2), "model.npz", None])
def test_the_plain_sampler_refuses_what_is_not_a_model(not_a_model):
    with pytest.raises(TypeError, match="PlainCachedPixelCNN expects a PixelCNN"):
        PlainCachedPixelCNN(not_a_model, 1, SHAPE)


# --------------------------------------------------------------------------- the step protocol


@pytest.fixture
def own_registries(monkeypatch):
    """Registries of this test's own, so that the step classes a test defines do not outlive it."""
    monkeypatch.setattr(PlainStep, "registry", dict(PlainStep.registry))
    monkeypatch.setattr(FastStep, "registry", dict(FastStep.registry))


def test_a_step_class_registers_itself_for_a_new_layer_kind(own_registries):
    """A new kind of layer needs no table edited: a step class for it, in each flavour,
    and every sampler computes a model that contains it."""
    model = randomize(SeesItself(npc.MaskedConv2D(1, 2, 3, "A", rng=0)))
    model.add("double", Doubler())

    class DoublerStep(PlainStep, layer=Doubler):
        def at(self, x, i, j):
            return 2 * x

    class DoublerAt(FastStep, layer=Doubler):
        def at(self, x, i, j):
            y = x.copy()
            y[:, :-1] *= 2                          # the trailing column of ones stays 1
            return y

    assert PlainStep.registry[Doubler] is DoublerStep and FastStep.registry[Doubler] is DoublerAt
    images = {method: sample(model, 3, SHAPE, seed=2, method=method) for method in METHODS}
    for method in METHODS:
        np.testing.assert_array_equal(images[method], images["naive"], err_msg=method)


def test_a_layer_kind_gets_one_step_per_flavour_and_a_flavour_is_required(own_registries):
    with pytest.raises(ValueError, match="two plain steps for ReLU: ReLUStep and AnotherReLU"):
        class AnotherReLU(PlainStep, layer=ReLU):
            pass
    with pytest.raises(TypeError, match="as a subclass of PlainStep or FastStep"):
        class NoFlavour(PixelStep, layer=Doubler):
            pass


def test_the_registries_are_filled_where_the_steps_are_defined():
    """Each step class names its layer kind in its own class statement, in its own module; no
    module edits another's table (pixel_steps has no STEPS list any more)."""
    expected = {
        PlainStep: {Conv2D: plain_steps, ReLU: plain_steps, npc.Sequential: plain_steps,
                    npc.Residual: plain_steps, GatedLayer: gated_steps, TakeHorizontal: gated_steps},
        FastStep: {Conv2D: pixel_steps, ReLU: pixel_steps, npc.Sequential: pixel_steps,
                   npc.Residual: pixel_steps, GatedLayer: gated_steps, TakeHorizontal: gated_steps},
    }
    for flavour, kinds in expected.items():
        assert set(kinds) <= set(flavour.registry)
        for kind, module in kinds.items():
            step = flavour.registry[kind]
            assert step.__module__ == module.__name__, (kind, step)
            statement = inspect.getsource(step).splitlines()[0]
            assert f"layer={kind.__name__})" in statement, statement
    assert not hasattr(pixel_steps, "STEPS")
    for module in (steps, plain_steps, pixel_steps, gated_steps, plain_sampler, cached_sampler, sampling):
        source = inspect.getsource(module)
        assert "getattr(" not in source, f"{module.__name__} probes a step with getattr"
        assert ".registry[" not in source.replace("cls.registry[", ""), f"{module.__name__} edits a table"


def test_every_step_base_class_documents_what_a_step_provides():
    """The protocol lives on the base classes, each name with a default and a docstring:
    methods by their docstring, attributes by the string that follows them."""
    protocol = {PixelStep: ["at", "store_pixel", "compute", "condition", "reads_own_pixel", "inputs", "children"],
                PlainStep: [], FastStep: ["full", "in_place"]}
    for base, names in protocol.items():
        for name in names:
            assert name in vars(base), f"{base.__name__} defines no default for {name}"
    classes = {node.name: node for node in ast.parse(inspect.getsource(steps)).body
               if isinstance(node, ast.ClassDef)}
    for base in protocol:
        body = classes[base.__name__].body
        assert ast.get_docstring(classes[base.__name__]), base.__name__
        for k, statement in enumerate(body):
            if isinstance(statement, ast.FunctionDef) and not statement.name.startswith("__"):
                assert ast.get_docstring(statement), f"{base.__name__}.{statement.name} has no docstring"
            if isinstance(statement, ast.Assign):
                names = [t.id for target in statement.targets
                         for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
                inherited = all(any(name in vars(parent) for parent in base.__mro__[1:]) for name in names)
                documented = (k + 1 < len(body) and isinstance(body[k + 1], ast.Expr)
                              and isinstance(body[k + 1].value, ast.Constant)
                              and isinstance(body[k + 1].value.value, str))
                assert inherited or documented, f"{base.__name__}.{names} has no docstring"
