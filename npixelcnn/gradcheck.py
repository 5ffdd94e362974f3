"""Numerical gradient checks by central differences.

A backward pass is a claim about derivatives; central differences test it:

    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps),

whose error shrinks like eps^2. In float64 with eps = 1e-6 the estimate is good
to about 1e-9 relative, so a correct backward pass agrees far below 1e-6 and a
wrong one (a missed term, a transposed matrix) is off by order one.

A layer maps an array to an array, so we check the scalar L = sum(y * dy) for a
random upstream gradient dy: the layer's backward(dy) must return dL/dx, and it
cannot hide an error behind a special dy such as all ones.
"""

import numpy as np

from .data import to_model_input


def relative_error(a, b):
    """||a - b|| / (||a|| + ||b||), 0 when both are zero. In [0, 1]."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def numerical_gradient(f, x, eps=1e-6):
    """Central-difference gradient of a scalar function.

    Args:
        f: callable taking no arguments, returning a float; it must read ``x``,
            which is perturbed in place one entry at a time (and restored).
        x: float64 array.

    Returns:
        grad: array shaped like x.
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks need float64 for accuracy, got {x.dtype}")
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)     # views: writes reach x
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        f_plus = f()
        flat[i] = original - eps
        f_minus = f()
        flat[i] = original
        gflat[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def check_layer(layer, x, dy=None, seed=0, eps=1e-6):
    """Compare a layer's backward pass with central differences.

    Args:
        layer: a float64 layer (``layer.astype(np.float64)``).
        x: float64 input.
        dy: upstream gradient shaped like ``layer.forward(x)``; random if None.

    Returns:
        errors: dict {"x": rel. error of dL/dx, name: rel. error of dL/dparam...}.
    """
    x = np.array(x, dtype=np.float64)
    y = layer.forward(x)
    if dy is None:
        dy = np.random.default_rng(seed).standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(dy)
    analytic = {"x": dx, **{k: g.copy() for k, g in layer.grads.items()}}

    def loss():
        return float(np.sum(layer.forward(x) * dy))

    errors = {"x": relative_error(dx, numerical_gradient(loss, x, eps))}
    for name, p in layer.params.items():
        errors[name] = relative_error(analytic[name], numerical_gradient(loss, p, eps))
    return errors


def check_loss(loss_fn, logits, eps=1e-6):
    """Check a loss ``loss_fn(logits) -> (value, dlogits)``; returns the rel. error."""
    logits = np.array(logits, dtype=np.float64)
    _, analytic = loss_fn(logits)
    numeric = numerical_gradient(lambda: loss_fn(logits)[0], logits, eps)
    return relative_error(analytic, numeric)


def check_model_and_loss(model, levels, eps=1e-6, labels=None):
    """Check the gradient a training step uses: d(total NLL)/dparam through the model.

    Args:
        model: a float64 model (``model.astype(np.float64)``).
        levels: (N, H, W) integer levels in [0, model.levels): the images,
            both the input and the targets.
        labels: (N,) the images' classes, for a class-conditional model.

    Returns:
        errors: dict {name: rel. error of d(total NLL)/dparam} for every parameter.
    """
    x = to_model_input(levels, model.levels).astype(np.float64)
    count = levels.size

    def total_nll():
        return count * model.output.loss(model.forward(x, labels), levels)[0]

    model.zero_grad()
    _, doutputs = model.output.loss(model.forward(x, labels), levels)     # the model's own output distribution
    model.backward(doutputs * count)
    return {name: relative_error(model.grads[name].copy(), numerical_gradient(total_nll, p, eps))
            for name, p in model.params.items()}
