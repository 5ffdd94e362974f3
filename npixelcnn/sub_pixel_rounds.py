"""The rounds of a colour pixel in the fast cached sampler: what round g computes of a layer.

A colour model's layers split their channels into G ordered groups, one per
sub-pixel (R, G, B; :func:`~npixelcnn.masks.channel_groups`: contiguous blocks).
The fast sampler computes a pixel in G rounds, one per sub-pixel: at round g
each step computes its output's group g only, from its input's groups <= g at
the pixel (the first layer: the image's sub-pixels < g), all final by then, and
every channel of earlier pixels (:mod:`npixelcnn.pixel_steps`,
:mod:`npixelcnn.gated_steps`). Everything here is made once, when a step is made:

* :func:`group_slices`: each group's columns of a row;
* :func:`grouped_weights`: for a convolution and each group g, the prefix of its
  gathered row [1, taps of earlier pixels, centre tap] that group g reads (the
  bias, the earlier pixels, and the centre's channels up to the last one its
  channel rule lets group g read) and those rows of the weights for group g's
  columns, contiguous. Under mask B the centre's groups <= g are read (in the
  "independent" order the groups < g meet zero weights: final values, never
  stale ones); a later group is never read;
* :func:`sub_pixel_order_error`: why a layer cannot be computed so, if it cannot.
"""

import numpy as np

from .masks import channel_groups


def bias_and_weights(layer):
    """A convolution's kept weights with its bias as the first row: (1 + K, C_out), for a
    gathered row that starts with the 1 (see the module docstring)."""
    return np.concatenate([layer.params["b"][None, :], layer.kept_weights()])


def group_slices(width, groups):
    """The columns of each group of a row of ``width`` channels, split as
    :func:`~npixelcnn.masks.channel_groups` splits them: [slice(start, end)] * groups."""
    ends = np.searchsorted(channel_groups(width, groups), np.arange(groups + 1))
    return [slice(int(start), int(end)) for start, end in zip(ends[:-1], ends[1:])]


def reads_centre(layer):
    """Does the convolution ``layer`` keep its centre tap (the last of its taps, if kept)?"""
    return bool((layer.taps[-1] == layer.kernel_size // 2).all())


def centre_reads(layer, columns):
    """How many of its input channels at its own pixel the outputs ``columns`` of the convolution
    ``layer`` read: n, for channels 0 .. n - 1 (0 without a centre tap; all without a channel rule)."""
    if not reads_centre(layer):
        return 0
    if layer.centre_mask is None:
        return layer.in_channels
    read = np.flatnonzero(layer.centre_mask[:, columns].any(axis=1))
    return int(read[-1]) + 1 if len(read) else 0


def grouped_weights(layer, groups):
    """What round g of a colour pixel computes of the convolution ``layer``, for each group g.

    Returns:
        a list of (new, out, prefix, weights) per group g: ``new``, the input's columns of group g
        (stored at round g); ``out``, the output's columns of group g; ``prefix``, how much of the
        gathered row [1, taps of earlier pixels, centre] group g reads (the centre's channels up to
        its input's group g); ``weights`` (prefix, len(out)), those rows of
        :func:`bias_and_weights` for those columns, contiguous.
    """
    weights = bias_and_weights(layer)
    earlier = weights.shape[0] - (layer.in_channels if reads_centre(layer) else 0)   # 1 + earlier pixels' taps
    plan = []
    for new, out in zip(group_slices(layer.in_channels, groups), group_slices(layer.out_channels, groups)):
        prefix = earlier + centre_reads(layer, out)
        plan.append((new, out, prefix, np.ascontiguousarray(weights[:prefix, out])))
    return plan


def sub_pixel_order_error(layer, groups, sampler, out_groups=None):
    """Why the convolution ``layer`` cannot be computed sub-pixel by sub-pixel in a model of
    ``groups`` sub-pixels, or None if it can (always, in grey).

    Round g computes output group g from its input's groups <= g at the pixel: the layer's
    channels must be split as :func:`~npixelcnn.masks.channel_groups` splits them (the
    flowing rows are; ``out_groups``: the output's, if split otherwise, as a gate's two
    halves), and its group g must not read a later group at its own pixel. (A first layer,
    which must not read its own group either, is checked by ``steps.check_first_step``.)
    """
    if groups == 1:
        return None
    name = f"{sampler}: in a model of {groups} sub-pixels"
    try:
        in_groups, declared = layer.in_groups, layer.out_groups
    except AttributeError:                  # a Conv2D that declares no groups
        in_groups = declared = None
    if in_groups is None or declared is None:
        return f"{name} every layer must split its channels into the sub-pixels' groups; {layer!r} does not"
    expected = channel_groups(layer.out_channels, groups) if out_groups is None else out_groups
    if not (np.array_equal(in_groups, channel_groups(layer.in_channels, groups))
            and np.array_equal(declared, expected)):
        return (f"{name} every layer must split its channels into contiguous groups as "
                f"masks.channel_groups does; {layer!r} splits them otherwise")
    ends = [s.stop for s in group_slices(layer.in_channels, groups)]
    if any(centre_reads(layer, declared == g) > ends[g] for g in range(groups)):
        return (f"{name} a layer's group g may read only its input's groups <= g at its own "
                f"pixel; {layer!r} reads later ones")
    return None
