"""Optimizers that update ``model.params`` in place from ``model.grads``, and a running
average of the parameters they visit."""

import math
from contextlib import contextmanager

import numpy as np

from .validation import check_fraction, check_positive_number


def global_norm(grads):
    """sqrt of the sum of squares of every gradient entry (a float)."""
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


def clip_by_global_norm(grads, max_norm):
    """Scale all gradients in place so their global norm is at most ``max_norm``.

    As ``tf.clip_by_global_norm`` (the seed clips at 1.0): the direction of the
    update is kept, only its length is capped. Returns the norm before clipping.
    """
    norm = global_norm(grads)
    if norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= scale
    return norm


class Optimizer:
    """Shared parts: the model, an optional clip and the step counter.

    ``lr`` and ``clip_norm`` are checked whenever they are set, after construction
    too (a schedule sets ``lr`` before every step): a negative learning rate
    would climb the loss without a word.
    """

    def __init__(self, model, lr, clip_norm=None):
        params, grads = getattr(model, "params", None), getattr(model, "grads", None)
        if not isinstance(params, dict) or not isinstance(grads, dict) or set(params) != set(grads):
            raise TypeError(f"an optimizer needs a model with 'params' and 'grads' dicts of arrays under "
                            f"the same names (a PixelCNN, a layer), got {type(model).__name__}")
        self.model, self.lr, self.clip_norm = model, lr, clip_norm
        self.t = 0
        self.last_grad_norm = None

    @property
    def lr(self):
        """The learning rate of the next step: a finite number > 0."""
        return self._lr

    @lr.setter
    def lr(self, value):
        check_positive_number(value, "lr")
        self._lr = value

    @property
    def clip_norm(self):
        """Gradients are clipped to this global norm before each step; None: no clipping."""
        return self._clip_norm

    @clip_norm.setter
    def clip_norm(self, value):
        if value is not None:
            check_positive_number(value, "clip_norm")
        self._clip_norm = value

    def step(self):
        """Apply one update to ``model.params`` from ``model.grads``."""
        params, grads = self.model.params, self.model.grads
        if self.clip_norm is not None:
            self.last_grad_norm = clip_by_global_norm(grads, self.clip_norm)
        self.t += 1
        for name, p in params.items():
            self._update(name, p, grads[name])

    def _update(self, name, p, g):
        raise NotImplementedError


class SGD(Optimizer):
    """Plain gradient descent: p -= lr * g."""

    def _update(self, name, p, g):
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015, algorithm 1), with bias correction.

        m = b1 m + (1 - b1) g            v = b2 v + (1 - b2) g^2
        p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    Args:
        model: anything with ``params`` and ``grads`` dicts of arrays.
        lr, beta1, beta2, eps: as in the paper.
        clip_norm: if set, gradients are first clipped to this global norm.
    """

    def __init__(self, model, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, clip_norm=None):
        super().__init__(model, lr, clip_norm)
        check_fraction(beta1, "beta1")
        check_fraction(beta2, "beta2")
        check_positive_number(eps, "eps")      # eps <= 0 can divide by zero
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = {name: np.zeros_like(p) for name, p in model.params.items()}
        self.v = {name: np.zeros_like(p) for name, p in model.params.items()}

    def _update(self, name, p, g):
        m, v = self.m[name], self.v[name]
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        m_hat_scale = 1 / (1 - self.beta1 ** self.t)
        v_hat_scale = 1 / (1 - self.beta2 ** self.t)
        p -= self.lr * (m * m_hat_scale) / (np.sqrt(v * v_hat_scale) + self.eps)


class WeightAverage:
    """An exponential moving average of the parameters over training (Polyak averaging).

    Late in training the weights wander around a good point with the noise of the
    minibatches; their average sits closer to it. PixelCNN++ (Salimans et al., 2017)
    evaluates and samples with such an average (decay 0.9995). After update t:

        w_t = 1 - min(decay, (1 + t) / (10 + t))        average += w_t * (params - average)

    The ramp (as in ``tf.train.ExponentialMovingAverage`` with ``num_updates``)
    lets the first updates count fully, so the average does not remember the
    random initial weights for 1 / (1 - decay) steps.

    Args:
        params: the model's parameter dict; the average starts as a copy of it
            (same dtypes, so a resumed run is bit-for-bit the same).
        decay: in (0, 1); the average spans roughly the last 1 / (1 - decay) updates.
    """

    def __init__(self, params, decay):
        check_fraction(decay, "decay")
        if decay == 0:
            raise ValueError("decay must be in (0, 1): 0 would not average at all")
        self.decay = decay
        self.averages = {name: p.copy() for name, p in params.items()}

    def weight(self, t):
        """The share of update number ``t`` (1-based) in the average."""
        return 1 - min(self.decay, (1 + t) / (10 + t))

    def update(self, params, t):
        """Move the average towards ``params`` after update number ``t`` (1-based)."""
        weight = self.weight(t)
        for name, p in params.items():
            average = self.averages[name]
            average += weight * (p - average)

    @contextmanager
    def swapped_in(self, params):
        """Within the block ``params`` hold the averages; yields a copy of the trained weights.

        The arrays are written in place, so every replica or view of them (the data
        parallel workers share them) sees the averages too; the trained weights are
        restored on leaving, whatever happens in the block.
        """
        trained = {name: p.copy() for name, p in params.items()}
        for name, p in params.items():
            p[...] = self.averages[name]
        try:
            yield trained
        finally:
            for name, p in params.items():
                p[...] = trained[name]
