"""The worked solutions of lesson 10 (steering the model: a class-conditional Gated PixelCNN): try
each exercise yourself first.

The notebook imports these names when SOLUTIONS is True.
"""

import numpy as np

import npixelcnn as npc


def _logsumexp(z, axis=-1):
    top = z.max(axis=axis, keepdims=True)
    return top + np.log(np.exp(z - top).sum(axis=axis, keepdims=True))


# Exercise 1: y = x + V[labels] broadcast over the pixels. x passes straight through: dx = dy.
# Row k of V is added at every pixel of every image labelled k, so its gradient is the sum of dy over
# those pixels and images: sum over the pixels first, (N, C), then one_hot.T (K, N) adds each image's
# row into its class's row (a class with no image gets zeros; two images of one class both count).
def class_bias_backward(dy, labels, classes):
    one_hot = np.zeros((len(labels), classes), dtype=dy.dtype)
    one_hot[np.arange(len(labels)), labels] = 1
    return dy, one_hot.T @ dy.sum(axis=(1, 2))


# Exercise 2: log p(y | x) = log p(x | y) + log p(y) - log sum_k p(x | k) p(k). A prediction is the
# argmax over the classes; the normalisation does not move it, nor does a uniform prior.
def with_prior(log_likelihoods, prior):
    joint = log_likelihoods + np.log(prior)
    return joint - _logsumexp(joint, axis=1)


def changed_by_prior(log_likelihoods, prior):
    return (log_likelihoods + np.log(prior)).argmax(axis=1) != log_likelihoods.argmax(axis=1)


# Exercise 3: one forward pass per class gives every pixel's log-probability given the pixels before
# it; the cumulative sum over the rows of each image's row sums is log p(top r rows | k) for every r,
# and a softmax over the classes turns each into p(y | top r rows).
def posterior_by_rows(model, image):
    classes = model.classes
    x = npc.to_model_input(np.repeat(image[None], classes, axis=0), model.levels)
    log_p = model.log_probs(x, np.arange(classes))                                       # (K, H, W, L)
    per_pixel = np.take_along_axis(log_p, image[None, :, :, None].astype(np.intp), axis=-1)[..., 0]
    prefix = per_pixel.astype(np.float64).sum(axis=2).cumsum(axis=1).T                   # (H, K)
    return np.exp(prefix - _logsumexp(prefix, axis=1))
