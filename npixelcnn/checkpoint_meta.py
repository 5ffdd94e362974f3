"""Reading the JSON metadata of a checkpoint: the model's settings and the run to resume.

:mod:`npixelcnn.checkpoint` writes the metadata; this module reads it back,
checking every field, and brings files written by earlier versions up to date:

* version 1 (before each architecture owned its settings) saved the training
  settings as one flat dict holding every architecture's fields (a gated run
  carried ``blocks``, a PixelCNN run ``layers`` and ``kernel_size``), and the
  Gated PixelCNN's width as ``hidden``. Reading such a file keeps, of the flat
  settings, those of the file's own architecture, under today's names
  (``renamed_settings`` of the architecture's class);
* the first files of version 1 name no architecture (PixelCNN) and lack the
  settings added since (``arch``, ``minutes``, ``ema``...): those take their defaults;
* version 2 files are as today's but hold no checksum of their metadata (version 3
  added ``meta_sha256``, which :mod:`npixelcnn.checkpoint` checks).

Every field a reader uses is checked for its type and a plausible value: the
extras (``metrics`` a dict, ``command`` a str, :func:`check_extras`), the
training settings, the state (a training time of at most ten years) and every
record of the history (:func:`training_state`). Every function raises
:class:`CheckpointError` with the reason for metadata that no run can use.
"""

import math
from dataclasses import fields

from .autoregressive import ARCHITECTURES
from .config import TrainConfig

# Training settings that the first checkpoints of version 1 lack; they take TrainConfig's defaults.
ADDED_SETTINGS = ("arch", "minutes", "ema")
# Model settings that a version-1 file holds among its training settings.
VERSION_1_MODEL_FIELDS = ("hidden", "blocks", "head", "layers", "kernel_size")
# Extras any reader of a checkpoint may use, and their types; save_checkpoint refuses others.
EXTRA_TYPES = {"metrics": dict, "command": str, "dataset": str}   # dataset: the CLI's --data (none: MNIST)
# Lists and dicts in the metadata nest at most this deep. npixelcnn writes 4 levels; the
# margin is for a user's extras, and the cap keeps every later walk of the metadata (a repr in
# an error, json.dumps when a resumed run saves) far from Python's recursion limit.
MAX_DEPTH = 32
# A training time (state.train_seconds, a record's "time") above ten years is not a run's but
# a corrupt number: 1e308 seconds would print as a 300-digit count of minutes.
MAX_SECONDS = 10 * 365.25 * 24 * 3600
SECONDS = f"a number of seconds from 0 to {MAX_SECONDS:,.0f} (10 years)"      # for the messages
# Every record of a run's history holds these (see npixelcnn.train.TrainState).
HISTORY_FIELDS = ("step", "time", "lr", "train_bits", "test_bits")


class CheckpointError(ValueError):
    """A file that is not a valid npixelcnn checkpoint."""


def architecture_of(meta, path):
    """The model class a checkpoint's metadata names (PixelCNN when it names none)."""
    arch = meta.get("arch", "pixelcnn")           # files written before other architectures existed
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise CheckpointError(f"{path} holds a model of architecture {arch!r}, which this npixelcnn "
                              f"does not know (it knows {sorted(ARCHITECTURES)})")
    return ARCHITECTURES[arch]


def nesting_depth(value):
    """How deep lists and dicts nest in ``value`` (0 for a number or a string), level by level,
    without recursion."""
    depth, level = 0, [value]
    while True:
        containers = [item for item in level if isinstance(item, (list, dict))]
        if not containers:
            return depth
        depth += 1
        level = [child for item in containers for child in (item.values() if isinstance(item, dict) else item)]


def check_extras(meta, path):
    """Raise unless ``meta``'s extras have the types of :data:`EXTRA_TYPES` (when present)."""
    for name, kind in EXTRA_TYPES.items():
        if name in meta and not isinstance(meta[name], kind):
            raise CheckpointError(f"{path}: its {name} must be a {kind.__name__}, got {type(meta[name]).__name__}")


def model_settings(meta, path):
    """The keyword arguments that rebuild the checkpoint's model (``meta["model"]``, under today's names)."""
    settings = meta["model"]
    if not isinstance(settings, dict):
        raise CheckpointError(f"{path}: its model settings must be a dict, got {type(settings).__name__}")
    if meta["version"] == 1:
        renamed = architecture_of(meta, path).renamed_settings
        settings = {renamed.get(name, name): value for name, value in settings.items()}
    return settings


def training_config(meta, path):
    """The :class:`TrainConfig` saved in a checkpoint, every field present and no other."""
    settings = meta["train"]
    if not isinstance(settings, dict):
        raise CheckpointError(f"{path}: its training settings must be a dict, got {type(settings).__name__}")
    if meta["version"] == 1:
        settings = _version_1_settings(settings, meta, path)
    names = [f.name for f in fields(TrainConfig)]
    unknown, missing = sorted(set(settings) - set(names)), [n for n in names if n not in settings]
    if unknown or missing:
        raise CheckpointError(f"{path}: its training settings do not match this version of npixelcnn: "
                              f"unknown settings {unknown}, missing settings {missing}")
    if not isinstance(settings["model"], dict):
        raise CheckpointError(f"{path}: its training settings' model must be a dict, got {settings['model']!r}")
    return TrainConfig(**settings)


def _version_1_settings(flat, meta, path):
    """A version-1 file's flat training settings -> today's: the architecture's own settings under ``model``.

    Which of the flat model fields are the architecture's own, and their names of then, are
    those of ``meta["model"]``, the settings the file's model was rebuilt from (an edited
    ``arch`` among the flat settings is then refused by the checks of the whole config)."""
    defaults = TrainConfig()
    flat = {**{name: getattr(defaults, name) for name in ADDED_SETTINGS}, **flat}
    renamed = architecture_of(meta, path).renamed_settings
    model = {renamed.get(name, name): flat[name] for name in VERSION_1_MODEL_FIELDS
             if name in flat and name in meta["model"]}
    training = {name: value for name, value in flat.items() if name not in VERSION_1_MODEL_FIELDS}
    return {**training, "model": model}


def training_state(meta, config, path):
    """(step, training seconds, history) saved in a checkpoint, checked against its config.

    The history is checked record by record (:data:`HISTORY_FIELDS`): a resumed run goes on
    appending to it, scores its last test figure and plots it, all after a file was read.
    """
    saved, history = meta["state"], meta.get("history", [])
    if not isinstance(saved, dict) or not {"step", "train_seconds"} <= set(saved):
        raise CheckpointError(f"{path}: its 'state' must be a dict with 'step' and 'train_seconds', got {saved!r}")
    step, seconds = saved["step"], saved["train_seconds"]
    if not _is_count(step) or step > config.total_steps:
        raise CheckpointError(f"{path}: its state.step must be an int from 0 to {config.total_steps} "
                              f"(the run's total_steps), got {step!r}")
    if not _is_seconds(seconds):
        raise CheckpointError(f"{path}: its state.train_seconds must be {SECONDS}, got {_shown(seconds)}")
    if not isinstance(history, list):
        raise CheckpointError(f"{path}: its history must be a list of records (dicts)")
    for i, record in enumerate(history):
        _check_record(record, f"{path}: its history[{i}]")
    return step, float(seconds), history


def _check_record(record, where):
    """Raise unless ``record`` is one record of a run's history (``where`` starts the message)."""
    if not isinstance(record, dict):
        raise CheckpointError(f"{where} must be a dict with {list(HISTORY_FIELDS)}, got {_shown(record)}")
    missing = [name for name in HISTORY_FIELDS if name not in record]
    if missing:
        raise CheckpointError(f"{where} lacks {', '.join(map(repr, missing))}")
    checks = {"step": (_is_count, "an int >= 0"), "time": (_is_seconds, SECONDS),
              "lr": (_is_finite, "a finite number"),
              "train_bits": (_is_bits, "a finite number >= 0 or null (none measured)"),
              "test_bits": (_is_bits, "a finite number >= 0 or null (none measured)")}
    for name, (check, expected) in checks.items():
        if not check(record[name]):
            raise CheckpointError(f"{where}[{name!r}] must be {expected}, got {_shown(record[name])}")


def _is_finite(value):
    """An int or float, not a bool, and finite (JSON also reads NaN, Infinity and 400-digit ints)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:            # an int too large for a float
        return False


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_seconds(value):
    return _is_finite(value) and 0 <= value <= MAX_SECONDS


def _is_bits(value):
    return value is None or (_is_finite(value) and value >= 0)


def _shown(value):
    """repr(value), cut to 40 characters: a corrupt value can be 400 digits long."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
