"""Input checks shared by the layers, the model and the loss.

Each check raises an error that says what was wrong and what was expected, so a
mistake surfaces at the call that made it instead of as a NumPy broadcasting
error three layers deeper.
"""

import numbers

import numpy as np


def check_activations(x, channels, dtype, where):
    """Check an NHWC activation tensor before a layer uses it.

    Args:
        x: the array to check; expected (N, H, W, channels) of ``dtype``.
        channels: expected size of the last axis.
        dtype: the layer's parameter dtype; the input must match it.
        where: name of the caller, for the message.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: expected a NumPy array, got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"{where}: expected floating-point input ({np.dtype(dtype).name}), got "
            f"{x.dtype}; convert integer images with x.astype(np.float32) / (levels - 1)"
        )
    if x.ndim != 4:
        raise ValueError(
            f"{where}: expected a 4-D NHWC array (batch, height, width, channels), "
            f"got shape {x.shape}"
        )
    if x.shape[-1] != channels:
        raise ValueError(
            f"{where}: expected {channels} input channels (last axis, NHWC), got "
            f"{x.shape[-1]} in shape {x.shape}"
        )
    if x.dtype != dtype:
        raise TypeError(
            f"{where}: input is {x.dtype} but the parameters are {np.dtype(dtype).name}; "
            f"convert the input with x.astype(np.{np.dtype(dtype).name}) or the layer "
            f"with .astype(np.{x.dtype.name})"
        )


def check_gradient(dy, shape, dtype, where):
    """Check an upstream gradient against the shape and dtype of the forward output."""
    if not isinstance(dy, np.ndarray):
        raise TypeError(f"{where}.backward: expected a NumPy array, got {type(dy).__name__}")
    if dy.shape != tuple(shape):
        raise ValueError(
            f"{where}.backward: the gradient must have the shape of the forward output, "
            f"{tuple(shape)}, got {dy.shape}"
        )
    if dy.dtype != dtype:
        raise TypeError(f"{where}.backward: the gradient must be {np.dtype(dtype).name}, got {dy.dtype}")


def check_finite(x, where):
    """Raise ValueError if ``x`` holds NaN or infinity."""
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{where}: input holds {bad} NaN or infinite value(s)")


def check_positive_int(value, name, minimum=1):
    """Raise unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def check_dilations(dilations, count, what):
    """A model's ``dilations`` setting as a list of ``count`` ints >= 1, one per ``what``
    (a block, a layer), or a clear error."""
    if not isinstance(dilations, (list, tuple)):
        raise TypeError(f"dilations must be a list of {count} ints, one per {what}, "
                        f"got {type(dilations).__name__}")
    if len(dilations) != count:
        raise ValueError(f"dilations must have one entry per {what}, {count}, got {len(dilations)}")
    for i, dilation in enumerate(dilations):
        check_positive_int(dilation, f"dilations[{i}]")
    return [int(dilation) for dilation in dilations]


def check_levels(levels, name="levels"):
    """Raise unless ``levels`` is an int in [2, 256]: at least two classes, at most the 256 grey values."""
    check_positive_int(levels, name, minimum=2)
    if levels > 256:
        raise ValueError(f"{name} must be at most 256 (8-bit grey values), got {levels}")


def check_positive_number(value, name):
    """Raise unless ``value`` is a real number, finite and > 0 (a learning rate, an epsilon)."""
    check_real(value, name)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")


def check_fraction(value, name):
    """Raise unless ``value`` is a real number in [0, 1) (Adam's betas)."""
    check_real(value, name)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def check_real(value, name):
    """Raise TypeError unless ``value`` is a real number (bools and strings are not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")


def check_level_images(images, levels, where, allow_channel=False, channels=1):
    """Raise a clear error unless ``images`` holds integer levels in [0, levels - 1]:
    (N, H, W) grey images, or (N, H, W, C) images of C > 1 channels (R, G, B).

    Args:
        images: the array to check.
        levels: number of intensity levels L (of every channel).
        where: the function's name, for the message.
        allow_channel: grey images may also come as (N, H, W, 1), returned as (N, H, W).
        channels: C, the image channels the model expects (its ``in_channels``).

    Returns the images, as (N, H, W) for one channel, (N, H, W, C) for more.
    """
    if not isinstance(images, np.ndarray) or not np.issubdtype(images.dtype, np.integer):
        got = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise TypeError(f"{where}: images must be an integer NumPy array of levels, got {got}; "
                        f"quantize grey values with npixelcnn.quantize(images, {levels})")
    if channels == 1 and allow_channel and images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if channels == 1:
        shape_ok, expected = images.ndim == 3, "(N, H, W) or (N, H, W, 1)" if allow_channel else "(N, H, W)"
    else:
        shape_ok, expected = images.ndim == 4 and images.shape[-1] == channels, f"(N, H, W, {channels})"
    if not shape_ok or images.size == 0:
        kind = "grey images" if channels == 1 else f"images of {channels} channels"
        raise ValueError(f"{where}: {kind} must be {expected} with N, H, W >= 1, got shape {images.shape}")
    if images.min() < 0 or images.max() > levels - 1:
        raise ValueError(f"{where}: images must hold levels in [0, {levels - 1}] for {levels} levels, "
                         f"got values from {images.min()} to {images.max()}")
    return images


def check_image_shape(shape):
    """(height, width) as a tuple of two positive ints, or a clear error."""
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be (height, width), got {shape!r}") from None
    if len(shape) != 2:
        raise ValueError(f"shape must be (height, width), got {shape}")
    for size in shape:
        check_positive_int(size, "shape")
    return tuple(int(s) for s in shape)
