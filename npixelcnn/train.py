"""Training and evaluation: minibatches, Adam, a learning-rate schedule, bits/dim.

One training step: take a batch of level images, feed level / (levels - 1) to
the model, score its logits against the levels with the softmax cross-entropy,
backpropagate, update with Adam. The mean NLL per pixel in nats divided by ln 2
is the figure everyone reports: bits per dimension.

The data order is a pure function of (seed, epoch): epoch e visits the training
images in the order ``default_rng([seed, e]).permutation(N)``. With the step
count, Adam's state and a schedule that depends only on the step, this makes a
resumed run bit-for-bit identical to an uninterrupted one.
"""

import math
import signal
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .autoregressive import build_model, check_model
from .config import TrainConfig, check_train_config, learning_rate, next_evaluation
from .data import to_model_input
from .losses import nats_to_bits, softmax_cross_entropy, total_nll
from . import ops
from .optim import Adam, WeightAverage
from .progress import paused, tqdm
from .validation import check_level_images, check_positive_int


@dataclass
class TrainState:
    """Where a run is: the step, the training time so far and the history of metrics.

    history: one dict per record, {"step", "time" (training seconds), "lr",
    "train_bits" (mean over the steps since the last record), "test_bits" (or None)}.
    """

    step: int = 0
    train_seconds: float = 0.0
    history: list = field(default_factory=list)

    @property
    def last_test_bits(self):
        tested = [h["test_bits"] for h in self.history if h.get("test_bits") is not None]
        return tested[-1] if tested else None


class TrainingDiverged(RuntimeError):
    """The loss exploded, or the loss or the gradients became NaN or infinite."""


# A run has diverged when its mean loss over the last DIVERGENCE_WINDOW steps is
# more than DIVERGENCE_FACTOR times a uniform guess over the levels (log L nats
# per pixel, log2 L bits/dim). A fresh model starts near that guess and training
# only goes down from it; a learning rate that is far too high sends the loss to
# 1e8 and beyond without ever making it NaN.
DIVERGENCE_WINDOW = 20
DIVERGENCE_FACTOR = 3.0


def evaluate(model, levels_images, batch_size=50, progress=False):
    """Mean NLL of a set of images in nats per dimension (divide by ln 2 for bits).

    Args:
        model: a :class:`PixelCNN`, or any model of :mod:`npixelcnn.autoregressive`.
        levels_images: (N, H, W) integer levels in [0, model.levels).
        batch_size: images per forward pass. Small batches keep the activations
            in cache: the shipped model scored the test set in 26 s with 50
            images per pass and in 48 s with 500 (2 cores). Each core scores a
            part of every batch (:func:`npixelcnn.ops.batch_total`).

    The model runs in inference mode (no caches, no backward pass) and is put
    back in the mode it was in.
    """
    check_positive_int(batch_size, "batch_size")
    levels_images = np.asarray(levels_images)
    if len(levels_images) == 0:       # the mean of nothing: say so, rather than divide by zero
        raise ValueError("evaluate: no images to evaluate (got an empty array)")
    check_model(model, "evaluate expects")
    levels_images = check_level_images(levels_images, model.levels, "evaluate")
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        starts = range(0, len(levels_images), batch_size)
        for start in tqdm(starts, desc="evaluating", leave=False, disable=not progress):
            batch = levels_images[start:start + batch_size]
            x = to_model_input(batch, model.levels).astype(model.dtype, copy=False)   # float64 models too
            # Each core scores a part of the batch with its own copy of the model (ops.batch_total).
            total += ops.batch_total(_batch_nll, model, x, batch)
    finally:
        model.train(was_training)
    return total / levels_images.size


def _batch_nll(model, x, levels_batch):
    """The total NLL in nats of a batch: x (N, H, W, 1) model input, levels_batch (N, H, W)."""
    return total_nll(model.forward(x), levels_batch)


class Trainer:
    """Runs (and resumes) the training loop of one model.

    Args:
        config: a :class:`TrainConfig`.
        train_images, test_images: (N, H, W) integer levels.
        model: the model to train (any :class:`AutoregressiveModel`), or None
            to build ``config.arch`` with ``config.model_config()``.
        optimizer, state: to resume a run; new ones are built when None.
    """

    def __init__(self, config, train_images, test_images, model=None, optimizer=None, state=None):
        check_train_config(config)
        self.config = config
        self.train_images = np.asarray(train_images)
        self.test_images = np.asarray(test_images)
        if len(self.train_images) < config.batch_size:
            raise ValueError(
                f"batch_size {config.batch_size} is larger than the training set "
                f"({len(self.train_images)} images)"
            )
        self.model = (model if model is not None
                      else build_model(config.arch, config.model_config(), seed=config.seed))
        check_model(self.model, "Trainer expects")
        if self.model.levels != config.levels:
            raise ValueError(f"Trainer: the model predicts {self.model.levels} levels but the "
                             f"config says levels={config.levels}")
        self.optimizer = optimizer if optimizer is not None else Adam(
            self.model, lr=config.lr, clip_norm=config.clip_norm
        )
        self.state = state if state is not None else TrainState()
        # With config.ema the run keeps a moving average of the weights, and evaluates and saves
        # that average as the model to use; training itself goes on from the trained weights.
        self.average = None if config.ema is None else WeightAverage(self.model.params, config.ema)
        self._epoch_order = (None, None)
        self._recent_losses = deque(maxlen=DIVERGENCE_WINDOW)
        self.stopped_by = None            # set by run(): "SIGINT" (Ctrl-C) or "SIGTERM" (kill) if one ended it

    @property
    def interrupted(self):
        """True when a signal (Ctrl-C, kill) ended the last :meth:`run` before its end."""
        return self.stopped_by is not None

    # -- data order -------------------------------------------------------
    def batch_indices(self, step):
        """Indices of the training images used at update ``step``."""
        per_epoch = len(self.train_images) // self.config.batch_size     # the last partial batch is dropped
        epoch, position = divmod(step, per_epoch)
        if self._epoch_order[0] != epoch:
            order = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.train_images))
            self._epoch_order = (epoch, order)
        start = position * self.config.batch_size
        return self._epoch_order[1][start:start + self.config.batch_size]

    # -- one update -------------------------------------------------------
    def train_step(self):
        """One Adam update on the next minibatch; returns its loss in nats per dimension."""
        step = self.state.step
        batch = self.train_images[self.batch_indices(step)]
        loss = ops.forward_backward(self.forward_backward, self.model,
                                    to_model_input(batch, self.config.levels), batch)
        self.check_loss(loss, step)               # before the update: the parameters stay as they were
        self.optimizer.lr = learning_rate(self.config, step)
        with np.errstate(over="ignore", invalid="ignore"):
            self.optimizer.step()
        if not math.isfinite(self.optimizer.last_grad_norm or 0.0):
            raise TrainingDiverged(f"the gradients became NaN or infinite at step {step}")
        self.state.step += 1
        if self.average is not None:
            self.average.update(self.model.params, self.state.step)
        return loss

    def forward_backward(self, model, x, levels_batch):
        """Forward pass, loss and backward pass of ``model`` on a batch; fills ``model.grads``.

        Args:
            model: the model, or one of its replicas (:func:`npixelcnn.ops.forward_backward`
                runs this on a part of the batch on each core).
            x: (N, H, W, 1) the model's input; levels_batch: (N, H, W) the levels to predict.

        Returns:
            the mean NLL of the batch in nats per dimension.
        """
        # Overflow shows up as inf/NaN, which is checked right below with a clear
        # message; NumPy's RuntimeWarnings would only bury it.
        with np.errstate(over="ignore", invalid="ignore"):
            logits = model.forward(x)
            if not np.isfinite(logits).all():
                raise TrainingDiverged(
                    f"the model's outputs became NaN or infinite at step {self.state.step} (learning "
                    f"rate {self.optimizer.lr:.3g}); try a lower --lr, and keep gradient clipping on"
                )
            loss, dlogits = softmax_cross_entropy(logits, levels_batch)
            model.backward(dlogits)
        return loss

    def check_loss(self, loss, step):
        """Raise :class:`TrainingDiverged` when the recent losses (nats/dim) have exploded.

        See :data:`DIVERGENCE_FACTOR`: the mean of the last
        :data:`DIVERGENCE_WINDOW` losses, ``loss`` included, must stay below
        that many times the loss of a uniform guess, ln L.
        """
        self._recent_losses.append(loss)
        mean = float(np.mean(self._recent_losses))
        uniform = math.log(self.config.levels)
        if mean > DIVERGENCE_FACTOR * uniform:
            raise TrainingDiverged(
                f"the training loss rose to {nats_to_bits(mean):.3g} bits/dim at step {step} (mean of the "
                f"last {len(self._recent_losses)} steps), over {DIVERGENCE_FACTOR:g} times a uniform guess "
                f"({nats_to_bits(uniform):g} bits/dim); the learning rate ({self.optimizer.lr:.3g} at this "
                f"step) is too high: try a lower --lr"
            )

    # -- the loop ---------------------------------------------------------
    def run(self, max_steps=None, on_checkpoint=None, checkpoint_every=300.0, progress=True):
        """Train until ``config.total_steps`` (or ``max_steps`` more), or Ctrl-C.
        With a time budget (``config.minutes``), ``total_steps`` moves as the run
        goes so that it ends when the budget is spent (:class:`BudgetCheck`).

        Args:
            max_steps: stop after this many more steps (None: run to the end).
            on_checkpoint: called as ``on_checkpoint(trainer)`` after every test
                evaluation, every ``checkpoint_every`` seconds and when the loop
                ends (normally or by Ctrl-C; not when training diverges, so the
                last good checkpoint stays); once per step at most.
            progress: show a tqdm bar with bits/dim and images per second,
                and print the test figure at each evaluation.

        Returns the :class:`TrainState`. Raises :class:`TrainingDiverged` when
        the loss becomes NaN or infinite.
        """
        cfg, state = self.config, self.state
        stop_at = None if max_steps is None else state.step + max_steps
        evals_done = sum(h["test_bits"] is not None for h in state.history)
        record_every = max(min(50, cfg.total_steps // cfg.evals), 1)
        budget_check = BudgetCheck(self) if cfg.minutes is not None else None
        losses, last_save, saved_step = [], time.perf_counter(), None
        # The bar's rate and remaining time count training steps only: evaluations
        # and saves run "paused", outside its clock.
        bar = tqdm(total=cfg.total_steps, initial=state.step, desc="training", unit="step",
                   disable=not progress, dynamic_ncols=True)
        with stop_on_interrupt() as stop:
            try:
                while state.step < cfg.total_steps and state.step != stop_at and not stop.is_set():
                    started = time.perf_counter()
                    losses.append(self.train_step())
                    seconds = time.perf_counter() - started
                    state.train_seconds += seconds
                    if budget_check is not None and budget_check.moved_the_end():
                        bar.total = cfg.total_steps
                    bar.update(1)
                    bar.set_postfix(bits=f"{nats_to_bits(losses[-1]):.4f}",
                                    img_s=f"{cfg.batch_size / seconds:.0f}", refresh=False)
                    at_eval = state.step >= next_evaluation(cfg.total_steps, cfg.evals, evals_done)
                    at_record = at_eval or state.step % record_every == 0
                    at_save = on_checkpoint is not None and (
                        at_eval or time.perf_counter() - last_save > checkpoint_every)
                    if at_record or at_save:
                        with paused(bar):
                            if at_record:
                                self.record(losses, test=at_eval)
                                losses, evals_done = [], evals_done + at_eval
                            if at_save:
                                on_checkpoint(self)
                                last_save, saved_step = time.perf_counter(), state.step
                    if at_eval and progress:       # after the pause: the bar it redraws has the pause removed
                        bar.write(f"step {state.step}: test {state.last_test_bits:.4f} bits/dim")
            finally:
                bar.close()
        if losses:
            self.record(losses, test=False)
        if on_checkpoint and saved_step != state.step:     # not twice for the same step
            on_checkpoint(self)
        self.stopped_by = stop.signal_name
        return state

    @contextmanager
    def weights_to_use(self):
        """Within the block the model holds the weights to evaluate, sample and save: the
        average of the weights if the run keeps one (``config.ema``), else the trained ones.

        Yields a copy of the trained weights when they were swapped out, else None.
        """
        if self.average is None:
            yield None
        else:
            with self.average.swapped_in(self.model.params) as trained:
                yield trained

    def record(self, losses, test):
        """Append one history entry: mean train bits/dim of ``losses``, and the test set if asked."""
        test_bits = None
        if test:
            with self.weights_to_use():
                test_bits = nats_to_bits(evaluate(self.model, self.test_images))
        self.state.history.append({
            "step": self.state.step,
            "time": round(self.state.train_seconds, 3),
            "lr": self.optimizer.lr,
            "train_bits": nats_to_bits(float(np.mean(losses))) if losses else None,
            "test_bits": test_bits,
        })

    def save(self, path, **meta):
        """Write a checkpoint that :meth:`resume` continues exactly; extra ``meta`` is stored too.

        The file's model is the one to use (:meth:`weights_to_use`); with a weight
        average, the trained weights the optimizer goes on from are saved beside it.
        """
        with self.weights_to_use() as trained:
            return save_checkpoint(self.model, path, self.optimizer, trained_params=trained,
                                   **self.checkpoint_meta(), **meta)

    @classmethod
    def resume(cls, path, train_images, test_images):
        """Rebuild the Trainer saved by :meth:`save`, at the step where it stopped."""
        return cls.from_checkpoint(load_checkpoint(path), train_images, test_images, path)

    @classmethod
    def from_checkpoint(cls, ckpt, train_images, test_images, path="the checkpoint"):
        """The Trainer held by a loaded :class:`Checkpoint` (see :meth:`resume`).

        Raises :class:`CheckpointError`, with the reason, when the training
        metadata is missing, incomplete, has settings no run can use, or
        disagrees with the model the file holds.
        """
        if ckpt.optimizer is None or "train" not in ckpt.meta or "state" not in ckpt.meta:
            raise CheckpointError(f"{path} holds a model but no training state to resume")
        config = _config_from_meta(ckpt.meta["train"], path)
        try:
            check_train_config(config)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: its training settings are invalid: {err}") from None
        for key, value in {"arch": ckpt.model.arch, **ckpt.model.config}.items():
            if getattr(config, key, value) != value:
                raise CheckpointError(f"{path}: its training settings say {key}={getattr(config, key)!r} but "
                                      f"the model it holds has {key}={value!r}; the file was edited")
        state = _state_from_meta(ckpt.meta, config, path)
        if (config.ema is None) != (ckpt.trained_params is None):
            raise CheckpointError(
                f"{path}: its training settings say ema={config.ema!r} but the file "
                f"{'has no' if ckpt.trained_params is None else 'has'} trained weights beside the "
                f"averaged ones; the file was edited")
        trainer = cls(config, train_images, test_images, ckpt.model, ckpt.optimizer, state)
        if ckpt.trained_params is not None:
            # The file's model holds the average (the trainer's average starts as a copy of
            # it); training goes on from the trained weights.
            for name, p in trainer.model.params.items():
                p[...] = ckpt.trained_params[name]
        return trainer

    def checkpoint_meta(self):
        """The JSON metadata a checkpoint of this run needs to resume it exactly."""
        return {
            "train": asdict(self.config),
            "state": {"step": self.state.step, "train_seconds": self.state.train_seconds},
            "rng": {"data_order": "numpy default_rng([seed, epoch]).permutation(N)",
                    "seed": self.config.seed,
                    "epoch_and_batch": divmod(self.state.step, len(self.train_images) // self.config.batch_size)},
            "history": self.state.history,
        }


ADDED_SETTINGS = ("arch", "layers", "kernel_size", "minutes", "ema")   # not in checkpoints of version 0.1.0


def _config_from_meta(settings, path):
    """The TrainConfig saved in a checkpoint, every field present and no other."""
    if not isinstance(settings, dict):
        raise CheckpointError(f"{path}: its training settings must be a dict, got {type(settings).__name__}")
    # Written before other architectures existed: the settings added since take their defaults.
    settings = {**{name: getattr(TrainConfig, name) for name in ADDED_SETTINGS}, **settings}
    names = [f.name for f in fields(TrainConfig)]
    unknown, missing = sorted(set(settings) - set(names)), [n for n in names if n not in settings]
    if unknown or missing:
        raise CheckpointError(f"{path}: its training settings do not match this version of npixelcnn: "
                              f"unknown settings {unknown}, missing settings {missing}")
    return TrainConfig(**settings)


def _state_from_meta(meta, config, path):
    """The TrainState saved in a checkpoint, checked against its config."""
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
    return TrainState(step=step, train_seconds=float(seconds), history=history)


class StopRequest(threading.Event):
    """Set by a signal; ``signal_name`` says which ("SIGINT" for Ctrl-C, "SIGTERM" for kill)."""

    signal_name = None


@contextmanager
def stop_on_interrupt():
    """Turn Ctrl-C (SIGINT) and ``kill`` (SIGTERM) into a flag the loop checks between steps.

    An interrupt in the middle of ``optimizer.step()`` would leave some
    parameters updated and others not; with the flag the current step finishes,
    the loop ends and the caller saves a consistent checkpoint. A second Ctrl-C
    raises KeyboardInterrupt as usual.
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop                        # signals only reach the main thread
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.signal_name = signal.Signals(signum).name
        stop.set()
        print(f"\n{stop.signal_name}: finishing this step and saving; "
              f"press Ctrl-C again to abort without saving.")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old_handler in previous.items():
            signal.signal(sig, old_handler)


class BudgetCheck:
    """Keeps a run with a time budget (``config.minutes``) to that budget, by the clock.

    The schedule needs to know where the run ends, so a budget is first turned into
    steps by timing a few (:func:`steps_for_minutes`). That estimate is often off:
    the machine gets busier or quieter, caches warm up. So every ``every`` steps the
    run's own seconds per step so far give a new end, ``total_steps`` moves there,
    and the learning rate's cosine stretches or shrinks with it; the run stops at
    once if the budget is spent. The first checks may move the end far (a bad first
    estimate); later ones, from the speed averaged over the whole run, move it little.
    """

    def __init__(self, trainer, every=25):
        self.trainer, self.every = trainer, every
        state = trainer.state
        self.start = (state.step, state.train_seconds)      # this process's steps tell its speed

    def moved_the_end(self):
        """Called after each step: move ``config.total_steps`` if it is time to; True if it moved."""
        config, state = self.trainer.config, self.trainer.state
        budget = config.minutes * 60
        steps, seconds = state.step - self.start[0], state.train_seconds - self.start[1]
        if state.train_seconds >= budget:
            new_total = state.step                           # spent: this was the last step
        elif steps % self.every == 0 or state.step >= config.total_steps:    # and before ending
            per_step = max(seconds / steps, 1e-9)
            new_total = state.step + int((budget - state.train_seconds) / per_step + 1e-6)   # 0.99999... is 1
        else:
            return False
        moved, config.total_steps = new_total != config.total_steps, new_total
        return moved


def steps_for_minutes(trainer, minutes, probe_steps=20):
    """How many steps fit in ``minutes`` of training, from timing a few real ones.

    The schedule needs the run's length in steps before it starts, so a time
    budget is turned into steps once, here. The probe trains for
    ``probe_steps`` + 1 steps, then rewinds the parameters, Adam's state and
    the step count, so the run itself starts from the untouched model.

    Returns (steps, seconds per step).
    """
    saved = ({k: p.copy() for k, p in trainer.model.params.items()},
             {k: m.copy() for k, m in trainer.optimizer.m.items()},
             {k: v.copy() for k, v in trainer.optimizer.v.items()},
             trainer.optimizer.t, trainer.state.step)
    trainer.train_step()                   # the first step allocates buffers: not timed
    started = time.perf_counter()
    for _ in range(probe_steps):
        trainer.train_step()
    per_step = (time.perf_counter() - started) / probe_steps
    params, m, v, t, step = saved
    for name in params:
        trainer.model.params[name][...] = params[name]
        trainer.optimizer.m[name][...] = m[name]
        trainer.optimizer.v[name][...] = v[name]
    trainer.optimizer.t, trainer.state.step = t, step
    return max(int(minutes * 60 / per_step), 1), per_step
