"""An independent judge of generated digits: a small NumPy MLP trained on real MNIST.

A likelihood in bits/dim says how well a model predicts real digits, not whether
its samples look like digits. This script trains a classifier that knows nothing
of npixelcnn's models (its own forward and backward, a few lines each) and asks
of a model's samples: what share does it label with confidence >= 0.9? Real test
digits at the same number of levels give the reference share. For class-
conditional samples, ``--labels`` also gives the share labelled as asked.

    python benchmarks/digit_classifier.py --levels 4 --data-dir ../shared/mnist
    python -m npixelcnn sample --checkpoint checkpoints/gated_mnist256.npz --n 100 --out /tmp/dc/gated256.png
    python benchmarks/digit_classifier.py --levels 256 --data-dir ../shared/mnist --samples /tmp/dc/gated256.npy
    python benchmarks/digit_classifier.py --levels 4 --samples cond.npy --labels cond_labels.npy

The classifier sees images at their own level count: it is trained on the 60,000
training images quantized to ``--levels`` levels and rescaled to level / (L - 1)
in [0, 1], each shifted by a random -2..2 pixels in each direction, so that a
sample drawn a little off centre is judged as a digit and not as a misfit. It is
an MLP, 784 -> 512 -> 256 -> 10 with ReLUs and a softmax, trained with Adam in
minibatches. Training takes about 40 s on one core; the weights are cached
(``--cache``, one .npz per levels, seed and epochs), so a second call is instant.

Import it to use from Python::

    clf = load_or_train(4, data_dir="../shared/mnist")          # or train_classifier(4, ...)
    probs = clf.predict_proba(level_images)                      # (N, 10), rows sum to 1
    readable_share(clf, level_images)["share"]                   # share with max prob >= 0.9
    intended_share(clf, level_images, labels)["share"]           # share labelled as asked

Output: readable lines, then one JSON line with every number.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import npixelcnn as npc
from npixelcnn.files import write_atomically

IMAGE_SHAPE = (28, 28)
CLASSES = 10
HIDDEN = (512, 256)            # 98.7-98.8% on the real test digits at 2, 4 and 256 levels (12 epochs)
EPOCHS = 12
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
SHIFT = 2                      # random shifts of -SHIFT..SHIFT pixels in each direction
CONFIDENCE = 0.9
REFERENCE_IMAGES = 1000        # real test digits whose readable share is the reference
DEFAULT_CACHE = Path.home() / ".cache" / "npixelcnn" / "digit_classifier"
FORMAT = 1                     # bump when the network or its training changes: old cache files are not reused


# --------------------------------------------------------------------------- inputs


def check_level_images(level_images, levels, name="level_images"):
    """Check that ``level_images`` are (N, 28, 28) integer levels in [0, levels). Returns them as an ndarray.

    A float array is refused rather than guessed at: values in [0, 1] and levels
    in [0, L) are both plausible floats, and judging the wrong one gives a
    confident wrong answer.
    """
    level_images = np.asarray(level_images)
    if level_images.ndim != 3 or level_images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{name} must have shape (N, 28, 28), got {level_images.shape}")
    if not (np.issubdtype(level_images.dtype, np.integer) or level_images.dtype == np.bool_):
        raise ValueError(f"{name} must hold integer levels in [0, {levels}), got dtype {level_images.dtype}"
                         " (images scaled to [0, 1]? pass the integer levels)")
    if level_images.size:
        low, high = int(level_images.min()), int(level_images.max())
        if low < 0 or high >= levels:
            raise ValueError(f"{name} must hold levels in [0, {levels}), got values in [{low}, {high}]"
                             f" (drawn at another number of levels? this classifier judges {levels})")
    return level_images


def check_levels(levels):
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or not 2 <= levels <= 256:
        raise ValueError(f"levels must be an integer in [2, 256], got {levels!r}")
    return int(levels)


def check_labels(labels, n, name="labels"):
    """Check that ``labels`` are (n,) integers in [0, 9], one class per image. Returns them as an ndarray."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"{name} must have shape ({n},), one class per image, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integer classes in [0, {CLASSES - 1}], got dtype {labels.dtype}")
    if labels.size and not 0 <= labels.min() <= labels.max() < CLASSES:
        raise ValueError(f"{name} must hold classes in [0, {CLASSES - 1}], got values in "
                         f"[{labels.min()}, {labels.max()}]")
    return labels


def to_input(level_images, levels):
    """(N, 28, 28) integer levels -> (N, 784) float32 in [0, 1], level / (levels - 1)."""
    return level_images.reshape(len(level_images), -1).astype(np.float32) / np.float32(levels - 1)


# --------------------------------------------------------------------------- the network


def init_params(rng, hidden=HIDDEN, dtype=np.float32):
    """He-initialised weights for 784 -> hidden... -> 10: a list of (W (d_in, d_out), b (d_out,))."""
    sizes = (IMAGE_SHAPE[0] * IMAGE_SHAPE[1], *hidden, CLASSES)
    return [((rng.standard_normal((d_in, d_out)) * np.sqrt(2.0 / d_in)).astype(dtype), np.zeros(d_out, dtype))
            for d_in, d_out in zip(sizes[:-1], sizes[1:])]


def forward(params, x):
    """Logits (N, 10) for inputs x (N, 784), and the activations backward needs (the input of each layer)."""
    inputs = []
    for k, (W, b) in enumerate(params):
        inputs.append(x)
        x = x @ W + b
        if k < len(params) - 1:
            x = np.maximum(x, 0)
    return x, inputs


def loss_and_grads(params, x, labels):
    """Mean softmax cross-entropy of (N, 784) inputs against (N,) labels, and its gradient per (W, b)."""
    logits, inputs = forward(params, x)
    logits = logits - logits.max(axis=1, keepdims=True)          # exp cannot overflow
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    n = len(x)
    loss = -log_probs[np.arange(n), labels].mean()
    dz = np.exp(log_probs)                                        # the gradient is softmax minus one-hot
    dz[np.arange(n), labels] -= 1
    dz /= n
    grads = [None] * len(params)
    for k in reversed(range(len(params))):
        W, _ = params[k]
        a = inputs[k]
        grads[k] = (a.T @ dz, dz.sum(axis=0))
        if k > 0:
            dz = (dz @ W.T) * (a > 0)                             # a is the previous layer's ReLU output
    return float(loss), grads


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Classifier:
    """A trained digit classifier for images at ``levels`` levels.

    Attributes:
        params: list of (W (d_in, d_out), b (d_out,)) float32 arrays, 784 -> ... -> 10.
        levels: the number of levels its inputs hold (2..256).
        meta: how it was trained (seed, epochs, training images, seconds, ...).
        path: the cache file it was loaded from or written to, else None.
    """

    def __init__(self, params, levels, meta=None):
        self.params = params
        self.levels = check_levels(levels)
        self.meta = dict(meta or {})
        self.path = None

    def predict_proba(self, level_images, batch_size=2000):
        """Class probabilities.

        Args:
            level_images: (N, 28, 28) integer levels in [0, levels).
        Returns:
            (N, 10) float64, each row sums to 1.
        """
        level_images = check_level_images(level_images, self.levels)
        out = np.empty((len(level_images), CLASSES))
        for start in range(0, len(level_images), batch_size):     # batches bound the memory of the activations
            logits, _ = forward(self.params, to_input(level_images[start:start + batch_size], self.levels))
            out[start:start + batch_size] = softmax(logits.astype(np.float64))
        return out

    def predict(self, level_images):
        """The most probable class of each image: (N,) int64."""
        return self.predict_proba(level_images).argmax(axis=1)

    def save(self, path):
        """Write the weights and metadata to ``path`` (.npz) atomically (``npixelcnn.files.write_atomically``:
        a reader never sees half a file, and two runs writing at once leave one whole file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"{name}{k}": p for k, (W, b) in enumerate(self.params) for name, p in (("W", W), ("b", b))}
        meta = json.dumps({**self.meta, "levels": self.levels, "format": FORMAT, "layers": len(self.params)})
        write_atomically(path, lambda f: np.savez(f, meta=np.array(meta), **arrays))
        self.path = path
        return path

    @classmethod
    def load(cls, path):
        """A classifier written by :meth:`save`. ValueError if the file is not one."""
        try:
            with np.load(path, allow_pickle=False) as archive:
                meta = json.loads(str(archive["meta"]))
                params = [(archive[f"W{k}"], archive[f"b{k}"]) for k in range(meta["layers"])]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path} is not a digit classifier file: {err}") from None
        if meta.pop("format", None) != FORMAT:
            raise ValueError(f"{path} was written for another network or training (format is not {FORMAT})")
        meta.pop("layers")
        classifier = cls(params, meta.pop("levels"), meta)
        classifier.path = Path(path)
        return classifier


# --------------------------------------------------------------------------- training


def shifted_batch(padded, index, rng, shift=SHIFT):
    """The images ``padded[index]`` (B, 28 + 2 shift, 28 + 2 shift), each cut at a random offset: (B, 28, 28).

    Cutting a 28 x 28 window at offset (dy, dx) in 0..2 shift from an image padded by
    ``shift`` moves the digit by (shift - dy, shift - dx) pixels.
    """
    windows = np.lib.stride_tricks.sliding_window_view(padded[index], IMAGE_SHAPE, axis=(1, 2))
    b = len(index)
    dy, dx = rng.integers(0, 2 * shift + 1, size=(2, b))
    return windows[np.arange(b), dy, dx]


def train_classifier(levels, data_dir=None, seed=0, epochs=EPOCHS, batch_size=BATCH_SIZE, shift=SHIFT,
                     hidden=HIDDEN, log=None):
    """Train a digit classifier on MNIST's training images at ``levels`` levels.

    Args:
        levels: int in [2, 256]; the images are quantized to it and rescaled to level / (levels - 1).
        data_dir: folder of the MNIST .gz files (see ``npixelcnn.load_mnist``).
        seed: seeds the initial weights, the batches and the shifts.
        epochs: passes over the training images (the last batch of each is dropped).
        shift: random shifts of -shift..shift pixels per direction (0: none).
        log: called with one line of progress per epoch (e.g. ``print``), or None.
    Returns:
        :class:`Classifier`.
    """
    levels = check_levels(levels)
    started = time.perf_counter()
    images, labels = npc.load_mnist("train", data_dir, progress=False)
    images = npc.quantize(images, levels)
    labels = labels.astype(np.int64)
    # Pad once with level 0 (the background); each batch then cuts its shifted windows from here.
    padded = np.pad(images, ((0, 0), (shift, shift), (shift, shift)))
    rng = np.random.default_rng(seed)
    params = init_params(rng, hidden)
    adam = [[np.zeros_like(p) for p in (W, b, W, b)] for W, b in params]      # per layer: mW, mb, vW, vb
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    steps_per_epoch = len(images) // batch_size
    total = epochs * steps_per_epoch
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(len(images))
        losses = []
        for i in range(steps_per_epoch):
            index = order[i * batch_size:(i + 1) * batch_size]
            x = to_input(shifted_batch(padded, index, rng, shift), levels)
            loss, grads = loss_and_grads(params, x, labels[index])
            losses.append(loss)
            step += 1
            # Cosine decay to zero: the last epochs settle into a minimum instead of rattling around it.
            lr = LEARNING_RATE * 0.5 * (1 + np.cos(np.pi * (step - 1) / total))
            correction = np.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
            for (W, b), (dW, db), (mW, mb, vW, vb) in zip(params, grads, adam):
                for p, g, m, v in ((W, dW, mW, vW), (b, db, mb, vb)):
                    m += (1 - beta1) * (g - m)
                    v += (1 - beta2) * (g * g - v)
                    p -= (lr * correction) * m / (np.sqrt(v) + eps)
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}: training loss {np.mean(losses):.4f} "
                f"({time.perf_counter() - started:.0f} s)")
    meta = {"seed": seed, "epochs": epochs, "batch_size": batch_size, "shift": shift, "hidden": list(hidden),
            "train_images": len(images), "train_seconds": round(time.perf_counter() - started, 1)}
    return Classifier(params, levels, meta)


def cache_path(levels, seed=0, epochs=EPOCHS, cache=DEFAULT_CACHE):
    """The cache file of the classifier for ``levels`` levels, ``seed`` and ``epochs``."""
    return Path(cache).expanduser() / f"mlp_v{FORMAT}_levels{levels}_seed{seed}_epochs{epochs}.npz"


def load_or_train(levels, data_dir=None, seed=0, cache=DEFAULT_CACHE, epochs=EPOCHS, log=None):
    """The cached classifier for ``levels``, ``seed`` and ``epochs`` if there is one, else train and cache it.

    The cache does not know which training images a classifier saw: a classifier
    trained on another data folder (a subset) needs its own ``cache`` folder.
    A cache file that cannot be read is replaced by a fresh one.

    Returns:
        :class:`Classifier`; its ``path`` is the cache file.
    """
    levels = check_levels(levels)
    path = cache_path(levels, seed, epochs, cache)
    if path.exists():
        try:
            classifier = Classifier.load(path)
            if classifier.levels != levels:
                raise ValueError(f"{path} holds a classifier for {classifier.levels} levels, not {levels}")
            return classifier
        except ValueError as err:
            print(f"warning: {err}; training a new one", file=sys.stderr)
    classifier = train_classifier(levels, data_dir, seed, epochs=epochs, log=log)
    classifier.save(path)
    return classifier


# --------------------------------------------------------------------------- what it measures


def readable_share(classifier, level_images, confidence=CONFIDENCE):
    """How many images the classifier labels with confidence: max probability >= ``confidence``.

    Args:
        classifier: a :class:`Classifier` (or anything with ``predict_proba``).
        level_images: (N, 28, 28) integer levels in [0, classifier.levels), N >= 1.
        confidence: the threshold on the largest class probability.
    Returns:
        dict: ``images`` N; ``readable`` how many pass; ``share`` readable / N;
        ``mean_confidence`` the mean largest probability over all N;
        ``counts`` (10 ints) images per predicted class; ``readable_counts`` the same among those that pass.
    """
    probs = classifier.predict_proba(level_images)
    return share_from_proba(probs, confidence)


def share_from_proba(probs, confidence=CONFIDENCE):
    """:func:`readable_share` from probabilities (N, 10) already computed."""
    if len(probs) == 0:
        raise ValueError("readable_share needs at least one image, got none")
    best = probs.max(axis=1)
    predicted = probs.argmax(axis=1)
    sure = best >= confidence
    return {"images": len(probs), "readable": int(sure.sum()), "share": float(sure.mean()),
            "mean_confidence": float(best.mean()), "confidence": confidence,
            "counts": np.bincount(predicted, minlength=CLASSES).tolist(),
            "readable_counts": np.bincount(predicted[sure], minlength=CLASSES).tolist()}


def intended_share(classifier, level_images, labels):
    """For class-conditional samples: how many are labelled as asked.

    Args:
        level_images: (N, 28, 28) integer levels in [0, classifier.levels).
        labels: (N,) integers in [0, 9], the class each image was asked to be.
    Returns:
        dict: ``images`` N; ``as_intended`` how many the classifier labels with their intended
        class; ``share``; ``per_class`` (10 floats, NaN for a class never asked) the share per intended class.
    """
    labels = check_labels(labels, len(level_images))
    if len(labels) == 0:
        raise ValueError("intended_share needs at least one image, got none")
    right = classifier.predict(level_images) == labels
    asked = np.bincount(labels, minlength=CLASSES)
    hits = np.bincount(labels[right], minlength=CLASSES)
    per_class = np.where(asked > 0, hits / np.maximum(asked, 1), np.nan)
    return {"images": len(labels), "as_intended": int(right.sum()), "share": float(right.mean()),
            "per_class": [None if np.isnan(r) else float(r) for r in per_class]}


def accuracy(classifier, level_images, labels):
    """Share of images classified as their true ``labels``, overall and per true class (10 floats)."""
    right = classifier.predict(level_images) == labels
    per_class = [float(right[labels == c].mean()) for c in range(CLASSES)]
    return float(right.mean()), per_class


# --------------------------------------------------------------------------- the command line


def counts_line(counts):
    return " ".join(f"{c}:{n}" for c, n in enumerate(counts))


def describe(name, share):
    return (f"{name}: {share['share']:.1%} readable ({share['readable']}/{share['images']} with confidence >= "
            f"{share['confidence']}), mean confidence {share['mean_confidence']:.3f}\n"
            f"    predicted classes {counts_line(share['counts'])}")


def load_array(path):
    """The array in a .npy file; ValueError naming the file if it cannot be read (pickled objects are refused)."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None


def load_samples(path, levels):
    """A samples file: (N, 28, 28) integer levels in [0, levels). ValueError (with the file's name) otherwise."""
    samples = check_level_images(load_array(path), levels, name=str(path))
    # Samples drawn at 4 levels fit in [0, 256) but would all read as near black: say so.
    if levels > 2 and samples.size and samples.max() < (levels - 1) // 4:
        print(f"warning: {path}'s largest level is {samples.max()}, but --levels is {levels}: "
              "were they drawn at fewer levels?", file=sys.stderr)
    return samples


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, default=256, help="levels of the images judged (default 256)")
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST .gz files")
    parser.add_argument("--samples", action="append", default=[], metavar="FILE.npy",
                        help="(N, 28, 28) uint8 levels, e.g. the .npy that `npixelcnn sample` writes (repeatable)")
    parser.add_argument("--labels", action="append", default=[], metavar="FILE.npy",
                        help="the intended class of each sample, one file per --samples, in order")
    parser.add_argument("--confidence", type=float, default=CONFIDENCE, help="threshold on the largest probability")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help="folder of the cached weights")
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.samples):
        parser.error(f"give --labels once per --samples ({len(args.samples)}), got {len(args.labels)}")
    try:
        check_levels(args.levels)
        samples = [load_samples(path, args.levels) for path in args.samples]
        labels = [check_labels(load_array(path), len(images), name=str(path))
                  for path, images in zip(args.labels, samples)]
    except (ValueError, OSError) as err:
        parser.exit(2, f"error: {err}\n")

    started = time.perf_counter()
    cached = cache_path(args.levels, args.seed, args.epochs, args.cache).exists()
    classifier = load_or_train(args.levels, args.data_dir, args.seed, args.cache, args.epochs,
                               log=lambda line: print("  " + line, flush=True))
    how = "loaded from" if cached else f"trained in {classifier.meta['train_seconds']:.0f} s, written to"
    print(f"classifier for {args.levels} levels (seed {args.seed}, {args.epochs} epochs): {how} {classifier.path} "
          f"({time.perf_counter() - started:.1f} s)")

    test_images, test_labels = npc.load_mnist("test", args.data_dir, progress=False)
    test_images = npc.quantize(test_images, args.levels)
    probs = classifier.predict_proba(test_images)
    right = probs.argmax(axis=1) == test_labels
    test_accuracy = float(right.mean())
    per_class = [float(right[test_labels == c].mean()) for c in range(CLASSES)]
    print(f"test accuracy at {args.levels} levels: {test_accuracy:.2%} on {len(test_images):,} real test digits")
    print("    per class " + " ".join(f"{c}:{a:.1%}" for c, a in enumerate(per_class)))
    reference = share_from_proba(probs[:REFERENCE_IMAGES], args.confidence)
    print(describe(f"reference, the first {reference['images']:,} real test digits", reference))

    results = {}
    for k, (path, images) in enumerate(zip(args.samples, samples)):
        result = readable_share(classifier, images, args.confidence)
        print(describe(str(path), result))
        if args.labels:
            asked = intended_share(classifier, images, labels[k])
            print(f"    labelled as asked: {asked['share']:.1%} ({asked['as_intended']}/{asked['images']}); per class "
                  + " ".join(f"{c}:{'-' if r is None else f'{r:.0%}'}" for c, r in enumerate(asked['per_class'])))
            result["intended"] = asked
        results[str(path)] = result
    print(json.dumps({"levels": args.levels, "seed": args.seed, "epochs": args.epochs,
                      "classifier": str(classifier.path), "train_seconds": classifier.meta.get("train_seconds"),
                      "test_accuracy": test_accuracy, "per_class_accuracy": per_class,
                      "reference": reference, "samples": results}))


if __name__ == "__main__":
    main()
