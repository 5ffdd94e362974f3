"""The masked-tap convolution equals a naive convolution with the masked kernel."""

import numpy as np
import pytest

import npixelcnn as npc


def reference_masked_conv(x, W, b, mask):
    """Explicit loops over output positions; the mask multiplied into the weights."""
    n, h, w, _ = x.shape
    k = W.shape[0]
    p = k // 2
    Wm = W * mask[:, :, None, None]
    xp = np.zeros((n, h + 2 * p, w + 2 * p, x.shape[3]))
    xp[:, p:p + h, p:p + w] = x
    y = np.zeros((n, h, w, W.shape[3]))
    for i in range(n):
        for r in range(h):
            for c in range(w):
                patch = xp[i, r:r + k, c:c + k, :]                   # (k, k, C_in)
                y[i, r, c] = np.tensordot(patch, Wm, axes=3) + b
    return y


@pytest.mark.parametrize("k, mask_type", [(1, "A"), (1, "B"), (3, "A"), (3, "B"), (5, "A"), (7, "B")])
def test_masked_conv_equals_reference(k, mask_type, rng):
    layer = npc.MaskedConv2D(3, 4, k, mask_type, rng=0).astype(np.float64)
    # Fill every entry of W, the hidden ones too: the layer must ignore them.
    full_W = rng.standard_normal(layer.params["W"].shape)
    layer.params["W"][...] = full_W
    layer.params["b"][...] = rng.standard_normal(4)
    x = rng.standard_normal((2, 5, 6, 3))
    expected = reference_masked_conv(x, full_W, layer.params["b"], npc.causal_mask(k, mask_type))
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)


def test_float32_forward_matches_float64_reference(rng):
    layer = npc.MaskedConv2D(8, 16, 3, "B", rng=3)
    x = rng.standard_normal((2, 7, 7, 8)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    expected = reference_masked_conv(x.astype(np.float64), layer.params["W"].astype(np.float64),
                                     layer.params["b"], npc.causal_mask(3, "B"))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_unmasked_conv_equals_reference(rng):
    layer = npc.Conv2D(2, 3, 3, rng=0).astype(np.float64)
    layer.params["b"][...] = rng.standard_normal(3)
    x = rng.standard_normal((2, 4, 5, 2))
    expected = reference_masked_conv(x, layer.params["W"], layer.params["b"], np.ones((3, 3)))
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)


def test_mask_a_with_kernel_1_sees_nothing(rng):
    layer = npc.MaskedConv2D(2, 3, 1, "A", rng=0)
    layer.params["b"][...] = [1, 2, 3]
    y = layer.forward(rng.standard_normal((1, 3, 3, 2)).astype(np.float32))
    np.testing.assert_array_equal(y, np.broadcast_to([1, 2, 3], y.shape))
