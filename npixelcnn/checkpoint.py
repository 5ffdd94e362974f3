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
  of earlier versions included;
* ``meta_sha256`` (from version 3): the SHA-256 of ``meta``'s JSON text, in hex.
  A file whose metadata was edited after it was written is refused: an edited
  seed or training time would make a resumed run quietly a different run. It
  guards against edits and corruption, not forgery (anyone can recompute it).

Every array is finite (save refuses NaN and infinity), and nothing in the file is
a pickled Python object, so loading one cannot run code. Loading reads each
array's .npy header first and refuses sizes the archive does not hold, and
builds the model under a limit set by the parameters the file holds, so a
corrupt or edited file is refused before it can ask for gigabytes.
Writes are atomic: the archive is written to a temporary file in the same
folder and renamed over the target only when complete, so an interruption
leaves the previous checkpoint intact.
"""

import hashlib
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .autoregressive import AutoregressiveModel, check_model
from .checkpoint_meta import (EXTRA_TYPES, MAX_DEPTH, CheckpointError, architecture_of, check_extras,
                              model_settings, nesting_depth)
from .files import write_atomically
from .layers import Conv2D, ParameterLimitExceeded, parameter_limit
from .optim import Adam

FORMAT = "npixelcnn-checkpoint"
# 3: the archive holds meta_sha256, the checksum of the metadata. 2: the training settings
# hold the architecture's own settings under "model" (1: one flat dict).
VERSION = 3
CHECKSUM_VERSION = 3          # the first version whose files hold meta_sha256

# A file's model is built from its settings before its arrays are read into it, and settings
# edited (or corrupted) to hidden=100000 would allocate 10^11 floats first. The parameters the
# file holds say how large its model can be: it is built under a limit of this many times them
# (layers.parameter_limit; Conv2D allocates every parameter and checks the limit first), plus
# PARAMETER_LIMIT_MARGIN, so that a model edited to a slightly larger one still gets the
# precise message of the first array that does not fit.
PARAMETER_LIMIT_FACTOR = 4
PARAMETER_LIMIT_MARGIN = 2 ** 20

# zipfile's answers to a truncated or corrupt archive. RuntimeError: corrupt flag or compression
# fields ("encrypted", NotImplementedError "compression method is not supported").
CORRUPT_ZIP = (OSError, EOFError, RuntimeError, zipfile.BadZipFile, KeyError)


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
    # Before the file is touched: load_checkpoint refuses such a file, and the good one it
    # would replace (the last checkpoint before training diverged) must stay.
    for key, array in arrays.items():
        if not np.isfinite(array).all():
            raise ValueError(f"save_checkpoint: {key} holds NaN or infinite values; a checkpoint keeps "
                             f"finite numbers only, so {path} was left as it was")
    clashes = sorted(set(meta) & set(header))      # e.g. version=...: would make the file unreadable
    if clashes:
        raise TypeError(f"checkpoint metadata cannot use the reserved names {clashes}")
    header.update(meta)
    try:
        text = json.dumps(header)
    except (TypeError, ValueError, RecursionError) as err:     # ValueError: a circular reference
        raise TypeError(f"checkpoint metadata must be JSON-serialisable: {err}") from None
    for name, kind in EXTRA_TYPES.items():          # what load_checkpoint checks, checked here
        if name in meta and not isinstance(meta[name], kind):
            raise TypeError(f"checkpoint metadata: {name} must be a {kind.__name__}, "
                            f"got {type(meta[name]).__name__}")
    if nesting_depth(header) > MAX_DEPTH:
        raise ValueError(f"checkpoint metadata nests {nesting_depth(header)} lists or dicts deep; "
                         f"a checkpoint's may nest at most {MAX_DEPTH}")
    arrays["meta"] = np.array(text)
    arrays["meta_sha256"] = np.array(meta_checksum(text))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda f: np.savez(f, **arrays))
    return path


def meta_checksum(text):
    """The hex SHA-256 of a checkpoint's metadata text (UTF-8), stored as ``meta_sha256``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_checkpoint(path):
    """Rebuild the model (and optimizer) saved in ``path``.

    Returns a :class:`Checkpoint`. Raises FileNotFoundError if there is no file,
    and :class:`CheckpointError` (with the reason) for anything that is not a
    complete npixelcnn checkpoint: another file type, a truncated or corrupt
    archive, pickled objects, metadata edited after it was written or holding
    values no run can use, sizes the file does not hold, or parameters that do
    not fit the architecture.
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
        return _rebuild(path, _read_arrays(path))
    except MemoryError as err:
        # Sizes and model were checked against the arrays the file holds before anything was
        # allocated, so a file that still exhausts the memory describes more than any run wrote;
        # the CLI's advice for a MemoryError (ask for fewer images) would be wrong for it.
        detail = f" ({err})" if str(err) else ""       # Python's own MemoryError has no message
        raise CheckpointError(f"{path} describes an implausibly large model: loading it ran "
                              f"out of memory{detail}") from None


def _read_arrays(path):
    """Every member of the archive, by name without ".npy", each .npy header checked before its data is read."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                _check_npy_size(path, archive, info)
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except CheckpointError:
        raise
    except ValueError as err:
        if "pickle" in str(err):
            raise CheckpointError(
                f"{path} holds pickled Python objects; checkpoints never do, and loading "
                f"them could run arbitrary code, so it is refused"
            ) from None
        raise CheckpointError(f"{path} is not a readable .npz archive: {err}") from None
    except CORRUPT_ZIP as err:
        raise CheckpointError(f"{path} is not a complete .npz archive (truncated or corrupt?): {err}") from None


def _check_npy_size(path, archive, info):
    """Refuse a member whose .npy header claims another size than the member holds.

    np.load allocates the array a header describes before it reads any data: a header
    claiming 10**12 floats asks for 4 TB (a MemoryError, or with the OS's overcommit a
    process killed later). The zip directory says how many bytes the member holds, so
    this reads the header only and compares.
    """
    key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):        # np.save writes 3.0 only for unicode field names
                raise ValueError(f"format version {version}, which np.savez never writes for a checkpoint")
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
        except ValueError as err:
            raise CheckpointError(f"{path}: {key} is not a .npy array ({err})") from None
        held = info.file_size - f.tell()
    if dtype.hasobject:
        return                       # pickled objects: np.load refuses them, with that reason
    claimed = math.prod(shape) * dtype.itemsize
    if claimed != held:
        raise CheckpointError(f"{path}: {key}'s .npy header claims an array of shape {shape} "
                              f"({claimed:,} bytes of {dtype}), but the archive holds {held:,} bytes "
                              f"for it; the file is corrupt")


def _rebuild(path, arrays):
    meta = _read_meta(path, arrays)
    model = _build_model(path, meta, arrays)
    _copy_into(path, model.params, arrays, "param", meta["model"])
    _check_masks(path, model)

    optimizer = None
    if "optimizer" in meta:
        if not isinstance(meta["optimizer"], dict):
            raise CheckpointError(f"{path}: its optimizer settings must be a dict, "
                                  f"got {type(meta['optimizer']).__name__}")
        try:
            settings = dict(meta["optimizer"])
            name = settings.pop("name", "Adam")
            if name != "Adam":
                raise ValueError(f"name must be 'Adam', got {name!r}")
            t = settings.pop("t")
            if isinstance(t, bool) or not isinstance(t, int) or t < 0:
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


def _build_model(path, meta, arrays):
    """The model ``meta`` describes, built under a limit set by the parameters the file holds."""
    model_class, settings = architecture_of(meta, path), model_settings(meta, path)
    held = sum(array.size for key, array in arrays.items() if key.startswith("param/"))
    limit = PARAMETER_LIMIT_FACTOR * held + PARAMETER_LIMIT_MARGIN
    try:
        with parameter_limit(limit):
            return model_class(**settings)
    except ParameterLimitExceeded as err:
        raise CheckpointError(f"{path} describes an implausibly large model: its model settings "
                              f"{meta['model']} need more than {limit:,} parameters, but the file "
                              f"holds {held:,} ({err})") from None
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: invalid model settings {meta['model']}: {err}") from None


def _read_meta(path, arrays):
    if "meta" not in arrays:
        raise CheckpointError(f"{path} has no 'meta' entry: it is an .npz file, but not an npixelcnn checkpoint")
    text = str(arrays["meta"])
    try:
        meta = json.loads(text)
    except RecursionError:
        raise CheckpointError(f"{path}: its metadata is nested too deep to read as JSON") from None
    except ValueError as err:        # JSONDecodeError, and ints of more than 4,300 digits
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
    _check_checksum(path, meta["version"], text, arrays.get("meta_sha256"))
    if nesting_depth(meta) > MAX_DEPTH:
        raise CheckpointError(f"{path}: its metadata is nested too deep ({nesting_depth(meta)} lists or "
                              f"dicts; a checkpoint's nest at most {MAX_DEPTH})")
    check_extras(meta, path)
    return meta


def _check_checksum(path, version, text, saved):
    """Refuse metadata that does not match its checksum (files of version 3 on; earlier ones have none)."""
    if version < CHECKSUM_VERSION:
        if saved is not None:        # a version lowered by hand to skip the check
            raise CheckpointError(f"{path}: its metadata says format version {version}, which has no "
                                  f"checksum, but the file holds one (meta_sha256); the version was edited")
        return
    if saved is None:
        raise CheckpointError(f"{path}: its metadata has no checksum (meta_sha256), which every checkpoint "
                              f"of version {CHECKSUM_VERSION} and later holds")
    if saved.shape != () or saved.dtype.kind != "U" or str(saved) != meta_checksum(text):
        raise CheckpointError(f"{path}: its metadata was edited after it was written (checksum mismatch)")


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
        W = layer.params["W"]
        hidden = np.ones(W.shape[:2], dtype=bool)
        hidden[layer.taps[:, 0], layer.taps[:, 1]] = False
        centre = layer.kernel_size // 2
        # A colour layer's centre tap keeps only the weights its channel rule allows.
        hidden_at_centre = np.zeros(W.shape[2:], bool) if layer.centre_mask is None else ~layer.centre_mask
        if np.any(W[hidden] != 0) or np.any(W[centre, centre][hidden_at_centre] != 0):
            mask = f"mask {layer.mask_type}" if hasattr(layer, "mask_type") else "its taps"
            raise CheckpointError(
                f"{path}: {name}.W has nonzero weights where {mask} hides "
                f"the input; this file was not written by npixelcnn's training"
            )
