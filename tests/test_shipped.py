"""The checkpoints shipped in checkpoints/: they load, are causal, see what their
architecture promises, and the cached sampler reproduces their forward pass.

Each is a committed file, so none of these tests is ever skipped: a missing or
unreadable checkpoint is a failure.
"""

import inspect
import json
from pathlib import Path

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn.sampling import CachedPixelCNN, draw

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
# file stem -> (architecture, levels, classes, channels): channels 3 for a colour model of coloured MNIST
SHIPPED = {"pixelcnn_mnist4": ("pixelcnn", 4, None, 1), "gated_mnist4": ("gated", 4, None, 1),
           "pixelcnn_mnist256": ("pixelcnn", 256, None, 1), "gated_mnist256": ("gated", 256, None, 1),
           "pixelcnn_mnist256_dilated": ("pixelcnn", 256, None, 1),
           "gated_mnist4_conditional": ("gated", 4, 10, 1),
           "gated_colour_mnist4": ("gated", 4, None, 3)}
SIZE = 28
# How far float32 rounding alone moves a logit when later pixels change (other values in the
# same batched products): within 1e-5 at 4 levels. At 256 levels the logits are larger, and in
# the batches of the perturbation test below the 256-level PixelCNN's (up to 25 against 10)
# moved by at most 1.1e-5, at (26, 27); the gated model's (up to 16) by at most 4.8e-6, at (0, 0).
# A pixel that is read moves them by more than 1e-3 (checked below), so either bound still
# tells the two apart.
ROUNDING = {4: 1e-5, 256: 3e-5}


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def shipped(request):
    """(name, model in eval mode, its metrics.json) of one shipped checkpoint."""
    name = request.param
    model = npc.load_checkpoint(CHECKPOINTS / f"{name}.npz").model.eval()
    metrics = json.loads((CHECKPOINTS / f"{name}_metrics.json").read_text())
    return name, model, metrics


@pytest.fixture(scope="module")
def test_set(mnist_dir, shipped):
    """The first 64 images of the committed MNIST test subset, at the model's levels, (64, 28, 28)
    (coloured MNIST's (64, 28, 28, 3) for a colour model), and the labels to give the model with
    them: their digits (64,) for a conditional model, else None."""
    _, model, _ = shipped
    load = npc.load_mnist if model.in_channels == 1 else npc.load_coloured_mnist
    images, digits = load("test", data_dir=mnist_dir, progress=False)
    labels = None if model.classes is None else digits[:64].astype(np.intp)
    return npc.quantize(images[:64], model.levels), labels


def given(labels, rows):
    """The labels of the chosen images, as the last argument of forward, or nothing at all."""
    return () if labels is None else (labels[rows],)


def test_the_checkpoint_is_the_run_its_metrics_describe(shipped):
    name, model, metrics = shipped
    assert (model.arch, model.levels, model.classes, model.in_channels) == SHIPPED[name]
    # The first four metrics were written by version 1 of the checkpoint format, under the settings' names of then.
    earlier_name = {new: old for old, new in type(model).renamed_settings.items()}
    # Later ones keep the model's settings apart, under "model" (TrainConfig.model), and levels beside them.
    config = {**metrics["config"], **metrics["config"].get("model", {})}
    # A setting the run left to the architecture (a colour run's channel_order) is its default.
    defaults = {key: p.default for key, p in inspect.signature(type(model)).parameters.items()}
    for key, value in model.config.items():
        saved = (config[key] if key in config else config[earlier_name[key]] if key in earlier_name
                 else defaults[key])
        assert saved == value, f"{name}: {key} is {value} in the file, {saved} in its metrics"
    for picture in ("curve", "samples", "completions"):
        assert (CHECKPOINTS / f"{name}_{picture}.png").stat().st_size > 1000


def test_its_nll_on_real_test_images_is_near_the_reported_figure(shipped, test_set):
    # The committed subset is the first 1,000 test images; 64 of them are a rough sample
    # of the full test set, but a wrongly loaded model is far off (a uniform guess is
    # log2(levels) bits: 2 at 4 levels, 8 at 256).
    # Images differ more in bits/dim at 256 levels (a 40-minute model: 1.001 on these 64,
    # 1.062 on all 10,000), so the tolerance grows with the ceiling: 0.03 at 4 levels, 0.12 at 256.
    _, model, metrics = shipped
    images, labels = test_set
    bits = npc.nats_to_bits(npc.evaluate(model, images, labels=labels))
    assert abs(bits - metrics["metrics"]["test_bits_per_dim"]) < 0.015 * np.log2(model.levels), bits


def sub_pixels(images):
    """(N, H, W) grey or (N, H, W, C) colour levels as (N, H, W, C): a view, C = 1 for grey."""
    return images[..., None] if images.ndim == 3 else images


def outputs_per_sub_pixel(model, images, labels):
    """The model's outputs (N, H, W, C, P) for (N, H, W, C) levels: grey's logits get C = 1."""
    x = images[..., 0] if model.in_channels == 1 else images
    outputs = model.forward(npc.to_model_input(x, model.levels), *labels)
    return outputs.reshape(images.shape + (-1,))


def test_no_logit_changes_when_the_sub_pixel_itself_or_a_later_one_changes(shipped, test_set):
    """Perturbation on real images, sub-pixel by sub-pixel (a grey pixel is one sub-pixel; a
    colour one R, G, B, in that order, after every sub-pixel of the pixels before it). For a few
    pixels p and each sub-pixel c of p: change each sub-pixel at or after (p, c) on p's row
    alone (and on the next row too, for grey), 40 random later ones alone, and all of them at
    once (4 random fills); the outputs of (p, c) stay put. Changing the sub-pixel just before
    (p, c) does move them (the last one of the previous pixel, or in colour the sub-pixel c - 1
    of p itself: a trained colour model's G and B read R, and B reads G), so the comparison can
    see an influence when there is one."""
    _, model, _ = shipped
    levels = model.levels
    rng = np.random.default_rng(0)
    images, labels = test_set
    image = sub_pixels(images)[7]                                   # (H, W, C)
    channels = image.shape[-1]
    order = np.arange(image.size).reshape(image.shape)              # raster order of the sub-pixels
    # The next row too for grey; colour has three times as many sub-pixels per row, and its row is enough.
    rows_near = 1 if channels == 1 else 0
    for i, j in [(0, 0), (5, 20), (14, 14), (26, 27)]:
        for c in range(channels):
            here = order[i, j, c]
            later = np.argwhere(order >= here)                      # (K, 3): (row, column, channel)
            near = later[later[:, 0] <= i + rows_near]
            far = later[later[:, 0] > i + rows_near]
            far = far[rng.choice(len(far), min(40, len(far)), replace=False)] if len(far) else far
            batch = [image]
            for q in np.concatenate([near, far]):
                copy = image.copy()
                copy[tuple(q)] = (copy[tuple(q)] + rng.integers(1, levels)) % levels      # another level
                batch.append(copy)
            for _ in range(4):
                copy = image.copy()
                copy[order >= here] = rng.integers(0, levels, len(later))
                batch.append(copy)
            if here > 0:
                before = image.copy()
                q = np.unravel_index(here - 1, image.shape)
                before[q] = levels - 1 - before[q]                  # 0 <-> L - 1, 1 <-> L - 2, ...
                batch.append(before)
            outputs = outputs_per_sub_pixel(model, np.stack(batch), given(labels, np.full(len(batch), 7)))[:, i, j, c]
            unchanged = outputs[1:len(batch) - (here > 0)]
            assert np.abs(unchanged - outputs[0]).max() < ROUNDING[levels], \
                f"a sub-pixel at or after {(i, j, c)} moved the outputs of sub-pixel {c} at {(i, j)}"
            if (i, j) != (0, 0):            # see the next test for (0, 0)
                assert np.abs(outputs[-1] - outputs[0]).max() > 1e-3, \
                    f"the sub-pixel before {(i, j, c)} should matter"


def reads(model, image, i, j, labels=(), c=0):
    """bool (28, 28, C): the sub-pixels with a nonzero gradient of (w . outputs of sub-pixel c
    at (i, j)), w random; image (28, 28) grey (C = 1) or (28, 28, 3) colour. Every other
    sub-pixel has an exactly zero gradient: no path of the network connects it to (i, j, c).
    ``labels``: () for a model without classes, else (the image's label (1,),)."""
    model.train()
    try:
        outputs = model.forward(npc.to_model_input(image[None], model.levels), *labels)
        per_sub_pixel = outputs.reshape(outputs.shape[:3] + (model.in_channels, -1))
        douts = np.zeros_like(per_sub_pixel)
        douts[0, i, j, c] = np.random.default_rng(0).standard_normal(per_sub_pixel.shape[-1])
        dx = model.backward(douts.reshape(outputs.shape))[0]
        return dx.reshape(dx.shape[:2] + (model.in_channels,)) != 0
    finally:
        model.eval()


def test_the_gradient_reaches_no_later_pixel_and_the_gated_model_has_no_blind_spot(shipped, test_set):
    name, model, _ = shipped
    images, labels = test_set
    i, j = 14, 14
    seen = reads(model, images[3], i, j, given(labels, [3])).any(axis=-1)   # the first sub-pixel's: any channel
    raster = np.arange(SIZE * SIZE).reshape(SIZE, SIZE)
    assert not seen[raster >= raster[i, j]].any(), f"{name}: a pixel at or after {(i, j)} is read"
    # Earlier in raster order, up and to the right: the wedge that stacked masked
    # 3x3 convolutions after a 7x7 mask A cannot reach (rows i-1 and i-2 are seen up
    # to 3 and 4 columns to the right, tests/test_causality.py).
    wedge = [(i - 1, c) for c in range(j + 4, j + 11)] + [(i - 2, c) for c in range(j + 5, j + 11)]
    if model.arch == "pixelcnn":
        assert not any(seen[q] for q in wedge), f"{name}: the blind spot should be blind"
        assert seen[i - 1, j + 3] and seen[i - 2, j + 4]
    else:
        # L gated layers of kernel 2p + 1 reach pL + 1 rows above, pL columns either
        # side, and pL pixels to the left on row i: the wedge included.
        reach = model.config["layers"] * (model.config["kernel_size"] // 2)       # pL
        expected = np.zeros_like(seen)
        expected[max(i - reach - 1, 0):i, max(j - reach, 0):j + reach + 1] = True
        expected[i, max(j - reach, 0):j] = True
        assert all(seen[q] for q in wedge)
        np.testing.assert_array_equal(seen, expected)


def test_cached_logits_match_the_forward_pass(shipped):
    """The fast cached sampler, driven by hand pixel by pixel (and in colour sub-pixel by
    sub-pixel, R, G, B, each drawn before the next is asked for), gives the forward pass's
    outputs of the image it drew."""
    _, model, _ = shipped
    labels = None if model.classes is None else np.array([3, 8], np.intp)
    net = CachedPixelCNN(model, 2, (SIZE, SIZE), labels=labels)
    rng = np.random.default_rng(0)
    channels = model.in_channels
    images = np.zeros((2, SIZE, SIZE, channels), np.uint8)
    outputs = np.zeros((2, SIZE, SIZE, channels, model.output.channels), model.dtype)
    for i, j in np.ndindex(SIZE, SIZE):                 # raster order
        for c in range(channels):
            outputs[:, i, j, c] = net.outputs_at(i, j, sub_pixel=c)          # round c: sub-pixel c's (2, P)
            images[:, i, j, c] = draw(outputs[:, i, j, c], 1.0, rng)
            net.set_pixel(i, j, images[:, i, j])
    full = outputs_per_sub_pixel(model, images, given(labels, slice(None)))
    np.testing.assert_allclose(outputs, full, atol=1e-4, rtol=0)


COLOUR = sorted(name for name, (_, _, _, channels) in SHIPPED.items() if channels > 1)


@pytest.mark.parametrize("name", COLOUR)
def test_a_colour_model_reads_exactly_the_earlier_sub_pixels_of_its_own_pixel(name, mnist_dir):
    """At its own pixel, sub-pixel c's outputs have a nonzero gradient for the sub-pixels before
    c and for no other: the trained R reads nothing of its pixel, G reads R, B reads R and G.
    Nothing at or after the pixel beyond those is ever read.

    Except at (0, 0), where the shipped model's B does not read G (an exact zero, float64 too):
    there the head's B units are all off (ReLU) on these test images, and B's outputs read the
    head's R and G units, which carry R but not G (G's group is the only one that reads G). So
    at (0, 0) only "nothing later is read" is asserted."""
    model = npc.load_checkpoint(CHECKPOINTS / f"{name}.npz").model.eval()
    images, _ = npc.load_coloured_mnist("test", data_dir=mnist_dir, progress=False)
    image = npc.quantize(images[3], model.levels)
    for i, j in [(0, 0), (0, 5), (14, 14), (20, 10), (27, 27)]:
        for c in range(3):
            seen = reads(model, image, i, j, c=c)
            assert not (seen[i, j] & (np.arange(3) >= c)).any(), f"{name}: sub-pixel {c} at {(i, j)} reads itself or later"
            assert not seen.reshape(-1)[(i * SIZE + j + 1) * 3:].any(), f"{name}: a pixel after {(i, j)} is read"
            if (i, j) != (0, 0):
                np.testing.assert_array_equal(seen[i, j], np.arange(3) < c, err_msg=f"{name}: sub-pixel {c} at {(i, j)}")


def test_a_conditional_model_reads_its_label_and_classifies_real_digits(mnist_dir):
    """The shipped conditional model's likelihood depends on the label it is given: by Bayes'
    rule it names the digit of real test images (the issue asks >= 98% of all 10,000; on these
    64 a model that ignored its labels would be right about 1 time in 10)."""
    conditional = [name for name, (_, _, classes, _) in SHIPPED.items() if classes]
    assert conditional, "a conditional model is shipped"
    for name in conditional:
        model = npc.load_checkpoint(CHECKPOINTS / f"{name}.npz").model.eval()
        images, digits = npc.load_mnist("test", data_dir=mnist_dir, progress=False)
        images, digits = npc.quantize(images[:64], model.levels), digits[:64]
        predicted = npc.classify(model, images).argmax(axis=1)
        assert np.mean(predicted == digits) >= 0.95, f"{name}: {np.mean(predicted == digits):.1%} right"
