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
  settings added since (``arch``, ``minutes``, ``ema``...): those take their defaults.

Every function raises :class:`CheckpointError` with the reason for metadata
that no run can use.
"""

import math
from dataclasses import fields

from .autoregressive import ARCHITECTURES
from .config import TrainConfig

# Training settings that the first checkpoints of version 1 lack; they take TrainConfig's defaults.
ADDED_SETTINGS = ("arch", "minutes", "ema")
# Model settings that a version-1 file holds among its training settings.
VERSION_1_MODEL_FIELDS = ("hidden", "blocks", "head", "layers", "kernel_size")


class CheckpointError(ValueError):
    """A file that is not a valid npixelcnn checkpoint."""


def architecture_of(meta, path):
    """The model class a checkpoint's metadata names (PixelCNN when it names none)."""
    arch = meta.get("arch", "pixelcnn")           # files written before other architectures existed
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise CheckpointError(f"{path} holds a model of architecture {arch!r}, which this npixelcnn "
                              f"does not know (it knows {sorted(ARCHITECTURES)})")
    return ARCHITECTURES[arch]


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
    """(step, training seconds, history) saved in a checkpoint, checked against its config."""
    saved, history = meta["state"], meta.get("history", [])
    if not isinstance(saved, dict) or not {"step", "train_seconds"} <= set(saved):
        raise CheckpointError(f"{path}: its 'state' must be a dict with 'step' and 'train_seconds', got {saved!r}")
    step, seconds = saved["step"], saved["train_seconds"]
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= config.total_steps:
        raise CheckpointError(f"{path}: its state.step must be an int from 0 to {config.total_steps} "
                              f"(the run's total_steps), got {step!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise CheckpointError(f"{path}: its state.train_seconds must be a finite number >= 0, got {seconds!r}")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise CheckpointError(f"{path}: its history must be a list of records (dicts)")
    return step, float(seconds), history
