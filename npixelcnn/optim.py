"""Optimizers that update ``model.params`` in place from ``model.grads``."""

import math

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
    """Shared parts: the model, an optional clip and the step counter."""

    def __init__(self, model, lr, clip_norm=None):
        check_positive_number(lr, "lr")
        if clip_norm is not None:                       # None: no clipping
            check_positive_number(clip_norm, "clip_norm")
        self.model, self.lr, self.clip_norm = model, lr, clip_norm
        self.t = 0
        self.last_grad_norm = None

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
