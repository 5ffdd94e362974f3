"""Channel-ordered masks (colour PixelCNN, van den Oord et al. 2016, section 3.4): at the centre tap
an output of group g reads only inputs of group g' < g (mask A) or g' <= g (mask B), R before G
before B; everything above and to the left reads every channel. Grey is the case of one group."""

import numpy as np
import pytest
from conftest import GRAD_TOL, randomize

import npixelcnn as npc
from npixelcnn.gradcheck import check_layer
from npixelcnn.masks import channel_groups, channel_mask, channel_taps

RGB = np.array([0, 1, 2])               # the image's channels: groups 0, 1, 2
ROUNDING = 1e-10                        # float64 changes below this are rounding, not influence


def allowed(g_in, g_out, mask_type, channel_order):
    """The centre's rule, written out once more in the test's own words: (C_in, C_out) bool."""
    g_in, g_out = np.asarray(g_in)[:, None], np.asarray(g_out)[None, :]
    if channel_order == "independent":
        return (g_in == g_out) & (mask_type == "B")
    return (g_in < g_out) if mask_type == "A" else (g_in <= g_out)


def grouped(c_in, c_out, k, mask_type, channel_order="ordered", dilation=1, seed=0, out_groups=None):
    """A float64 channel-masked layer with random weights (the masks respected) and biases."""
    g_in = channel_groups(c_in, 3)
    g_out = channel_groups(c_out, 3) if out_groups is None else out_groups
    layer = npc.MaskedConv2D(c_in, c_out, k, mask_type, rng=seed, dilation=dilation,
                             in_groups=g_in, out_groups=g_out, channel_order=channel_order)
    return randomize(layer, seed=seed + 1)


# --- the rule, as numbers ---------------------------------------------------------------

def test_channel_groups_are_contiguous_blocks_as_equal_as_possible():
    np.testing.assert_array_equal(channel_groups(3, 3), [0, 1, 2])
    np.testing.assert_array_equal(channel_groups(12, 3), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(channel_groups(5, 3), [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(channel_groups(4, 1), [0, 0, 0, 0])


def test_channel_groups_need_a_channel_in_every_group():
    with pytest.raises(ValueError, match="cannot split 2 channel"):
        channel_groups(2, 3)
    with pytest.raises(ValueError, match="groups must be at least 1"):
        channel_groups(3, 0)
    with pytest.raises(TypeError, match="channels must be an int"):
        channel_groups(3.0, 3)


@pytest.mark.parametrize("mask_type, channel_order, expected", [
    # rows: input group R, G, B; columns: output group R, G, B
    ("A", "ordered", [[0, 1, 1], [0, 0, 1], [0, 0, 0]]),
    ("B", "ordered", [[1, 1, 1], [0, 1, 1], [0, 0, 1]]),
    ("A", "independent", [[0, 0, 0], [0, 0, 0], [0, 0, 0]]),
    ("B", "independent", [[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
])
def test_the_centre_reads_earlier_colours_for_mask_a_and_the_same_too_for_mask_b(mask_type, channel_order,
                                                                                 expected):
    expected = np.array(expected, dtype=bool)
    np.testing.assert_array_equal(channel_mask(RGB, RGB, mask_type, channel_order), expected)
    # Hidden channels in blocks, and a gated layer's two halves, follow the rule of their groups.
    g_in, g_out = channel_groups(6, 3), np.concatenate([channel_groups(9, 3)] * 2)
    mask = channel_mask(g_in, g_out, mask_type, channel_order)
    assert mask.shape == (6, 18)
    np.testing.assert_array_equal(mask, expected[g_in[:, None], g_out[None, :]])


@pytest.mark.parametrize("channel_order", ["ordered", "independent"])
def test_with_one_group_mask_a_reads_nothing_at_the_centre_and_mask_b_everything(channel_order):
    one = np.zeros(2, int), np.zeros(3, int)
    assert not channel_mask(*one, "A", channel_order).any()
    assert channel_mask(*one, "B", channel_order).all()
    # ... so the taps say it all: mask A's and mask B's, with no rule at the centre.
    for mask_type in "AB":
        taps, centre = channel_taps(5, mask_type, *one, channel_order)
        np.testing.assert_array_equal(taps, npc.kept_taps(5, mask_type))
        assert centre is None


def test_with_several_groups_both_masks_keep_the_centre_tap_and_restrict_it():
    for mask_type in "AB":
        taps, centre = channel_taps(3, mask_type, RGB, RGB)
        np.testing.assert_array_equal(taps, npc.kept_taps(3, "B"))
        np.testing.assert_array_equal(centre, channel_mask(RGB, RGB, mask_type))
    # Without cross-channel connections mask A's centre reads nothing: the tap is dropped.
    taps, centre = channel_taps(3, "A", RGB, RGB, "independent")
    np.testing.assert_array_equal(taps, npc.kept_taps(3, "A"))
    assert centre is None


@pytest.mark.parametrize("bad", ["sideways", "Ordered", None, 1])
def test_an_unknown_channel_order_is_refused(bad):
    with pytest.raises(ValueError, match="channel_order must be 'ordered'"):
        channel_mask(RGB, RGB, "B", bad)
    with pytest.raises(ValueError, match="channel_order must be 'ordered'"):
        npc.MaskedConv2D(3, 3, 3, "B", in_groups=RGB, out_groups=RGB, channel_order=bad)
    with pytest.raises(ValueError, match="channel_order must be 'ordered'"):
        npc.MaskedConv2D(1, 3, 3, "B", channel_order=bad)        # a grey layer checks it too


# --- one group is today's layer ---------------------------------------------------------

@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_one_group_is_the_grey_layer_same_taps_and_same_weights_from_the_same_seed(k, mask_type):
    c_in, c_out = 3, 4
    taps = npc.kept_taps(k, mask_type)
    # The grey layer's init, by hand: He normal over the kept taps, every other weight 0.
    rng = np.random.default_rng(7)
    std = np.sqrt(2.0 / max(len(taps) * c_in, 1))
    expected = np.zeros((k, k, c_in, c_out), np.float32)
    expected[taps[:, 0], taps[:, 1]] = (std * rng.standard_normal((len(taps), c_in, c_out))).astype(np.float32)

    grey = npc.MaskedConv2D(c_in, c_out, k, mask_type, rng=7)
    np.testing.assert_array_equal(grey.taps, taps)
    np.testing.assert_array_equal(grey.params["W"], expected)
    assert grey.centre_mask is None and grey.in_groups is None and grey.out_groups is None
    if k == 1 and mask_type == "A":
        return                      # grey 1x1 mask A: bias only (as before); with groups, an error below
    one_group = npc.MaskedConv2D(c_in, c_out, k, mask_type, rng=7,
                                 in_groups=np.zeros(c_in, int), out_groups=np.zeros(c_out, int))
    np.testing.assert_array_equal(one_group.taps, taps)
    np.testing.assert_array_equal(one_group.params["W"], expected)
    assert one_group.centre_mask is None


# --- causality across channels, one layer -----------------------------------------------

H, W = 7, 8
P = (3, 4)                              # the output pixel whose inputs we look for


def influence(layer, x, p=P):
    """bool (H, W, C_in, C_out): True where changing input channel i at pixel q moves output o at p."""
    c_in = x.shape[-1]
    n = H * W * c_in
    batch = np.repeat(x[None], n, axis=0)                                   # one copy per (q, i)
    q_r, q_c, i = np.unravel_index(np.arange(n), (H, W, c_in))
    batch[np.arange(n), q_r, q_c, i] += 1.0
    base = layer.forward(x[None])[0, p[0], p[1]]                            # (C_out,)
    moved = layer.forward(batch)[:, p[0], p[1]]                             # (n, C_out)
    return (np.abs(moved - base) > ROUNDING).reshape(H, W, c_in, -1)


def predicted_influence(k, dilation, centre, c_in, c_out, p=P):
    """The pixels q the kept taps read (all channels) and, at p itself, the centre rule."""
    field = np.zeros((H, W, c_in, c_out), dtype=bool)
    for r, c in npc.kept_taps(k, "A"):                                      # the taps before the centre
        q = (p[0] + (r - k // 2) * dilation, p[1] + (c - k // 2) * dilation)
        if 0 <= q[0] < H and 0 <= q[1] < W:
            field[q] = True
    field[p] = centre
    return field


CASES = [(k, d, m, o) for k in (1, 3, 5) for d in (1, 2) for m in "AB" for o in ("ordered", "independent")
         if not (k == 1 and m == "A" and o == "independent")]          # that one keeps nothing: an error


@pytest.mark.parametrize("k, dilation, mask_type, channel_order", CASES)
@pytest.mark.parametrize("halves", [False, True])
def test_an_output_at_p_reads_earlier_pixels_and_only_the_allowed_channels_at_p(k, dilation, mask_type,
                                                                                channel_order, halves):
    # 6 input channels in 3 groups; 9 outputs in 3 groups, or (a gated layer) two halves of 6.
    g_out = np.concatenate([channel_groups(6, 3)] * 2) if halves else channel_groups(9, 3)
    layer = grouped(6, len(g_out), k, mask_type, channel_order, dilation, out_groups=g_out)
    x = np.random.default_rng(3).standard_normal((H, W, 6))
    seen = influence(layer, x)
    centre = allowed(channel_groups(6, 3), g_out, mask_type, channel_order)

    raster = np.arange(H * W).reshape(H, W)
    assert not seen[raster > raster[P]].any(), "an output moved with a later pixel"
    np.testing.assert_array_equal(seen[P], centre)        # at p: the allowed channels move it, no others
    if k > 1:                                             # the pixel d to the left is read, every channel
        assert seen[P[0], P[1] - dilation].all()
    # Exactly the pixels the taps reach, d apart, and nothing else.
    np.testing.assert_array_equal(seen, predicted_influence(k, dilation, centre, 6, len(g_out)))


# --- causality across channels, a stack ---------------------------------------------------

@pytest.fixture(scope="module")
def colour_stack():
    """RGB -> mask A 3x3 -> 12 hidden (3 groups) -> ReLU -> mask B 3x3 -> ReLU -> mask B 1x1 -> 3 outputs."""
    hidden = channel_groups(12, 3)
    stack = npc.Sequential()
    stack.add("a", npc.MaskedConv2D(3, 12, 3, "A", rng=0, in_groups=RGB, out_groups=hidden))
    stack.add("relu1", npc.ReLU())
    stack.add("b3", npc.MaskedConv2D(12, 12, 3, "B", rng=1, in_groups=hidden, out_groups=hidden))
    stack.add("relu2", npc.ReLU())
    stack.add("b1", npc.MaskedConv2D(12, 3, 1, "B", rng=2, in_groups=hidden, out_groups=RGB))
    return randomize(stack, seed=4)


def test_a_colour_stack_predicts_each_colour_from_the_earlier_colours_of_its_pixel(colour_stack):
    earlier = RGB[:, None] < RGB[None, :]                 # [c', c]: input colour c' before output colour c
    seen = np.zeros((3, 3), dtype=bool)
    for seed in range(4):                                 # over a few images every path shows
        x = np.random.default_rng(seed).standard_normal((H, W, 3))
        one = influence(colour_stack, x)
        raster = np.arange(H * W).reshape(H, W)
        assert not one[raster > raster[P]].any()
        assert not (one[P] & ~earlier).any(), f"a colour saw itself or a later one: {one[P]}"
        seen |= one[P]
    np.testing.assert_array_equal(seen, earlier)          # G sees R; B sees R and G; R sees none of p


@pytest.mark.parametrize("c", [0, 1, 2])
def test_the_gradient_of_colour_c_at_p_is_exactly_zero_on_colours_c_and_later_at_p(colour_stack, c):
    x = np.random.default_rng(5).standard_normal((1, H, W, 3))
    colour_stack.forward(x)
    dy = np.zeros((1, H, W, 3))
    dy[0, P[0], P[1], c] = 1.0
    dx = colour_stack.backward(dy)[0]
    raster = np.arange(H * W).reshape(H, W)
    assert np.all(dx[raster > raster[P]] == 0)            # exactly: no path from a later pixel
    assert np.all(dx[P][c:] == 0)                         # exactly: none from colour c itself or later ones
    assert np.all(dx[P][:c] != 0)                         # the earlier colours of p do reach it
    assert np.any(dx[raster < raster[P]] != 0)


# --- gradients and training ---------------------------------------------------------------

@pytest.mark.parametrize("k, dilation, mask_type, channel_order", CASES)
def test_channel_masked_gradients(k, dilation, mask_type, channel_order, rng):
    layer = grouped(3, 6, k, mask_type, channel_order, dilation)
    errors = check_layer(layer, rng.standard_normal((2, 5, 6, 3)))
    worst = max(errors, key=errors.get)
    assert errors[worst] < GRAD_TOL, f"relative error of d/d{worst} is {errors[worst]:.2e}"


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_hidden_centre_weights_are_zero_get_zero_gradient_and_stay_zero_under_adam(k, mask_type, rng):
    layer = npc.MaskedConv2D(6, 9, k, mask_type, rng=0, in_groups=channel_groups(6, 3),
                             out_groups=channel_groups(9, 3))
    hidden = ~layer.centre_mask
    centre = (k // 2, k // 2)
    assert hidden.any() and layer.centre_mask.any()
    np.testing.assert_array_equal(layer.centre_mask, allowed(channel_groups(6, 3), channel_groups(9, 3),
                                                             mask_type, "ordered"))
    adam = npc.Adam(layer, lr=0.1)
    before = layer.params["W"].copy()
    for _ in range(3):
        layer.forward(rng.standard_normal((2, 5, 5, 6)).astype(np.float32))
        layer.backward(rng.standard_normal((2, 5, 5, 9)).astype(np.float32))
        assert np.all(layer.grads["W"][centre][hidden] == 0)
        assert np.all(layer.grads["W"][centre][~hidden] != 0)
        adam.step()
        assert np.all(layer.params["W"][centre][hidden] == 0)
    assert np.all(layer.params["W"][centre][~hidden] != before[centre][~hidden])   # the others did move


def test_the_layer_ignores_whatever_is_written_in_a_hidden_centre_weight(rng):
    layer = grouped(3, 6, 3, "B")
    x = rng.standard_normal((2, 5, 6, 3))
    y = layer.forward(x)
    hidden = ~layer.centre_mask
    layer.params["W"][1, 1][hidden] = 100.0                # e.g. an edited checkpoint
    np.testing.assert_array_equal(layer.forward(x), y)
    centre_rows = layer.kept_weights().reshape(len(layer.taps), 3, 6)[-1]
    assert np.all(centre_rows[hidden] == 0)


@pytest.mark.parametrize("k", [1, 3])
def test_he_init_counts_for_each_output_only_the_weights_it_keeps(k):
    # 3 -> 300 under mask A: at the centre a red output reads no input colour, green one, blue two.
    g_out = channel_groups(300, 3)
    layer = npc.MaskedConv2D(3, 300, k, "A", rng=11, in_groups=RGB, out_groups=g_out)
    taps = npc.kept_taps(k, "B")
    fan_in = (len(taps) - 1) * 3 + g_out                  # the taps before the centre, and g' < g at it
    z = np.random.default_rng(11).standard_normal((len(taps), 3, 300))
    expected = np.zeros((k, k, 3, 300), np.float32)
    expected[taps[:, 0], taps[:, 1]] = (np.sqrt(2.0 / np.maximum(fan_in, 1)) * z).astype(np.float32)
    expected[k // 2, k // 2][~allowed(RGB, g_out, "A", "ordered")] = 0
    np.testing.assert_array_equal(layer.params["W"], expected)
    if k == 1:
        assert np.all(layer.params["W"][0, 0][:, g_out == 0] == 0)     # red reads nothing: bias only


# --- mistakes --------------------------------------------------------------------------------

@pytest.mark.parametrize("in_groups, out_groups, error, message", [
    (RGB, None, ValueError, "go together"),
    (None, RGB, ValueError, "go together"),
    ([0, 1], RGB, ValueError, r"in_groups must be a 1-D array with one group per channel \(3\)"),
    (RGB, [[0, 1, 2]], ValueError, r"out_groups must be a 1-D array with one group per channel \(3\)"),
    ([0.0, 1.0, 2.0], RGB, TypeError, "in_groups must be integer group numbers"),
    ([True, False, True], RGB, TypeError, "in_groups must be integer group numbers"),
    ([-1, 0, 1], RGB, ValueError, r"in_groups must number its G groups 0, 1, \.\.\., G - 1"),
    ([0, 2, 2], RGB, ValueError, r"in_groups must number .* got groups \[0, 2\]"),
    (RGB, [0, 0, 1], ValueError, "in_groups has 3 group\\(s\\) and out_groups 2"),
])
def test_bad_groups_are_refused_with_a_clear_error(in_groups, out_groups, error, message):
    with pytest.raises(error, match=message):
        npc.MaskedConv2D(3, 3, 3, "B", in_groups=in_groups, out_groups=out_groups)


@pytest.mark.parametrize("groups, channel_order", [(RGB, "independent"), (np.zeros(3, int), "ordered")])
def test_a_layer_that_would_keep_no_weight_is_an_error(groups, channel_order):
    # 1x1 mask A: its one tap is the centre, and these rules let it read no channel there.
    with pytest.raises(ValueError, match="keeps no weight"):
        npc.MaskedConv2D(3, 3, 1, "A", in_groups=groups, out_groups=groups, channel_order=channel_order)


def test_a_1x1_mask_a_with_several_groups_keeps_the_centre_under_the_strict_rule():
    layer = npc.MaskedConv2D(3, 3, 1, "A", rng=0, in_groups=RGB, out_groups=RGB)
    np.testing.assert_array_equal(layer.taps, [[0, 0]])
    np.testing.assert_array_equal(layer.params["W"][0, 0] != 0, allowed(RGB, RGB, "A", "ordered"))


def test_a_centre_mask_needs_its_shape_and_the_centre_tap():
    with pytest.raises(ValueError, match=r"centre_mask must be \(2, 3\)"):
        npc.Conv2D(2, 3, 3, taps=npc.kept_taps(3, "B"), centre_mask=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match=r"centre_mask must be \(2, 3\), for taps with the centre"):
        npc.Conv2D(2, 3, 3, taps=npc.kept_taps(3, "A"), centre_mask=np.ones((2, 3), bool))
