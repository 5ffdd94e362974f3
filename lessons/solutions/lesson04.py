"""The worked solutions of lesson 04 (training on MNIST): try each exercise yourself first.

The notebook imports these names when SOLUTIONS is True.
"""

import math

import numpy as np

import npixelcnn as npc


def improvement_by_first_evaluation(history):
    """Exercise 1: (fraction of the way from 2 bits/dim to the last evaluation made by the
    first evaluation, share of the training time that had passed by the first evaluation)."""
    evals = [h for h in history if h["test_bits"] is not None]
    first, last = evals[0], evals[-1]
    fraction = (2.0 - first["test_bits"]) / (2.0 - last["test_bits"])
    return fraction, first["time"] / last["time"]        # the last evaluation ends the run


def first_step_below(config, fraction):
    """Exercise 2: the first step after the warmup whose learning rate is below ``fraction``
    of the peak.

    After the warmup, lr(s) = peak * (1 + cos(pi q)) / 2 with q = (s - W) / (T - W). It falls
    below fraction * peak once cos(pi q) < 2 fraction - 1, that is once q > arccos(2 fraction - 1) / pi,
    or s > W + q (T - W): the first whole step past that point.
    """
    q = math.acos(2 * fraction - 1) / math.pi
    crossing = config.warmup_steps + q * (config.total_steps - config.warmup_steps)
    return math.floor(crossing) + 1


def reads_the_future(model, p, shape=(28, 28), levels=4, seed=0):
    """Exercise 3: True if the model's logits at pixel ``p`` change when pixel ``p`` or any
    later pixel (in raster order) changes.

    Two random images that agree on every pixel before p and differ at p and after it: an
    honest model gives the same logits at p for both.
    """
    rng = np.random.default_rng(seed)
    height, width = shape
    a = rng.integers(0, levels, (1, height, width))
    b = a.copy()
    later = np.arange(height * width).reshape(shape) >= p[0] * width + p[1]     # p and every later pixel
    b[0, later] = (a[0, later] + rng.integers(1, levels, later.sum())) % levels  # a different level each
    logits_a = model.forward((a[..., None] / (levels - 1)).astype(model.dtype))
    logits_b = model.forward((b[..., None] / (levels - 1)).astype(model.dtype))
    return not np.array_equal(logits_a[0, p[0], p[1]], logits_b[0, p[0], p[1]])


def train_with_a_break(make_trainer, steps, path):
    """Exercise 4: train for half of ``steps``, save, resume from the file, run to the end;
    return the resumed Trainer."""
    first = make_trainer()
    first.run(max_steps=steps // 2, progress=False)
    first.save(path)
    resumed = npc.Trainer.resume(path, first.train_images, first.test_images)
    resumed.run(progress=False)
    return resumed
