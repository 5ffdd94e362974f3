"""Checkpoints: a trained model (and its optimizer) in one ``.npz`` file.

Layout of the archive (``np.savez``, read back with ``allow_pickle=False``):

* ``param/<name>``: every parameter, e.g. ``param/blocks.3.conv2.W``;
* ``adam_m/<name>``, ``adam_v/<name>``: Adam's moment estimates, if saved;
* ``trained/<name>``: only for a run that keeps a moving average of the weights
  (``TrainConfig.ema``): ``param/`` then holds the average, the model to use,
  and ``trained/`` the weights the optimizer goes on from when the run resumes;
* ``meta``: one JSON string with the architecture (``arch``, the name of the
  model's class in :data:`~npixelcnn.autoregressive.ARCHITECTURES`, "pixelcnn"
  if absent, and ``model``, its settings), the optimizer's settings and
  step count, the training state (step, data order), metrics and the command
  that made the file. :mod:`npixelcnn.checkpoint_meta` reads it back, files
  of earlier versions included.

Nothing in the file is a pickled Python object, so loading one cannot run code.
Writes are atomic: the archive is written to a temporary file in the same
folder and renamed over the target only when complete, so an interruption
leaves the previous checkpoint intact.
"""

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .autoregressive import AutoregressiveModel, check_model
from .checkpoint_meta import CheckpointError, architecture_of, model_settings
from .files import write_atomically
from .layers import Conv2D
from .optim import Adam

FORMAT = "npixelcnn-checkpoint"
# 2: the training settings hold the architecture's own settings under "model" (1: one flat dict).
VERSION = 2


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns.

    model: the rebuilt model (float32), of the class its architecture names.
    optimizer: an :class:`Adam` with its saved state, or None if none was saved.
    trained_params: for a run with a weight average, the trained weights (the
        model holds the average), by parameter name; else None.
    meta: the JSON metadata (``meta["train"]``, ``meta["metrics"]``, ...).
    """

    model: AutoregressiveModel
    optimizer: Adam = None
    meta: dict = field(default_factory=dict)
    trained_params: dict = None


def save_checkpoint(model, path, optimizer=None, trained_params=None, **meta):
    """Write ``model`` (and ``optimizer``'s state) to ``path`` atomically.

    Args:
        model: a :class:`PixelCNN` or any :class:`AutoregressiveModel`.
        path: target file; ".npz" is the convention.
        optimizer: an :class:`Adam` whose moments and step count to save, or None.
        trained_params: when ``model`` holds an average of the weights, the
            trained weights to resume from (same names and shapes), or None.
        **meta: JSON-serialisable extras stored under their names, e.g.
            ``train={...}, metrics={...}, command="..."``.

    Returns the path as a :class:`pathlib.Path`.
    """
    check_model(model, "save_checkpoint expects")
    path = Path(path)
    arrays = {f"param/{name}": p for name, p in model.params.items()}
    header = {"format": FORMAT, "version": VERSION, "arch": model.arch, "model": model.config}
    if optimizer is not None:
        if not isinstance(optimizer, Adam):
            raise TypeError(f"only Adam's state can be saved, got {type(optimizer).__name__}")
        header["optimizer"] = {
            "name": "Adam", "lr": optimizer.lr, "beta1": optimizer.beta1,
            "beta2": optimizer.beta2, "eps": optimizer.eps,
            "clip_norm": optimizer.clip_norm, "t": optimizer.t,
        }
        arrays.update({f"adam_m/{name}": m for name, m in optimizer.m.items()})
        arrays.update({f"adam_v/{name}": v for name, v in optimizer.v.items()})
    if trained_params is not None:
        if set(trained_params) != set(model.params):
            raise ValueError("trained_params must have the same names as the model's parameters")
        arrays.update({f"trained/{name}": p for name, p in trained_params.items()})
    clashes = sorted(set(meta) & set(header))      # e.g. version=...: would make the file unreadable
    if clashes:
        raise TypeError(f"checkpoint metadata cannot use the reserved names {clashes}")
    header.update(meta)
    try:
        arrays["meta"] = np.array(json.dumps(header))
    except TypeError as err:
        raise TypeError(f"checkpoint metadata must be JSON-serialisable: {err}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda f: np.savez(f, **arrays))
    return path


def load_checkpoint(path):
    """Rebuild the model (and optimizer) saved in ``path``.

    Returns a :class:`Checkpoint`. Raises FileNotFoundError if there is no file,
    and :class:`CheckpointError` (with the reason) for anything that is not a
    complete npixelcnn checkpoint: another file type, a truncated or corrupt
    archive, pickled objects, or parameters that do not fit the architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":      # every .npz is a zip archive
        kind = "a .npy array" if magic == b"\x93NUM" else "not a zip archive"
        raise CheckpointError(f"{path} is {kind}, not an npixelcnn checkpoint (.npz)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as err:
        if "pickle" in str(err):
            raise CheckpointError(
                f"{path} holds pickled Python objects; checkpoints never do, and loading "
                f"them could run arbitrary code, so it is refused"
            ) from None
        raise CheckpointError(f"{path} is not a readable .npz archive: {err}") from None
    # RuntimeError: zipfile's answer to corrupt flag or compression fields
    # ("encrypted", NotImplementedError "compression method is not supported").
    except (OSError, EOFError, RuntimeError, zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(f"{path} is not a complete .npz archive (truncated or corrupt?): {err}") from None
    return _rebuild(path, arrays)


def _rebuild(path, arrays):
    meta = _read_meta(path, arrays)
    settings = model_settings(meta, path)
    try:
        model = architecture_of(meta, path)(**settings)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: invalid architecture {meta['model']}: {err}") from None
    _copy_into(path, model.params, arrays, "param", meta["model"])
    _check_masks(path, model)

    optimizer = None
    if "optimizer" in meta:
        try:
            settings = dict(meta["optimizer"])
            settings.pop("name", None)
            t = settings.pop("t")
            if not isinstance(t, int) or t < 0:
                raise ValueError(f"step count t must be an int >= 0, got {t!r}")
            optimizer = Adam(model, **settings)
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: invalid optimizer settings {meta['optimizer']}: {err!r}") from None
        optimizer.t = t
        _copy_into(path, optimizer.m, arrays, "adam_m", meta["model"])
        _copy_into(path, optimizer.v, arrays, "adam_v", meta["model"])
    trained = None
    if any(key.startswith("trained/") for key in arrays):
        trained = {name: np.zeros_like(p) for name, p in model.params.items()}
        _copy_into(path, trained, arrays, "trained", meta["model"])
    return Checkpoint(model=model, optimizer=optimizer, meta=meta, trained_params=trained)


def _read_meta(path, arrays):
    if "meta" not in arrays:
        raise CheckpointError(f"{path} has no 'meta' entry: it is an .npz file, but not an npixelcnn checkpoint")
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: its metadata is not valid JSON: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "model" not in meta:
        raise CheckpointError(f"{path}: its metadata does not describe an npixelcnn checkpoint")
    if isinstance(meta.get("version"), bool) or not isinstance(meta.get("version"), int) or meta["version"] < 1:
        raise CheckpointError(f"{path}: its metadata has no integer format version")
    if meta["version"] > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer npixelcnn (checkpoint version {meta['version']}, "
            f"this one reads up to {VERSION}); upgrade npixelcnn"
        )
    return meta


def _copy_into(path, targets, arrays, prefix, config):
    """Copy arrays[prefix/name] into targets[name] in place, checking every name and shape."""
    saved = {key[len(prefix) + 1:] for key in arrays if key.startswith(prefix + "/")}
    missing, unexpected = sorted(set(targets) - saved), sorted(saved - set(targets))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: its {prefix} arrays do not match the architecture {config}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for name, target in targets.items():
        value = arrays[f"{prefix}/{name}"]
        if not isinstance(value, np.ndarray):      # np.load gives a member without a .npy header as bytes
            raise CheckpointError(f"{path}: {prefix}/{name} is not a .npy array")
        if value.shape != target.shape:
            raise CheckpointError(
                f"{path}: {prefix}/{name} has shape {value.shape}, but the architecture "
                f"{config} needs {target.shape}"
            )
        if not np.issubdtype(value.dtype, np.floating) or not np.isfinite(value).all():
            raise CheckpointError(f"{path}: {prefix}/{name} is not a finite floating-point array")
        target[...] = value


def _check_masks(path, model):
    """Weights at the taps a convolution does not keep (a mask hides) must be exactly zero,
    as training keeps them."""
    for name, layer in model.named_leaves():
        if not isinstance(layer, Conv2D):
            continue
        hidden = np.ones(layer.params["W"].shape[:2], dtype=bool)
        hidden[layer.taps[:, 0], layer.taps[:, 1]] = False
        if np.any(layer.params["W"][hidden] != 0):
            mask = f"mask {layer.mask_type}" if hasattr(layer, "mask_type") else "its taps"
            raise CheckpointError(
                f"{path}: {name}.W has nonzero weights where {mask} hides "
                f"the input; this file was not written by npixelcnn's training"
            )
