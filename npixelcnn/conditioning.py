"""A condition for the model: class labels, and the per-class bias that carries them into the gates.

A class-conditional model gives p(x | y), the probability of an image given its class y
(the Gated PixelCNN paper, van den Oord et al., 2016, "Conditional Image Generation with
PixelCNN Decoders", equation 4). Every gate of the model becomes

    tanh(W_f * x + V_f y) * sigmoid(W_g * x + V_g y),

with y the one-hot label (K,) and V a learned (K, 2C) matrix per stack and per layer. For a
one-hot y, V y is row y of V: a bias that depends on the class, the same at every pixel. So
the condition adds no convolution, only a row lookup per image.

How the labels reach the layers: ``model.forward(x, labels)`` hands the labels of the batch
to every :class:`ClassBias` layer of the model (``model.condition(labels)``), then runs its
layers as before. A :class:`ClassBias` adds row ``labels[n]`` of its V to image n, and its
backward pass sums the gradient of each image over its pixels into that image's row.

A model without classes (``model.classes is None``) has no ClassBias layer and keeps its
one-argument ``forward(x)``.
"""

import numpy as np

from .layers import Layer
from .validation import check_gradient, check_positive_int


def check_labels(labels, classes, count, where):
    """Labels checked against a model's classes: an int array (count,) with values in [0, classes).

    Args:
        labels: what the caller gave (None is refused when classes is set, and required when not).
        classes: K, the model's classes, or None for a model without a condition.
        count: N, the images the labels go with.
        where: the caller's name, for the error message.

    Returns:
        (count,) np.intp labels, or None for a model without classes.
    """
    if classes is None:
        if labels is not None:
            raise ValueError(f"{where}: this model has no classes (it models p(x), not p(x | y)), "
                             f"so it takes no labels; train one with classes=K to condition on a class")
        return None
    if labels is None:
        raise ValueError(f"{where}: this model is class-conditional ({classes} classes): give the labels "
                         f"of the images, one int in [0, {classes}) per image")
    array = np.asarray(labels)
    if array.ndim == 0:
        raise ValueError(f"{where}: labels must be an array with one label per image ({count}), got the "
                         f"single value {labels!r}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{where}: labels must be integers in [0, {classes}), got dtype {array.dtype}")
    if array.shape != (count,):
        raise ValueError(f"{where}: expected one label per image, shape ({count},), got shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= classes):
        raise ValueError(f"{where}: labels must be in [0, {classes}) (the model has {classes} classes), "
                         f"got values from {array.min()} to {array.max()}")
    return array.astype(np.intp)


class ClassBias(Layer):
    """y[n] = x[n] + V[labels[n]]: a learned bias per class, added at every pixel.

    Args:
        classes: K.
        channels: C, the channels of x.

    The labels of the batch are set with :meth:`set_labels` before ``forward``
    (``model.forward(x, labels)`` does it for every ClassBias of a model).

    Shapes: x (N, H, W, C) -> y (N, H, W, C); V (K, C), initialised to zeros, so a new
    conditional model starts as its unconditional twin.

    Parameters: V.
    """

    def __init__(self, classes, channels):
        super().__init__()
        check_positive_int(classes, "classes")
        check_positive_int(channels, "channels")
        self.classes, self.channels = classes, channels
        self.params["V"] = np.zeros((classes, channels), np.float32)
        self.grads["V"] = np.zeros_like(self.params["V"])
        self.labels = None

    def set_labels(self, labels):
        """labels (N,) ints in [0, K): the classes of the images the next forward passes carry."""
        self.labels = labels

    def rows(self):
        """V[labels]: (N, C), the bias each image of the batch gets."""
        if self.labels is None:
            raise RuntimeError("ClassBias: no labels set; call set_labels(labels) (model.forward(x, labels) does)")
        return self.params["V"][self.labels]

    def forward(self, x):
        """x (N, H, W, C) -> x + V[labels] broadcast over the pixels."""
        rows = self.rows()
        if len(rows) != len(x):
            raise ValueError(f"ClassBias: {len(rows)} labels set for a batch of {len(x)} images")
        self._cache = (self.labels, x.shape) if self.training else None
        return x + rows[:, None, None, :]

    def backward(self, dy):
        """dy (N, H, W, C) -> dx = dy; dV[k] = the sum over the images of class k and their pixels.

        As a matrix product: dV = onehot(labels).T @ dy summed over (H, W), (K, N) @ (N, C).
        """
        if self._cache is None:
            raise RuntimeError("ClassBias.backward called before forward in training mode")
        labels, shape = self._cache
        check_gradient(dy, shape, self.dtype, "ClassBias")
        one_hot = np.zeros((len(labels), self.classes), dy.dtype)
        one_hot[np.arange(len(labels)), labels] = 1
        self.grads["V"][...] = one_hot.T @ dy.sum(axis=(1, 2))
        return dy
