"""What defines a training run: :class:`TrainConfig` (training settings plus the
model's own settings; each architecture keeps its presets in its own module), and the schedules
that depend only on it (the learning rate at each step, the steps after which
the test set is scored, the number of steps in some epochs).

Everything here is a pure function of the config and the step, which is what
lets a resumed run continue bit for bit (see :mod:`npixelcnn.train`).
"""

import inspect
import math
from dataclasses import dataclass, field

from .autoregressive import architecture
from .validation import check_levels, check_positive_int, check_positive_number, check_real


# The longest run a config may ask for. Even the smallest preset takes days for ten million
# steps on a CPU; a longer run is a typo (an extra zero, 1e20 for 1e2), and it would never
# leave the peak of the learning-rate schedule, whose cosine is spread over the whole run.
MAX_STEPS = 10_000_000


@dataclass
class TrainConfig:
    """Everything that defines a run (saved in every checkpoint).

    arch: the model's architecture, a name in ``ARCHITECTURES`` (see
        :mod:`npixelcnn.autoregressive`); "pixelcnn" is :class:`PixelCNN`,
        "gated" :class:`GatedPixelCNN`.
    levels: the intensity levels of the data and of the model's output.
    model: the architecture's own settings, by the names its class takes
        (PixelCNN: hidden, blocks, head; GatedPixelCNN: channels, layers,
        kernel_size, head); a setting left out takes the class's default.
    batch_size, lr: minibatch size and Adam's peak learning rate.
    warmup_steps: the learning rate rises linearly from 0 over these steps...
    final_lr_fraction: ...then follows a cosine down to lr * this at the last step.
    clip_norm: gradients are clipped to this global norm (the seed used 1.0).
    ema: the decay of a moving average of the weights
        (:class:`~npixelcnn.optim.WeightAverage`), which the run then evaluates
        and saves as the model to use; None: no average, the trained weights are the model.
    total_steps: length of the run; set from epochs, or from a time budget.
    minutes: a budget of training time, or None. When set, the run checks the
        clock as it goes and moves ``total_steps`` (and with it the end of the
        learning-rate schedule) so that it ends when the budget is spent: a
        first estimate from timing a few steps is often off on a busy machine.
    evals: how many test-set evaluations, spread evenly over the run, the last
        one at the final step (see :func:`evaluation_steps`).
    seed: seeds both the weights and the data order.
    """

    arch: str = "pixelcnn"
    levels: int = 4
    model: dict = field(default_factory=dict)
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 100
    final_lr_fraction: float = 0.0
    clip_norm: float = 1.0
    ema: float | None = None
    total_steps: int = 1000
    minutes: float | None = None
    evals: int = 10
    seed: int = 0

    @classmethod
    def from_preset(cls, arch, preset, **settings):
        """The config of ``arch``'s preset ``preset`` (see ``ARCHITECTURES[arch].presets``),
        with any setting of this class given in ``settings`` instead of the preset's."""
        presets = architecture(arch).presets
        if preset not in presets:
            raise ValueError(f"architecture {arch!r} has the presets {sorted(presets)}, not {preset!r}")
        chosen = presets[preset]
        return cls(**{"arch": arch, "model": dict(chosen.model), **chosen.training, **settings})

    def model_settings(self):
        """The keyword arguments that build the model: ``levels`` and the architecture's own settings."""
        return {"levels": self.levels, **self.model}


def check_train_config(config):
    """Raise a clear TypeError or ValueError for a setting no run can use.

    Called for every new :class:`Trainer`, and so for every resumed checkpoint.
    The values of the architecture's own settings are checked by its class.
    """
    model_class = architecture(config.arch)
    check_levels(config.levels)
    if not isinstance(config.model, dict) or not all(isinstance(name, str) for name in config.model):
        raise TypeError(f"model must be a dict of the architecture's settings by name, got {config.model!r}")
    if "levels" in config.model or "seed" in config.model:
        raise ValueError("model holds the architecture's own settings; levels and seed are settings of "
                         "the run (TrainConfig.levels, TrainConfig.seed)")
    own = [name for name in inspect.signature(model_class).parameters if name not in ("levels", "seed")]
    unknown = sorted(set(config.model) - set(own))
    if unknown:
        raise ValueError(f"the architecture {config.arch!r} has no settings {unknown}; its settings are {own}")
    check_positive_int(config.batch_size, "batch_size")
    check_positive_number(config.lr, "lr")
    check_positive_int(config.warmup_steps, "warmup_steps", minimum=0)
    check_real(config.final_lr_fraction, "final_lr_fraction")
    if not 0 <= config.final_lr_fraction <= 1:
        raise ValueError(f"final_lr_fraction must be in [0, 1], got {config.final_lr_fraction}")
    if config.clip_norm is not None:                  # None: no clipping
        check_positive_number(config.clip_norm, "clip_norm")
    if config.ema is not None:                        # None: no weight average
        check_real(config.ema, "ema")
        if not 0 < config.ema < 1:
            raise ValueError(f"ema (the weight average's decay) must be in (0, 1), e.g. 0.9995, got {config.ema}")
    check_positive_int(config.total_steps, "total_steps")
    if config.total_steps > MAX_STEPS:
        raise ValueError(f"total_steps must be at most {MAX_STEPS:,} (see config.MAX_STEPS), got {config.total_steps:,}")
    if config.minutes is not None:                    # None: the run is fixed in steps
        check_positive_number(config.minutes, "minutes")
    check_positive_int(config.evals, "evals")
    check_positive_int(config.seed, "seed", minimum=0)


def evaluation_steps(total_steps, evals):
    """The steps after which the test set is scored: ``evals`` of them, evenly spread.

    Step ceil(k * total_steps / evals) for k = 1..evals, so the last one is the
    final step and none comes twice (a short run gets one per step at most).

    Returns a sorted list of ints in [1, total_steps].
    """
    return sorted({next_evaluation(total_steps, evals, done) for done in range(evals)})


def next_evaluation(total_steps, evals, done):
    """The step of the next test-set evaluation when ``done`` of ``evals`` have been made:
    ceil((done + 1) * total_steps / evals). A run whose ``total_steps`` moves (a time budget)
    asks again after every step, so no evaluation is skipped or made twice."""
    return -(-(done + 1) * total_steps // evals)


def learning_rate(config, step):
    """The learning rate for update number ``step`` (0-based): linear warmup, then cosine decay."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    decay_steps = max(config.total_steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / decay_steps, 1.0)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * (config.final_lr_fraction + (1 - config.final_lr_fraction) * cosine)


def steps_for_epochs(epochs, n_images, batch_size):
    """Number of updates in ``epochs`` passes over ``n_images`` (partial batches dropped; may be 0)."""
    return int(round(epochs * (n_images // batch_size)))
