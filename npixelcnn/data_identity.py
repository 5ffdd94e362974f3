"""Which data a run trained on, so that a resume cannot silently change it.

A checkpoint records a fingerprint of the level images its run was given: for
the training and the test set, the number of images, their height and width
and the SHA-256 of their levels. Resuming compares that record with the images
it is given now. Other images (another ``--data-dir``, another subset) would
make the resumed run a different run, mixing two data sets in one history, so
the resume is refused with one line that names both. The same images read from
another folder have the same fingerprint and resume as if nothing had moved.

The fingerprint hashes the levels as uint8, whatever integer type holds them,
so it depends only on the values and the order of the images.
"""

import hashlib

import numpy as np


class OtherDataError(ValueError):
    """A run was resumed with other images than the ones it was trained on."""


def fingerprint(levels_images):
    """{"images": N, "height": H, "width": W, "sha256": hex digest} of (N, H, W) integer levels;
    of (N, H, W, C) colour levels with "channels": C as well (grey records stay as they were)."""
    levels_images = np.asarray(levels_images)
    n, height, width = levels_images.shape[:3]
    digest = hashlib.sha256(np.ascontiguousarray(levels_images, dtype=np.uint8)).hexdigest()
    record = {"images": int(n), "height": int(height), "width": int(width), "sha256": digest}
    if levels_images.ndim == 4:
        record["channels"] = int(levels_images.shape[3])
    return record


def data_record(train_images, test_images, train_labels=None, test_labels=None):
    """The record a checkpoint keeps: {"train": fingerprint, "test": fingerprint}, and for a
    class-conditional run the labels' too: {"train_labels": ..., "test_labels": ...}, each
    {"labels": N, "sha256": hex digest} (other labels would make it another run)."""
    record = {"train": fingerprint(train_images), "test": fingerprint(test_images)}
    if train_labels is not None:
        record["train_labels"] = labels_fingerprint(train_labels)
        record["test_labels"] = labels_fingerprint(test_labels)
    return record


def labels_fingerprint(labels):
    """{"labels": N, "sha256": hex digest} of (N,) integer labels, hashed as int64."""
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    return {"labels": int(len(labels)), "sha256": hashlib.sha256(labels).hexdigest()}


def check_same_data(recorded, current, path, source=None):
    """Raise :class:`OtherDataError` unless ``current`` (a :func:`data_record`) equals ``recorded``.

    ``source``: where the recorded images were read from, if the checkpoint says
    (the CLI records its MNIST folder), to name it in the message.
    """
    if recorded == current:
        return
    was = f" (read from {source})" if source else ""
    if all(recorded.get(split) == current.get(split) for split in ("train", "test")):
        # The same images: the labels differ (a conditional run's resume needs the same ones).
        was_given = ("no labels" if "train_labels" not in current else
                     "labels" if "train_labels" not in recorded else "other labels")
        trained = "with labels" if "train_labels" in recorded else "without labels"
        raise OtherDataError(f"{path} was trained on these images {trained}, but the resume was given "
                             f"{was_given}; resume it with the labels it was trained on")
    raise OtherDataError(
        f"{path} was trained on {_describe(recorded)}{was}, but the resume was given "
        f"{_describe(current)}; resume it with the data it was trained on")


def _describe(record):
    train, test = record["train"], record["test"]
    return (f"{train['images']:,} training and {test['images']:,} test images of "
            f"{train['height']}x{train['width']} (SHA-256 {train['sha256'][:12]}... and {test['sha256'][:12]}...)")


def check_data_record(record, path):
    """A checkpoint's data record, checked to be well formed; ValueError with the reason otherwise."""
    images_keys = {"images": int, "height": int, "width": int, "sha256": str}
    labels_keys = {"labels": int, "sha256": str}
    if not isinstance(record, dict) or set(record) not in ({"train", "test"},
                                                          {"train", "test", "train_labels", "test_labels"}):
        raise ValueError(f"{path}: its data record must be a dict with 'train' and 'test' (and, for a "
                         f"conditional run, 'train_labels' and 'test_labels'), got {record!r}")
    for split, entry in record.items():
        keys = labels_keys if split.endswith("_labels") else images_keys
        if isinstance(entry, dict) and "channels" in entry and not split.endswith("_labels"):
            keys = {**keys, "channels": int}                 # colour images
        if (not isinstance(entry, dict) or set(entry) != set(keys)
                or not all(type(entry[key]) is kind for key, kind in keys.items())):
            raise ValueError(f"{path}: its data record for {split!r} must give {sorted(keys)}, got {entry!r}")
    return record
