"""What defines a training run: presets, :class:`TrainConfig`, and the schedules
that depend only on it (the learning rate at each step, the steps after which
the test set is scored, the number of steps in some epochs).

Everything here is a pure function of the config and the step, which is what
lets a resumed run continue bit for bit (see :mod:`npixelcnn.train`).
"""

import inspect
import math
from dataclasses import dataclass, fields

from .autoregressive import ARCHITECTURES
from .validation import check_levels, check_positive_int, check_positive_number, check_real

# Presets: an architecture and the training settings measured to suit it.
# "small" is what two CPU cores train well in minutes and "medium" what they
# train well in two hours (see the README for the measurements behind them);
# "seed" is the seed tutorial's architecture.
PRESETS = {
    "small": dict(hidden=32, blocks=5, head=64, batch_size=16, lr=6e-3, warmup_steps=100),
    "medium": dict(hidden=32, blocks=10, head=64, batch_size=32, lr=3e-3, warmup_steps=200),
    "seed": dict(hidden=64, blocks=15, head=128, batch_size=64, lr=2e-3, warmup_steps=200),
}

# The same for the Gated PixelCNN (``--arch gated``): presets by architecture. "small" won a
# 3-minute equal-time sweep of four gated configurations (README). "medium": 10 layers of
# k = 3 see 11 rows up, and batches of 16 give twice the updates of 32 in the same time; its
# 2-hour runs all ended at 0.2004 bits/dim. "medium-k5" is the same with 5x5 kernels: each
# step costs about twice as much, but 10 layers see 21 rows up, and in 2 hours on 2 cores it
# trains the shipped checkpoint (checkpoints/gated_mnist4.npz, README). A wider, deeper one
# (h=48, 12 layers of k = 3, head 96, the same schedule) scored worse than "medium" (README).
GATED_PRESETS = {
    "small": dict(hidden=16, layers=6, head=32, batch_size=16, lr=6e-3, warmup_steps=100),
    "medium": dict(hidden=32, layers=10, head=64, batch_size=16, lr=4e-3, warmup_steps=200),
    "medium-k5": dict(hidden=32, layers=10, kernel_size=5, head=64, batch_size=16, lr=4e-3, warmup_steps=200),
}
PRESETS_BY_ARCH = {"pixelcnn": PRESETS, "gated": GATED_PRESETS}      # the key names the architecture


@dataclass
class TrainConfig:
    """Everything that defines a run (saved in every checkpoint).

    arch: the model's architecture, a name in ``ARCHITECTURES`` (see
        :mod:`npixelcnn.autoregressive`); "pixelcnn" is :class:`PixelCNN`,
        "gated" :class:`GatedPixelCNN`.
    levels, hidden, blocks, head, layers, kernel_size: the model's settings;
        each architecture takes those its class names (PixelCNN: levels,
        hidden, blocks, head; GatedPixelCNN: levels, hidden, layers,
        kernel_size, head), see :meth:`model_config`.
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

    levels: int = 4
    arch: str = "pixelcnn"
    hidden: int = 32
    blocks: int = 5
    head: int = 64
    layers: int = 8
    kernel_size: int = 3
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

    def model_config(self):
        """The settings the architecture's class takes, from this config (``model.config``)."""
        takes = inspect.signature(ARCHITECTURES[self.arch]).parameters
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in takes and f.name != "seed"}


def check_train_config(config):
    """Raise a clear TypeError or ValueError for a setting no run can use.

    Called for every new :class:`Trainer`, and so for every resumed checkpoint.
    The architecture's settings (hidden, blocks, head) are checked by its class.
    """
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.arch!r}; expected one of {sorted(ARCHITECTURES)}")
    check_levels(config.levels)
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
