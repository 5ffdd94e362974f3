"""Run control: what starts, paces and stops a training run from outside its steps.

* :func:`stop_on_interrupt`: Ctrl-C (SIGINT) and ``kill`` (SIGTERM) become a
  flag that the loop checks between steps, so a run always stops on a
  consistent state that it can save;
* :class:`BudgetCheck`: a run with a time budget moves its end as it goes, by the clock;
* :func:`steps_for_minutes`: the probe that turns a time budget into a first number of steps.

The training loop (:class:`npixelcnn.train.Trainer`) uses them; none of them
changes a result of a step.
"""

import signal
import threading
import time
from contextlib import contextmanager

from .config import MAX_STEPS


class StopRequest(threading.Event):
    """Set by a signal; ``signal_name`` says which ("SIGINT" for Ctrl-C, "SIGTERM" for kill)."""

    signal_name = None


class AbortRequested(KeyboardInterrupt):
    """A second signal during a run: abort now, without the save the first one asked for."""


@contextmanager
def stop_on_interrupt():
    """Turn Ctrl-C (SIGINT) and ``kill`` (SIGTERM) into a flag the loop checks between steps.

    An interrupt in the middle of ``optimizer.step()`` would leave some
    parameters updated and others not; with the flag the current step finishes,
    the loop ends and the caller saves a consistent checkpoint. A second signal
    raises :class:`AbortRequested` (a KeyboardInterrupt) at once.
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop                        # signals only reach the main thread
        return

    def handler(signum, frame):
        if stop.is_set():
            raise AbortRequested(f"a second {signal.Signals(signum).name}")
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
            new_total = min(new_total, MAX_STEPS)            # a run's length is bounded, whatever its speed
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
    return min(max(int(minutes * 60 / per_step), 1), MAX_STEPS), per_step
