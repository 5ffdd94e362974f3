"""What the commands of ``python -m npixelcnn`` that read a checkpoint do, once :mod:`npixelcnn.cli`
has parsed them, and what all commands share (``train`` is in :mod:`npixelcnn.train_command`).

``run_eval``, ``run_sample``, ``run_complete`` and ``run_classify`` take the
parsed options. Everything that can be checked before the work is checked
before it, and raises :class:`UsageError` (exit status 2); a run that started
and cannot go on raises :class:`RunFailed` (exit status 1).
"""

import math
import re
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError, load_checkpoint
from .cifar10 import CIFAR10, load_cifar10
from .classify import class_prior, classify, confusion_matrix
from .coloured_mnist import load_coloured_mnist
from .data import MNIST, check_data_dir, load_mnist, quantize
from .evaluation import evaluate
from .files import check_writable_folder, describe_os_error, write_npy_atomically
from .losses import nats_to_bits
from .sampling import complete, sample
from .viz import plot_class_grid, plot_completions, plot_confusion, save_image_grid


class UsageError(Exception):
    """A problem with the user's options or files: printed as one line, exit status 2."""


class RunFailed(Exception):
    """A run that started could not go on (e.g. its folder could no longer be written): exit status 1."""


class Interrupted(Exception):
    """A second Ctrl-C aborted a training run without saving; the message names the checkpoint kept.
    Exit status 130, as for any command stopped by Ctrl-C."""

# The data sets the commands train and test on (train --data NAME): the name a checkpoint records,
# the function that loads a split of it, its files' Dataset (for --data-dir), the (H, W) of its
# images, its channels and its name in messages.
# A checkpoint that records none was trained on MNIST (every file written before colour).
DATASETS = {
    "mnist": dict(load=load_mnist, files=MNIST, shape=(28, 28), channels=1, title="MNIST"),
    "colour-mnist": dict(load=load_coloured_mnist, files=MNIST,            # made from MNIST's files
                         shape=(28, 28), channels=3, title="coloured MNIST"),
    "cifar10": dict(load=load_cifar10, files=CIFAR10, shape=(32, 32), channels=3, title="CIFAR-10"),
}
DEFAULT_DATASET = "mnist"


def load_images(dataset, split, data_dir=None):
    """(images, labels) of one split of the data set named ``dataset`` (a key of :data:`DATASETS`):
    (N, H, W) grey or (N, H, W, 3) RGB uint8 values, and (N,) labels."""
    return DATASETS[dataset]["load"](split, data_dir)


def check_dataset_dir(dataset, data_dir, option="--data-dir"):
    """The data set's folder, checked before anything is loaded (see :func:`npixelcnn.data.check_data_dir`)."""
    return check_data_dir(data_dir, option, dataset=DATASETS[dataset]["files"])


def dataset_of(ckpt, path):
    """The name of the data set a checkpoint was trained on ("mnist" when it records none),
    checked against its model's channels."""
    name = ckpt.meta.get("dataset", DEFAULT_DATASET)
    if name not in DATASETS:
        raise CheckpointError(f"{path} was trained on the data set {name!r}, which this npixelcnn does not "
                              f"know (it knows {', '.join(DATASETS)})")
    channels = DATASETS[name]["channels"]
    if ckpt.model.in_channels != channels:
        raise CheckpointError(f"{path}: its model takes images of {ckpt.model.in_channels} channel(s), but it "
                              f"records the data set {name!r}, whose images have {channels}; the file was edited")
    return name


def load_levels(data_dir, levels, labels=False, dataset=DEFAULT_DATASET):
    """Train and test images of ``dataset`` (MNIST: (N, 28, 28)) as uint8 levels, every channel
    quantised; with ``labels``, their labels (N,) too: (train, test) or (train, test, train_labels, test_labels)."""
    train_images, train_labels = load_images(dataset, "train", data_dir)
    test_images, test_labels = load_images(dataset, "test", data_dir)
    levels_images = quantize(train_images, levels), quantize(test_images, levels)
    return levels_images + (train_labels, test_labels) if labels else levels_images


def parse_labels(spec, classes, option="--labels"):
    """A list of classes from the command line: "3", "0-9", "1,4,7" or "0-4,9" -> [ints].

    Raises :class:`UsageError` for a model without classes, a malformed list, or a class
    outside [0, classes).
    """
    if classes is None:
        raise UsageError(f"{option}: this checkpoint's model has no classes (it models p(x), not p(x | y)); "
                         f"labels need a class-conditional model, trained with 'train --classes 10'")
    chosen = []
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise UsageError(f"{option} must list classes as in 3, 0-9 or 1,4,7, got {spec!r}")
        first, last = int(match[1]), int(match[2] or match[1])
        if first > last:
            raise UsageError(f"{option}: the range {part.strip()} goes down; write it as {last}-{first}")
        if last >= classes:          # checked before the range is listed: 0-999999999 is a typo, not a list
            raise UsageError(f"{option}: the model has {classes} classes, 0 to {classes - 1}; got {part.strip()}")
        chosen += range(first, last + 1)
    return chosen


def labels_to_sample(model, n):
    """The labels of ``n`` preview samples: 0, 1, ..., K-1, 0, 1, ... for a conditional model, else None."""
    return None if model.classes is None else np.arange(n) % model.classes


def require_labels(model, labels_spec):
    """The classes --labels names, checked against the model: a conditional model needs them."""
    if labels_spec is None:
        if model.classes is not None:
            raise UsageError(f"this checkpoint's model is class-conditional ({model.classes} classes): say which "
                             f"with --labels, e.g. --labels 0-{model.classes - 1} or --labels 3")
        return None
    return parse_labels(labels_spec, model.classes)


# -- eval -------------------------------------------------------------------
def run_eval(args):
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model
    dataset = dataset_of(ckpt, args.checkpoint)
    check_dataset_dir(dataset, args.data_dir)
    test_images, test_labels = load_images(dataset, "test", args.data_dir)
    levels_images = quantize(test_images, model.levels)
    labels = None if model.classes is None else test_labels        # p(x | y) with each image's own label
    started = time.perf_counter()
    nats = evaluate(model, levels_images, batch_size=args.batch_size, progress=True, parallel=True,
                    labels=labels)
    seconds = time.perf_counter() - started
    print(f"checkpoint: {args.checkpoint} ({model})")
    given = "" if labels is None else ", each given its true label: -log p(x | y)"
    of = "" if dataset == DEFAULT_DATASET else f" of {DATASETS[dataset]['title']}"
    print(f"test set: {len(levels_images)} images{of}, {model.levels} levels{given}")
    print(f"test NLL: {nats_to_bits(nats):.4f} bits/dim = {nats:.4f} nats/dim "
          f"= {nats * levels_images[0].size:.2f} nats/image  ({seconds:.1f} s)")
    return 0


# -- sample and complete -----------------------------------------------------
def run_sample(args):
    check_sampling_options(args)
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model
    shape = DATASETS[dataset_of(ckpt, args.checkpoint)]["shape"]
    classes = require_labels(model, args.labels)
    out = png_path(args.out)
    # With --labels, --n images of each class: a row per class in the figure.
    labels = None if classes is None else np.repeat(classes, args.n)
    count = args.n if labels is None else len(labels)
    started = time.perf_counter()
    images = sample(model, count, shape=shape, temperature=args.temperature, seed=args.seed, method=args.method,
                    progress=not args.no_progress, labels=labels)
    seconds = time.perf_counter() - started
    with failing_write(out):
        write_npy_atomically(out.with_suffix(".npy"), images)
        if labels is None:
            save_image_grid(images, model.levels, out)
        else:
            write_npy_atomically(out.with_name(out.stem + "_labels.npy"), labels)
            plot_class_grid(images.reshape(len(classes), args.n, *images.shape[1:]), classes, model.levels,
                            path=out)
    per_class = ("" if labels is None else f" of class {classes[0]}" if len(classes) == 1
                 else f" ({args.n} of each of the classes {classes_text(classes)})")
    print(f"sampled {count} images{per_class} in {seconds:.1f} s ({args.method}); wrote {out} and "
          f"{out.with_suffix('.npy')}" + ("" if labels is None else f" and {out.with_name(out.stem + '_labels.npy')}"))
    return 0


def run_complete(args):
    check_sampling_options(args)
    if args.samples < 1:
        raise UsageError(f"--samples (completions per image) must be at least 1, got {args.samples}")
    if args.rows < 0:
        raise UsageError(f"--rows must be 0 or more, got {args.rows}")
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model
    dataset = dataset_of(ckpt, args.checkpoint)
    check_dataset_dir(dataset, args.data_dir)
    classes = require_labels(model, args.labels)
    out = png_path(args.out)
    test_images, _ = load_images(dataset, "test", args.data_dir)
    if not 1 <= args.n <= len(test_images):
        raise UsageError(f"--n must be between 1 and {len(test_images)}, got {args.n}")
    originals = quantize(test_images[:args.n], model.levels)
    if not 0 <= args.rows <= originals.shape[1]:
        raise UsageError(f"--rows must be between 0 and {originals.shape[1]}, got {args.rows}")
    given, labels, row_names = originals, None, None
    if classes is not None:
        # Every image completed as every class asked for: a row per (image, class).
        given = np.repeat(originals, len(classes), axis=0)
        labels = np.tile(classes, len(originals))
        row_names = [f"as {k}" for k in labels]
    started = time.perf_counter()
    completions = complete(model, given, args.rows, n_samples=args.samples, temperature=args.temperature,
                           seed=args.seed, method=args.method, progress=not args.no_progress, labels=labels)
    seconds = time.perf_counter() - started
    visible = np.zeros(originals.shape[1:3], dtype=bool)           # (H, W), grey or colour
    visible[:args.rows] = True
    with failing_write(out):
        write_npy_atomically(out.with_suffix(".npy"), completions)
        plot_completions(given, visible, completions, model.levels, path=out, row_names=row_names)
    as_classes = ("" if classes is None else f", each as class {classes[0]}" if len(classes) == 1
                  else f", each as the classes {classes_text(classes)}")
    print(f"completed {args.n} test images{as_classes} x {args.samples} from their top {args.rows} rows in "
          f"{seconds:.1f} s ({args.method}); wrote {out} and {out.with_suffix('.npy')}")
    return 0


def classes_text(classes):
    """[0, 1, ..., 9] -> "0-9" when consecutive, else "1, 4, 7"."""
    if len(classes) > 2 and list(classes) == list(range(classes[0], classes[-1] + 1)):
        return f"{classes[0]}-{classes[-1]}"
    return ", ".join(str(k) for k in classes)


# -- classify ---------------------------------------------------------------
def run_classify(args):
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    out = None if args.out is None else png_path(args.out)
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model
    if model.classes is None:
        raise UsageError(f"{args.checkpoint} holds a model without classes: Bayes' rule needs p(x | y), a "
                         f"class-conditional model (trained with 'train --classes 10')")
    dataset = dataset_of(ckpt, args.checkpoint)
    check_dataset_dir(dataset, args.data_dir)
    test_images, test_labels = load_images(dataset, "test", args.data_dir)
    if args.n is not None and not 1 <= args.n <= len(test_images):
        raise UsageError(f"--n must be between 1 and {len(test_images)}, got {args.n}")
    count = len(test_images) if args.n is None else args.n
    levels_images, true = quantize(test_images[:count], model.levels), test_labels[:count].astype(np.intp)
    if args.rows is not None and not 1 <= args.rows <= levels_images.shape[1]:
        raise UsageError(f"--rows must be between 1 and {levels_images.shape[1]}, got {args.rows}")
    prior = None
    if args.prior == "train":
        prior = class_prior(load_images(dataset, "train", args.data_dir)[1], model.classes)
    started = time.perf_counter()
    log_posterior = classify(model, levels_images, prior=prior, rows=args.rows, batch_size=args.batch_size,
                             progress=True, parallel=True)
    seconds = time.perf_counter() - started
    predicted = log_posterior.argmax(axis=1)
    matrix = confusion_matrix(true, predicted, model.classes)
    seen = "whole images" if args.rows is None else f"their top {args.rows} rows only"
    print(f"checkpoint: {args.checkpoint} ({model})")
    print(f"Bayes' rule, {args.prior} prior, on {count:,} test images ({seen}), {model.classes} forward passes "
          f"per image ({seconds:.1f} s)")
    print(f"accuracy: {np.mean(predicted == true):.2%} ({int((predicted != true).sum())} errors)")
    print(confusion_text(matrix))
    if out is not None:
        with failing_write(out):
            plot_confusion(matrix, path=out)
        print(f"wrote {out}")
    return 0


def confusion_text(matrix):
    """The confusion matrix as text: a row per true class, its errors and error rate at the end."""
    classes = len(matrix)
    width = max(5, len(str(matrix.max())) + 1)
    lines = ["true \\ predicted " + "".join(f"{k:>{width}}" for k in range(classes)) + "   errors"]
    for k, row in enumerate(matrix):
        errors = row.sum() - row[k]
        rate = errors / row.sum() if row.sum() else 0.0
        lines.append(f"{k:>16} " + "".join(f"{c:>{width}}" for c in row) + f"   {errors} ({rate:.1%})")
    return "\n".join(lines)


@contextmanager
def failing_write(out):
    """The work is done and only its files are left to write: an OSError now (a full disk) is a run
    that failed (exit status 1), not an option to fix."""
    try:
        yield
    except OSError as err:
        raise RunFailed(f"could not write {out} and {out.with_suffix('.npy')}: {describe_os_error(err)}") from None


def check_sampling_options(args):
    """The options 'sample' and 'complete' share, checked before the checkpoint is read."""
    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, got {args.seed}")
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        raise UsageError(f"--temperature must be a finite number > 0, got {args.temperature}")


def png_path(out):
    """--out checked before the sampling: a .png name, not a folder, in a folder that can be written."""
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; name a .png file, e.g. {out / 'samples.png'}")
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must be a .png file, got {out}")
    check_writable_folder(out.parent)
    return out
