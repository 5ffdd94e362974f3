"""Training: minibatches, Adam, a learning-rate schedule, test evaluations in bits/dim.

One training step: take a batch of level images, feed level / (levels - 1) to
the model, score its outputs against the levels with the NLL of its output distribution
(the softmax cross-entropy by default; :mod:`npixelcnn.distributions`),
backpropagate, update with Adam. The mean NLL per pixel in nats divided by ln 2
is the figure everyone reports: bits per dimension.

The data order is a pure function of (seed, epoch): epoch e visits the training
images in the order ``default_rng([seed, e]).permutation(N)``. With the step
count, Adam's state and a schedule that depends only on the step, this makes a
resumed run bit-for-bit identical to an uninterrupted one.
"""

import math
import time
import warnings
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np

from .autoregressive import build_model, check_model
from .checkpoint import load_checkpoint, save_checkpoint
from .checkpoint_meta import CheckpointError, training_config, training_state
from .conditioning import check_labels
from .config import check_train_config, learning_rate, next_evaluation
from .data import to_model_input
from .data_identity import check_data_record, check_same_data, data_record
from .data_parallel import split_loss_and_gradients
from .evaluation import evaluate
from .losses import nats_to_bits
from .optim import Adam, WeightAverage
from .progress import paused, tqdm
from .run_control import BudgetCheck, stop_on_interrupt
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


class Trainer:
    """Runs (and resumes) the training loop of one model.

    Args:
        config: a :class:`TrainConfig`.
        train_images, test_images: (N, H, W) integer levels ((N, H, W, C) for a colour model).
        model: the model to train (any :class:`AutoregressiveModel`), or None
            to build ``config.arch`` with ``config.model_settings()``.
        optimizer, state: to resume a run; new ones are built when None.
        parallel: split every batch over the cores, each with a replica of the
            model (:mod:`npixelcnn.data_parallel`), in training and in the test
            evaluations. Off by default: every pass runs on the model itself, in
            the caller's thread, where a learner's breakpoint stops it. The
            command line turns it on.
        train_labels, test_labels: (N,) the classes of the images, for a
            class-conditional model (``classes`` in its settings), which then
            learns p(x | y) and is evaluated on it; None for a model without classes.
    """

    def __init__(self, config, train_images, test_images, model=None, optimizer=None, state=None,
                 parallel=False, train_labels=None, test_labels=None):
        check_train_config(config)
        self.config = config
        self.model = (model if model is not None
                      else build_model(config.arch, config.model_settings(), seed=config.seed))
        check_model(self.model, "Trainer expects")
        if self.model.levels != config.levels:
            raise ValueError(f"Trainer: the model predicts {self.model.levels} levels but the "
                             f"config says levels={config.levels}")
        channels = self.model.in_channels                 # (N, H, W) grey images, (N, H, W, C) colour
        self.train_images = check_level_images(np.asarray(train_images), config.levels, "Trainer (train_images)",
                                               channels=channels)
        self.test_images = check_level_images(np.asarray(test_images), config.levels, "Trainer (test_images)",
                                              channels=channels)
        if len(self.train_images) < config.batch_size:
            raise ValueError(
                f"batch_size {config.batch_size} is larger than the training set "
                f"({len(self.train_images)} images)"
            )
        self.train_labels = check_labels(train_labels, self.model.classes, len(self.train_images),
                                         "Trainer (train_labels)")
        self.test_labels = check_labels(test_labels, self.model.classes, len(self.test_images),
                                        "Trainer (test_labels)")
        # What the checkpoints record of the data, so that a resume gets the same.
        self.data = data_record(self.train_images, self.test_images, self.train_labels, self.test_labels)
        self.optimizer = optimizer if optimizer is not None else Adam(
            self.model, lr=config.lr, clip_norm=config.clip_norm
        )
        self.state = state if state is not None else TrainState()
        # With config.ema the run keeps a moving average of the weights, and evaluates and saves
        # that average as the model to use; training itself goes on from the trained weights.
        self.average = None if config.ema is None else WeightAverage(self.model.params, config.ema)
        self._epoch_order = (None, None)
        self._recent_losses = deque(maxlen=DIVERGENCE_WINDOW)
        self.parallel = bool(parallel)
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
        indices = self.batch_indices(step)
        batch = self.train_images[indices]
        labels = None if self.train_labels is None else self.train_labels[indices]
        x = to_model_input(batch, self.config.levels)
        if self.parallel:
            loss = split_loss_and_gradients(self.loss_and_gradients, self.model, x, batch, labels)
        else:
            loss = self.loss_and_gradients(self.model, x, batch, labels)
        self.check_loss(loss, step)               # before the update: the parameters stay as they were
        self.optimizer.lr = learning_rate(self.config, step)
        with np.errstate(over="ignore", invalid="ignore"):
            self.optimizer.step()
        if not math.isfinite(self.optimizer.last_grad_norm or 0.0):
            raise TrainingDiverged(f"the gradients became NaN or infinite at step {step}")
        # A finite gradient times a huge learning rate can still overflow float32; caught
        # here, not as NaN logits at the next evaluation, and never saved.
        if not all(np.isfinite(p).all() for p in self.model.params.values()):
            raise TrainingDiverged(f"the parameters became NaN or infinite at step {step} (learning rate "
                                   f"{self.optimizer.lr:.3g}); try a lower --lr")
        self.state.step += 1
        if self.average is not None:
            self.average.update(self.model.params, self.state.step)
        return loss

    def loss_and_gradients(self, model, x, levels_batch, labels=None):
        """Forward pass, loss and backward pass of ``model`` on a batch; fills ``model.grads``.

        Args:
            model: the model, or one of its replicas (with ``parallel``, each core
                runs this on a part of the batch).
            x: (N, H, W, C) the model's input; levels_batch: (N, H, W) ((N, H, W, C) in colour)
                the levels to predict;
            labels: (N,) the images' classes for a conditional model, else None.

        Returns:
            the mean NLL of the batch in nats per dimension.
        """
        # Overflow shows up as inf/NaN, which is checked right below with a clear
        # message; NumPy's RuntimeWarnings would only bury it.
        with np.errstate(over="ignore", invalid="ignore"):
            outputs = model.forward(x, labels)
            if not np.isfinite(outputs).all():
                raise TrainingDiverged(
                    f"the model's outputs became NaN or infinite at step {self.state.step} (learning "
                    f"rate {self.optimizer.lr:.3g}); try a lower --lr, and keep gradient clipping on"
                )
            loss, doutputs = model.output.loss(outputs, levels_batch)    # the NLL of the model's output distribution
            model.backward(doutputs)
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
        if max_steps is not None:
            check_positive_int(max_steps, "max_steps", minimum=0)
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
            # Still under the handler: a first Ctrl-C here lets the save finish, a second aborts it.
            if losses:
                self.record(losses, test=False)
            if on_checkpoint and saved_step != state.step:     # not twice for the same step
                on_checkpoint(self)
        # (a signal that came after the last step, during the final save, stopped nothing)
        self.stopped_by = stop.signal_name if state.step < cfg.total_steps else None
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
                test_bits = nats_to_bits(evaluate(self.model, self.test_images, labels=self.test_labels,
                                                  parallel=self.parallel))
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
    def resume(cls, path, train_images, test_images, parallel=False, train_labels=None, test_labels=None):
        """Rebuild the Trainer saved by :meth:`save`, at the step where it stopped (a conditional
        model's run needs the labels of the images again)."""
        return cls.from_checkpoint(load_checkpoint(path), train_images, test_images, path, parallel=parallel,
                                   train_labels=train_labels, test_labels=test_labels)

    @classmethod
    def from_checkpoint(cls, ckpt, train_images, test_images, path="the checkpoint", parallel=False,
                        train_labels=None, test_labels=None):
        """The Trainer held by a loaded :class:`Checkpoint` (see :meth:`resume`).

        Raises :class:`CheckpointError`, with the reason, when the training
        metadata is missing, incomplete, has settings no run can use, or
        disagrees with the model the file holds; :class:`OtherDataError` when the
        images given are not the ones the run was trained on (a file written
        before checkpoints recorded their data resumes with a warning).
        """
        if ckpt.optimizer is None or "train" not in ckpt.meta or "state" not in ckpt.meta:
            raise CheckpointError(f"{path} holds a model but no training state to resume")
        config = training_config(ckpt.meta, path)
        try:
            check_train_config(config)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: its training settings are invalid: {err}") from None
        said = {"arch": config.arch, **config.model_settings()}
        for key, value in {"arch": ckpt.model.arch, **ckpt.model.config}.items():
            if said.get(key, value) != value:
                raise CheckpointError(f"{path}: its training settings say {key}={said[key]!r} but "
                                      f"the model it holds has {key}={value!r}; the file was edited")
        unknown = sorted(set(config.model) - set(ckpt.model.config))
        if unknown:
            raise CheckpointError(f"{path}: its training settings give the model settings {unknown}, "
                                  f"which the {ckpt.model.arch} model it holds does not have; the file was edited")
        step, seconds, history = training_state(ckpt.meta, config, path)
        state = TrainState(step=step, train_seconds=seconds, history=history)
        if (config.ema is None) != (ckpt.trained_params is None):
            raise CheckpointError(
                f"{path}: its training settings say ema={config.ema!r} but the file "
                f"{'has no' if ckpt.trained_params is None else 'has'} trained weights beside the "
                f"averaged ones; the file was edited")
        trainer = cls(config, train_images, test_images, ckpt.model, ckpt.optimizer, state, parallel=parallel,
                      train_labels=train_labels, test_labels=test_labels)
        if "data" in ckpt.meta:
            try:
                recorded = check_data_record(ckpt.meta["data"], path)
            except ValueError as err:
                raise CheckpointError(str(err)) from None
            check_same_data(recorded, trainer.data, path, source=ckpt.meta.get("data_source"))
        else:
            warnings.warn(f"{path} does not record the data it was trained on (it was written by an earlier "
                          f"npixelcnn); make sure the images given are the same", stacklevel=2)
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
            "data": self.data,
        }
