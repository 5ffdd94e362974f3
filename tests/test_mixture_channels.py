"""PixelCNN++'s channel coefficients (npixelcnn/mixture_channels.py): with ``channel_coefficients=True``
a colour mixture model moves the means of G by alpha x_R and of B by beta x_R + gamma x_G.

Claims tested here:

* the loss is the mixture's NLL at the shifted means, and its hand-written gradient matches
  central differences for every parameter, the coefficients included (unused slots get 0);
  so does the gradient of a whole small colour model, PixelCNN and Gated PixelCNN;
* each sub-pixel's L probabilities sum to 1 given the sub-pixels before it (and the 64 colours
  of a pixel at L = 4 to 1), and exp(log_probs) at the targets is exp(-pixel_nll);
* the distribution of sub-pixel c at pixel p moves with the sub-pixels before c at p and with
  nothing at p from c on;
* naive, plain-cached and cached sampling give the same images, and the draws follow the
  shifted means (a hand-set model whose G is R's value and whose B is G's);
* the setting is recorded only when True, rebuilds and round-trips through a checkpoint, and
  is refused where it has nothing to link.
"""

import math

import numpy as np
import pytest
from conftest import GRAD_TOL, randomize

import npixelcnn as npc
from npixelcnn import logistic_mixture as lm
from npixelcnn import mixture_channels as mc
from npixelcnn.distributions import ChannelMixtureOutput, LogisticMixtureOutput, output_distribution
from npixelcnn.gradcheck import check_model_and_loss, numerical_gradient, relative_error

C, K = 3, 2
P = 3 * K + (C - 1) * K                   # 10 numbers per sub-pixel
COEFFICIENTS = dict(output="logistic-mixture", components=K, in_channels=C, channel_coefficients=True)
SHAPE = (4, 4)


def random_params(rng, shape, components=K):
    """(shape..., C, P) float64: logits, means in [-1, 1], log-scales in [-2, 0], coefficients N(0, 1)."""
    k = components
    return np.concatenate([rng.standard_normal(shape + (C, k)), rng.uniform(-1, 1, shape + (C, k)),
                           rng.uniform(-2, 0, shape + (C, k)), rng.standard_normal(shape + (C, (C - 1) * k))],
                          axis=-1)


def small_model(arch, levels=16, seed=0, **settings):
    settings = {**COEFFICIENTS, **settings}
    if arch == "pixelcnn":
        model = npc.PixelCNN(levels=levels, hidden=3, blocks=1, head=6, seed=seed, **settings)
    else:
        model = npc.GatedPixelCNN(levels=levels, channels=3, layers=2, head=6, seed=seed, **settings)
    return randomize(model, seed=seed)                      # float64, random weights, masks kept


def model_input(images, levels):
    """Levels (N, H, W, C) -> the float64 input of a float64 model."""
    return npc.to_model_input(images, levels).astype(np.float64)


def random_images(levels, n=2, seed=0):
    return np.random.default_rng(seed).integers(0, levels, (n,) + SHAPE + (C,))


# --------------------------------------------------------------------------- the loss


def test_the_means_move_by_the_coefficients_times_the_earlier_values():
    """mu'_G = mu_G + tanh(r_G,0) x_R, mu'_B = mu_B + tanh(r_B,0) x_R + tanh(r_B,1) x_G, R unmoved:
    the NLL is the plain mixture's at those means."""
    rng = np.random.default_rng(0)
    levels = 8
    params = random_params(rng, (5,))
    targets = rng.integers(0, levels, (5, C))
    x = 2 * targets / (levels - 1) - 1
    coef = np.tanh(params[..., 3 * K:])                                   # (5, C, 2K)
    shifted = params[..., :3 * K].copy()
    shifted[:, 1, K:2 * K] += coef[:, 1, :K] * x[:, :1]
    shifted[:, 2, K:2 * K] += coef[:, 2, :K] * x[:, :1] + coef[:, 2, K:] * x[:, 1:2]
    np.testing.assert_allclose(mc.channel_nll(params, targets, levels, K), lm.mixture_nll(shifted, targets, levels),
                               rtol=1e-13)


@pytest.mark.parametrize("levels", [4, 256])
def test_the_loss_gradient_matches_central_differences_for_every_parameter(levels):
    rng = np.random.default_rng(1)
    params = random_params(rng, (2, 3))
    targets = rng.integers(0, levels, (2, 3, C))
    targets[0, 0] = [0, levels - 1, levels // 2]                          # both edge bins and an inner one
    _, analytic = mc.channel_loss(params, targets, levels, K)
    numeric = numerical_gradient(lambda: mc.channel_loss(params, targets, levels, K)[0], params)
    for kind, part in (("logits", slice(0, K)), ("means", slice(K, 2 * K)), ("log-scales", slice(2 * K, 3 * K)),
                       ("coefficients", slice(3 * K, P))):
        assert relative_error(analytic[..., part], numeric[..., part]) < GRAD_TOL, kind
    # R reads no coefficient, G only block 0: their other slots have no gradient at all.
    assert not analytic[..., 0, 3 * K:].any() and not analytic[..., 1, 4 * K:].any()
    assert np.abs(analytic[..., 2, 3 * K:]).min() > 0


def test_float32_outputs_give_a_float32_gradient_and_the_float64_loss():
    rng = np.random.default_rng(2)
    params = random_params(rng, (4,))
    targets = rng.integers(0, 16, (4, C))
    loss64, grad64 = mc.channel_loss(params, targets, 16, K)
    loss32, grad32 = mc.channel_loss(params.astype(np.float32), targets, 16, K)
    assert grad32.dtype == np.float32 and math.isclose(loss32, loss64, rel_tol=1e-6)
    np.testing.assert_allclose(grad32, grad64, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("arch", ["pixelcnn", "gated"])
def test_whole_colour_model_gradient_check_with_the_coefficients(arch):
    model = small_model(arch, levels=256)
    images = random_images(256)
    images[0, 0, 0], images[0, 0, 1] = [0, 255, 128], [255, 0, 3]
    errors = check_model_and_loss(model, images)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-5, (worst, errors[worst])
    assert model.grads["out.W"].any()


# --------------------------------------------------------------------------- the probabilities


@pytest.mark.parametrize("arch", ["pixelcnn", "gated"])
def test_log_probs_sum_to_one_and_give_the_pixel_nll(arch):
    levels = 16
    model = small_model(arch, levels=levels)
    images = random_images(levels)
    x = model_input(images, levels)
    log_p = model.log_probs(x)                                            # (N, H, W, C, L)
    assert log_p.shape == images.shape + (levels,)
    np.testing.assert_allclose(np.exp(log_p).sum(axis=-1), 1.0, atol=1e-12)
    at_targets = np.take_along_axis(log_p, images[..., None], axis=-1)[..., 0]
    nll = model.output.pixel_nll(model.forward(x), images)                # (N, H, W, C)
    np.testing.assert_allclose(np.exp(at_targets), np.exp(-nll), rtol=1e-12)
    assert math.isclose(model.output.total_nll(model.forward(x), images), nll.sum(), rel_tol=1e-12)


def test_the_colours_of_a_pixel_sum_to_one_by_the_chain_rule():
    """P(r) P(g | r) P(b | r, g) over all 4^3 colours of a pixel, from one set of outputs."""
    levels = 4
    params = random_params(np.random.default_rng(3), ())                 # (C, P): one pixel
    colours = np.stack(np.meshgrid(*[np.arange(levels)] * C, indexing="ij"), axis=-1).reshape(-1, C)
    nll = mc.channel_nll(np.broadcast_to(params, (len(colours), C, P)).copy(), colours, levels, K)
    assert math.isclose(np.exp(-nll.sum(axis=-1)).sum(), 1.0, rel_tol=1e-12)


def test_sub_pixel_c_reads_the_levels_before_c_and_no_other():
    """log_probs(outputs, images): changing images[..., c'] moves the rows of sub-pixels c > c' only."""
    levels = 8
    rng = np.random.default_rng(4)
    output = ChannelMixtureOutput(levels, K, C)
    params = random_params(rng, (6,))
    images = rng.integers(0, levels, (6, C))
    base = output.log_probs(params, images)
    for changed in range(C):
        other = images.copy()
        other[:, changed] = (other[:, changed] + 3) % levels
        moved = np.abs(output.log_probs(params, other) - base).max(axis=-1) > 1e-12     # (6, C)
        np.testing.assert_array_equal(moved, np.broadcast_to(np.arange(C) > changed, moved.shape))


@pytest.mark.parametrize("arch", ["pixelcnn", "gated"])
def test_causality_the_distribution_of_sub_pixel_c_moves_only_with_what_comes_before_it(arch):
    """Change sub-pixel c' of pixel p: the distributions at p of sub-pixels c > c' move, those of
    c <= c' at p do not, and nothing before p does."""
    levels = 8
    model = small_model(arch, levels=levels).eval()
    images = random_images(levels, n=1, seed=5)
    base = model.log_probs(model_input(images, levels))
    raster = np.arange(SHAPE[0] * SHAPE[1]).reshape(SHAPE)
    for i, j in [(0, 0), (1, 2), (3, 3)]:
        for changed in range(C):
            other = images.copy()
            other[0, i, j, changed] = (other[0, i, j, changed] + 4) % levels
            moved = np.abs(model.log_probs(model_input(other, levels)) - base).max(axis=-1)[0] > 1e-12
            where = f"sub-pixel {'RGB'[changed]} of pixel {(i, j)}"
            assert not moved[raster < raster[i, j]].any(), f"{where} moved a distribution before it"
            np.testing.assert_array_equal(moved[i, j], np.arange(C) > changed, err_msg=where)


# --------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("arch", ["pixelcnn", "gated"])
def test_every_method_samples_and_completes_the_same_colour_images(arch):
    model = small_model(arch, levels=256).astype(np.float32)
    drawn = {method: npc.sample(model, 3, shape=SHAPE, seed=7, method=method) for method in npc.sampling.METHODS}
    np.testing.assert_array_equal(drawn["plain-cached"], drawn["naive"])
    np.testing.assert_array_equal(drawn["cached"], drawn["naive"])
    assert drawn["naive"].shape == (3,) + SHAPE + (C,) and len(np.unique(drawn["naive"])) > 10
    images = random_images(256, n=2).astype(np.uint8)
    done = {method: npc.complete(model, images, 2, n_samples=2, seed=3, method=method)
            for method in npc.sampling.METHODS}
    np.testing.assert_array_equal(done["cached"], done["naive"])
    np.testing.assert_array_equal(done["plain-cached"], done["naive"])


def follow_the_earlier_model(levels=256):
    """A PixelCNN whose outputs are its biases: R wide around mid-grey, G sharp at R's value
    (mean 0, tanh(20) = 1 on x_R), B sharp at G's (tanh(20) on x_G). One component."""
    model = npc.PixelCNN(levels=levels, hidden=3, blocks=1, head=6, seed=0,
                         **{**COEFFICIENTS, "components": 1})
    bias = np.zeros((C, 5))                    # per sub-pixel: logit, mean, log-scale, coefficient on R, on G
    bias[0] = [0, 0, -1.5, 0, 0]
    bias[1] = [0, 0, -6, 20, 0]
    bias[2] = [0, 0, -6, 0, 20]
    model.params["out.W"][...] = 0
    model.params["out.b"][...] = bias.reshape(-1)
    return model


def test_the_draws_follow_the_shifted_means():
    model = follow_the_earlier_model()
    drawn = {method: npc.sample(model, 4, shape=SHAPE, seed=1, method=method).astype(int)
             for method in npc.sampling.METHODS}
    np.testing.assert_array_equal(drawn["cached"], drawn["naive"])
    np.testing.assert_array_equal(drawn["plain-cached"], drawn["naive"])
    r, g, b = np.moveaxis(drawn["naive"], -1, 0)
    assert r.std() > 20                                       # R varies widely...
    # ...and G follows it within the logistic's noise (scale e^-6 = 0.32 of a bin's width), B follows G.
    assert np.abs(g - r).max() <= 3 and np.mean(g == r) > 0.5
    assert np.abs(b - g).max() <= 3 and np.mean(b == g) > 0.5


def test_the_draw_of_a_sub_pixel_follows_its_log_probs_given_the_earlier_ones():
    """At L = 8 the frequencies of 20000 draws of B given (R, G) = (6, 1) are its probabilities,
    and those differ from the ones given (0, 0)."""
    levels = 8
    output = ChannelMixtureOutput(levels, K, C)
    params = random_params(np.random.default_rng(6), ())                 # (C, P)
    params[2, 3 * K:] = [1.5, -1.0, 0.8, 0.4]                           # B's coefficients on R and G
    log_p = output.log_probs(params, np.array([6, 1, 0]))[2]
    assert np.abs(np.exp(log_p) - np.exp(output.log_probs(params, np.zeros(C, int))[2])).max() > 0.05
    earlier = np.tile([6, 1], (20000, 1))
    levels_drawn = output.draw(np.tile(params[2], (20000, 1)), 1.0, np.random.default_rng(0), earlier=earlier)
    np.testing.assert_allclose(np.bincount(levels_drawn, minlength=levels) / 20000, np.exp(log_p), atol=0.012)


# --------------------------------------------------------------------------- settings


def test_the_setting_is_recorded_only_when_true_and_rebuilds_the_model():
    model = small_model("gated")
    assert model.config["channel_coefficients"] is True and model.output.channels == P
    assert isinstance(npc.GatedPixelCNN(**model.config).output, ChannelMixtureOutput)
    plain = npc.PixelCNN(levels=16, hidden=3, blocks=1, head=6, output="logistic-mixture", components=K,
                         in_channels=C, seed=0)
    assert "channel_coefficients" not in plain.config                     # older configs mean what they meant
    assert isinstance(plain.output, LogisticMixtureOutput) and plain.output.channels == 3 * K
    grey = npc.PixelCNN(levels=16, hidden=3, blocks=1, head=6, output="logistic-mixture", components=K)
    assert "channel_coefficients" not in grey.config


def test_a_model_with_coefficients_trains_and_round_trips_through_a_checkpoint(tmp_path):
    from npixelcnn.train import Trainer
    levels = 16
    rng = np.random.default_rng(0)
    grey = rng.integers(0, levels, (32,) + SHAPE)
    images = np.repeat(grey[..., None], C, axis=-1).astype(np.uint8)     # R = G = B: what the coefficients learn
    config = npc.TrainConfig(levels=levels, model=dict(hidden=3, blocks=1, head=6, **COEFFICIENTS),
                             batch_size=8, lr=1e-2, warmup_steps=1, total_steps=10, evals=1)
    trainer = Trainer(config, images, images[:8])
    trainer.run(progress=False)
    path = tmp_path / "coefficients.npz"
    trainer.save(path)
    loaded = npc.load_checkpoint(path).model
    assert isinstance(loaded.output, ChannelMixtureOutput) and loaded.config == trainer.model.config
    x = npc.to_model_input(images[:4], levels)
    np.testing.assert_array_equal(loaded.log_probs(x), trainer.model.log_probs(x))
    assert math.isclose(npc.evaluate(loaded, images[:8]), npc.evaluate(trainer.model, images[:8]), rel_tol=1e-12)


@pytest.mark.parametrize("settings, message", [
    (dict(channel_coefficients=True, output="logistic-mixture"), "in_channels >= 2"),
    (dict(channel_coefficients=True, output="logistic-mixture", in_channels=3, channel_order="independent"),
     "channel_order='ordered'"),
    (dict(channel_coefficients=True, in_channels=3), "softmax"),
    (dict(channel_coefficients=1, output="logistic-mixture", in_channels=3), "True or False"),
])
def test_settings_with_nothing_to_link_are_refused(settings, message):
    with pytest.raises((TypeError, ValueError), match=message):
        npc.PixelCNN(levels=16, hidden=3, blocks=1, head=6, **settings)


def test_scoring_or_drawing_without_the_earlier_sub_pixels_is_refused_clearly():
    output = output_distribution("logistic-mixture", 16, K, channel_coefficients=True, in_channels=C)
    params = random_params(np.random.default_rng(0), (2,))
    with pytest.raises(ValueError, match="needs images"):
        output.log_probs(params)
    with pytest.raises(ValueError, match="needs earlier"):
        output.draw(params[:, 1], 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"earlier \(B, c\) with c < C"):
        output.draw(params[:, 1], 1.0, np.random.default_rng(0), earlier=np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="values per sub-pixel"):
        output.loss(params[..., :3 * K], np.zeros((2, C), int))
