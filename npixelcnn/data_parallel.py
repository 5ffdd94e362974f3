"""Data parallel training and evaluation: each core takes a part of the batch with a replica of the model.

At a training batch of 16 the threads of :mod:`npixelcnn.fast_ops` still leave
one core idle much of the step: a matrix product shares its threads well, but
the gates, the shifts and the many small copies do not. Giving each core a part
of the batch, with a copy of the model that shares its weights, keeps every
core busy from start to end (``python benchmarks/bench_train_step.py`` against
``--serial``).

No layer mixes the images of a batch, so the mean of the replicas' gradients,
weighted by their share of the batch, is the gradient of the whole batch's mean
loss: equal to the serial one to float rounding (tests/test_fast.py).

Opt-in: ``Trainer(..., parallel=True)`` and ``evaluate(..., parallel=True)``
use it (the CLI does); by default every pass runs on the caller's thread.
"""

import copy
import weakref
from concurrent.futures import wait

import numpy as np

from . import fast_ops
from .blas import limit_blas_threads


class DataParallel:
    """A model's forward and backward passes, with the batch split over the cores.

    Each worker runs a replica of the model, a copy whose layers share the
    model's parameter arrays (so an update of the model is an update of every
    replica) but keep their own gradients and caches, on a slice of the batch,
    on one BLAS thread. The first part runs on the model itself, in the
    caller's thread.

    Args:
        model: a model made of :mod:`npixelcnn.layers` (``named_leaves``, ``params``, ``grads``).
        workers: replicas (the model itself is the first); default one per core.
    """

    def __init__(self, model, workers=None):
        self.model = model
        self.workers = fast_ops.WORKERS if workers is None else int(workers)
        if self.workers < 1:
            raise ValueError(f"DataParallel: workers must be at least 1, got {workers}")
        self.replicas = [model] + [_replica(model) for _ in range(self.workers - 1)]

    def mean_loss_and_gradients(self, loss_and_gradients, x, targets, labels=None):
        """Run ``loss_and_gradients(replica, x_part, targets_part[, labels_part]) -> loss`` on every
        replica's part (the labels' part when there are labels).

        Args:
            loss_and_gradients: runs one model's forward and backward passes on a
                batch, filling its ``grads``, and returns the mean loss (a float).
            x: (N, ...) the model's input; targets: (N, ...) what the loss scores;
            labels: (N,) the classes of a conditional model's images, or None.

        Returns:
            the mean loss over the batch; ``model.grads`` then holds its gradient.
        """
        losses, weights = zip(*self.over_parts(loss_and_gradients, x, targets, labels))
        if len(losses) > 1:
            replica_grads = [replica.grads for replica in self.replicas[1:len(losses)]]
            for name, grad in self.model.grads.items():
                grad *= weights[0]
                for weight, grads in zip(weights[1:], replica_grads):
                    grad += weight * grads[name]
        return float(sum(weight * loss for weight, loss in zip(weights, losses)))

    def total(self, score, x, targets, labels=None):
        """``score(model, x, targets[, labels])`` for a score that is a sum over the images (a total
        NLL): each core scores its part with a replica, and the parts' totals are added."""
        return sum(part_total for part_total, _ in self.over_parts(score, x, targets, labels))

    def over_parts(self, fn, x, targets, labels=None):
        """Run ``fn(replica, x_part, targets_part)`` on every replica's part of the batch, in
        parallel; ``fn(replica, x_part, targets_part, labels_part)`` when there are labels.

        Args:
            fn: any function of one model and a batch (a training step, a scoring).
            x: (N, ...) the model's input; targets: (N, ...) what goes with it;
            labels: (N,) the images' classes, or None (a model without classes).

        Returns:
            a list of (what ``fn`` returned, the part's share of the batch), in the batch's order.
        """
        n = len(x)
        bounds = [n * i // self.workers for i in range(self.workers + 1)]
        shares = [(slice(lo, hi), (hi - lo) / n) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
        replicas = self.replicas[:len(shares)]
        for replica in replicas[1:]:
            _share_parameters(self.model, replica)      # cheap, and right even after model.astype()

        def run(replica, part):
            fast_ops.set_in_replica(True)
            try:
                return fn(replica, x[part], targets[part], *labels_argument(labels, part))
            finally:
                fast_ops.set_in_replica(False)

        with limit_blas_threads(1):                     # one core per replica, not two threads each
            futures = [fast_ops.get_pool().submit(run, replica, part)
                       for replica, (part, _) in zip(replicas[1:], shares[1:])]
            try:
                results = [run(replicas[0], shares[0][0])]      # this thread runs the model itself
            finally:
                wait(futures)                   # never leave a replica running past this call
            results += [future.result() for future in futures]  # re-raises a worker's exception
        return [(result, weight) for result, (_, weight) in zip(results, shares)]


def labels_argument(labels, part=slice(None)):
    """The labels' part as the last argument of a batch function, or no argument at all when
    there are no labels: ``fn(model, x, targets)`` serves a model without classes (lesson 08
    scores with such a function), ``fn(model, x, targets, labels)`` a conditional one."""
    return () if labels is None else (labels[part],)


def _replica(model):
    """A copy of ``model`` that shares its parameter arrays, with gradients and caches of its own."""
    replica = copy.deepcopy(model)
    for _, leaf in replica.named_leaves():
        leaf._cache = None
    _share_parameters(model, replica)
    return replica


def _share_parameters(model, replica):
    """Point every leaf of ``replica`` at the parameter arrays of the same leaf of ``model``."""
    for (_, leaf), (_, twin) in zip(model.named_leaves(), replica.named_leaves()):
        for name, value in leaf.params.items():
            twin.params[name] = value
            if twin.grads[name].dtype != value.dtype:
                twin.grads[name] = np.zeros_like(value)
        twin.training = leaf.training


_data_parallel = weakref.WeakKeyDictionary()    # model -> its DataParallel (replicas are made once)


def data_parallel_for(model):
    """The model's :class:`DataParallel` with one worker per core, made on first use and kept
    (its replicas are deep copies: making them at every step would cost more than the step)."""
    parallel = _data_parallel.get(model)
    if parallel is None or parallel.workers != fast_ops.WORKERS:
        parallel = _data_parallel[model] = DataParallel(model)
    return parallel


def split_loss_and_gradients(loss_and_gradients, model, x, targets, labels=None):
    """``loss_and_gradients(model, x, targets[, labels])`` with the batch split over the cores
    (:class:`DataParallel`), or run as it is on one core or for a batch of one."""
    if fast_ops.WORKERS <= 1 or len(x) < 2:
        return loss_and_gradients(model, x, targets, *labels_argument(labels))
    return data_parallel_for(model).mean_loss_and_gradients(loss_and_gradients, x, targets, labels)


def split_total(score, model, x, targets, labels=None):
    """``score(model, x, targets[, labels])``, a sum over the images of the batch, with the batch
    split over the cores, or run as it is on one core or for a batch of one."""
    if fast_ops.WORKERS <= 1 or len(x) < 2:
        return score(model, x, targets, *labels_argument(labels))
    return data_parallel_for(model).total(score, x, targets, labels)


def split_per_image(score, model, x, targets, labels=None):
    """``score(model, x, targets[, labels])``, an array with one value per image (N, ...), with the
    batch split over the cores and the parts' arrays put back together in the batch's order."""
    if fast_ops.WORKERS <= 1 or len(x) < 2:
        return score(model, x, targets, *labels_argument(labels))
    parts = data_parallel_for(model).over_parts(score, x, targets, labels)
    return np.concatenate([part for part, _ in parts])
