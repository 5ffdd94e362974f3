"""A tiny PixelCNN memorises a handful of images: the whole pipeline can learn."""

import numpy as np

import npixelcnn as npc


def test_tiny_pixelcnn_overfits_eight_random_images():
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 4, (8, 8, 8))                 # 8 fixed random 4-level 8x8 images
    x = (levels[..., None] / 3).astype(np.float32)
    model = npc.PixelCNN(levels=4, hidden=16, blocks=2, head=32, seed=0)
    optimizer = npc.Adam(model, lr=3e-3, clip_norm=1.0)
    losses = []
    for _ in range(300):
        loss, dlogits = npc.softmax_cross_entropy(model.forward(x), levels)
        model.backward(dlogits)
        optimizer.step()
        losses.append(loss)
    # Random pixels are incompressible on their own (ln 4 = 1.386 nats each);
    # memorising them means recognising the image from the pixels already seen.
    assert abs(losses[0] - np.log(4)) < 0.1
    assert losses[-1] < losses[0] / 10, f"NLL went from {losses[0]:.3f} to {losses[-1]:.3f}"



def leaves(model):
    """Every leaf layer of ``model`` (the layers that hold caches)."""
    return [layer for _, layer in model.named_leaves()]


def test_eval_mode_gives_the_same_logits_and_keeps_no_cache():
    model = npc.PixelCNN(levels=4, hidden=4, blocks=2, head=8, seed=3)
    x = np.random.default_rng(0).integers(0, 4, (3, 6, 6, 1)).astype(np.float32) / 3
    train_logits = model.forward(x).copy()
    assert all(leaf._cache is not None for leaf in leaves(model))      # every leaf caches under one name

    eval_logits = model.eval().forward(x)
    np.testing.assert_array_equal(eval_logits, train_logits)
    for leaf in leaves(model):
        assert not leaf.training
        assert leaf._cache is None

    model.train()
    assert all(leaf.training for leaf in leaves(model))
