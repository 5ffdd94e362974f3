"""The worked solutions of lesson 11 (colour: masks across channels): try each exercise yourself first.

The notebook imports these names when SOLUTIONS is True.
"""

import numpy as np

import npixelcnn as npc


# Exercise 1: the taps before the centre (k * (k // 2) in the rows above, k // 2 left of the centre)
# read every channel; at the centre, input channel i reaches output channel o when its group is
# earlier (mask A) or earlier or the same (mask B): one broadcast comparison counts those pairs.
def live_weights(kernel_size, mask_type, in_groups, out_groups):
    in_groups, out_groups = np.asarray(in_groups), np.asarray(out_groups)
    half = kernel_size // 2
    earlier_taps = kernel_size * half + half
    if mask_type == "A":
        centre = in_groups[:, None] < out_groups[None, :]
    else:
        centre = in_groups[:, None] <= out_groups[None, :]
    return earlier_taps * len(in_groups) * len(out_groups) + int(centre.sum())


# Exercise 2: each sub-pixel's NLL in nats, (B, H, W, 3) per batch, summed per channel over all
# images and pixels, divided by N * H * W and by ln 2. Their mean is evaluate's bits/dim.
def bits_per_channel(model, images, batch_size=50):
    total = np.zeros(3)
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        outputs = model.forward(npc.to_model_input(batch, model.levels).astype(model.dtype))
        total += model.output.pixel_nll(outputs, batch).astype(np.float64).sum(axis=(0, 1, 2))
    n, h, w = images.shape[:3]
    return total / (n * h * w) / np.log(2)


# Exercise 3: one image per level r of R at (i, j), everything else as given; G's log-probabilities
# at (i, j) in each, exponentiated. The masks make G's outputs there blind to G and B at (i, j) and
# to every later pixel, so nothing else needs clearing.
def green_given_red(model, image, i, j):
    levels = model.levels
    x = np.repeat(image[None], levels, axis=0)
    x[:, i, j, 0] = np.arange(levels)
    log_p = model.log_probs(npc.to_model_input(x, levels).astype(model.dtype))    # (L, H, W, 3, L)
    return np.exp(log_p[:, i, j, 1].astype(np.float64))
