"""Shared helpers for the tests."""

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import npixelcnn as npc

# A correct backward pass agrees with float64 central differences to ~1e-9.
GRAD_TOL = 1e-6


def load_module(name, path):
    """Import the Python file at ``path`` as a module called ``name`` (lessons/run_lessons.py, a solution)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(*args):
    """``python -m npixelcnn ARGS`` in this process (any arguments, str() each); returns the exit status."""
    from npixelcnn import cli
    return cli.main([str(a) for a in args])


def one_clear_line(err):
    """The CLI's answer to a mistake: 'error: ...' on one line, no traceback."""
    lines = err.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err


def randomize(layer, seed=0, scale=0.5):
    """Give every parameter random values, masks respected, and convert to float64.

    Zero biases put ReLU inputs exactly on the kink at zero (e.g. a mask-A pixel
    that sees only padding), where the function has no derivative and central
    differences return 0.5; random biases move every input off the kink.
    """
    layer.astype(np.float64)
    rng = np.random.default_rng(seed)
    for name, p in layer.params.items():
        values = scale * rng.standard_normal(p.shape)
        p[...] = np.where(p != 0, values, 0) if name.endswith("W") else values
    return layer


def outputs_pixel_by_pixel(sampler, model, images):
    """Feed ``images`` (N, H, W) to a cached ``sampler`` class in raster order; its outputs at
    every pixel, (N, H, W, model.output.channels)."""
    net = sampler(model, len(images), images.shape[1:])
    outputs = np.zeros(images.shape + (model.output.channels,), model.dtype)
    for i, j in np.ndindex(*images.shape[1:]):
        outputs[:, i, j] = net.outputs_at(i, j)
        net.set_pixel(i, j, images[:, i, j])
    return outputs


def assert_cached_logits_equal_the_forward_pass(model, images):
    """Feed ``images`` (N, H, W) levels to a CachedPixelCNN pixel by pixel: at every pixel
    its logits must equal one float64 forward pass of the whole images (the model is causal)."""
    n, height, width = images.shape
    full = model.eval().forward(npc.to_model_input(images, model.levels).astype(np.float64))
    net = npc.CachedPixelCNN(model, n, (height, width))
    for i in range(height):
        for j in range(width):
            np.testing.assert_allclose(net.outputs_at(i, j), full[:, i, j], rtol=0, atol=1e-12,
                                       err_msg=f"pixel {(i, j)}")
            net.set_pixel(i, j, images[:, i, j])


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def tiny_pixelcnn(levels=3, seed=0, dtype=np.float64):
    # hidden=3: with 2 channels a block's ReLUs can all be off for a small
    # input, leaving parameters with no gradient to check.
    model = npc.PixelCNN(levels=levels, hidden=3, blocks=2, head=4, seed=seed)
    if dtype == np.float64:
        randomize(model, seed=seed)
    return model


# Real MNIST, cut to its first 2,000 training and 1,000 test images, committed
# with the tests (tests/data/make_mnist_subset.py), so that a fresh clone runs
# them offline with nothing downloaded or cached.
MNIST_SUBSET = Path(__file__).resolve().parent / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir():
    return MNIST_SUBSET


@pytest.fixture
def few_mnist_images(monkeypatch, mnist_dir):
    """The CLI reads real MNIST, cut to 256 training and 32 test images and to their central
    12 x 12 pixels (sampling visits every pixel), so each run takes about a second.

    A ``data_dir`` given to the CLI is still checked by the real loader."""
    from npixelcnn import commands
    cache = {split: npc.load_mnist(split, mnist_dir) for split in ("train", "test")}

    def load_mnist(split="train", data_dir=None):
        if data_dir is not None:
            npc.load_mnist(split, data_dir, mirrors=[])
        images, labels = cache[split]
        n = 256 if split == "train" else 32
        return images[:n, 8:20, 8:20], labels[:n]

    monkeypatch.setitem(commands.DATASETS["mnist"], "load", load_mnist)


# Checkpoints edited by the tests. A checkpoint stores the SHA-256 of its metadata, so an
# edit made as a user would make it is refused as an edit (edit_by_hand); rewrite_meta also
# updates the checksum, so that the file reaches the check a test is about.


def members(path):
    """The archive's arrays by name, read without pickle."""
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def write_members(path, arrays):
    """Write ``arrays`` as an .npz at exactly ``path`` (np.savez given a name may append ".npz")."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def meta_checksum(text):
    """What a checkpoint stores as ``meta_sha256``: the SHA-256 of its metadata's JSON text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _rewrite(path, change, update_checksum):
    arrays = members(path)
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    text = json.dumps(meta)
    arrays["meta"] = np.array(text)
    if update_checksum and "meta_sha256" in arrays:     # files of versions 1 and 2 have none
        arrays["meta_sha256"] = np.array(meta_checksum(text))
    return write_members(path, arrays)


def rewrite_meta(path, change):
    """Apply ``change(meta)`` to the checkpoint at ``path`` in place, checksum included (as if
    npixelcnn had written the edited metadata). Returns the path."""
    return _rewrite(path, change, update_checksum=True)


def edit_by_hand(path, change):
    """Apply ``change(meta)`` to the checkpoint at ``path`` in place, every other member (the
    checksum too) kept as it was. Returns the path."""
    return _rewrite(path, change, update_checksum=False)
