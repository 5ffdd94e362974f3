"""Pictures of images and training curves, for the CLI and the lessons.

Only matplotlib's object API is used (``Figure``, never ``matplotlib.use``), so
importing this module leaves a notebook's inline backend alone, and the CLI
can save figures on a machine without a display. Every file is written to a
temporary file in the target folder and then renamed over the target: an
interrupted write never leaves a half-written PNG behind.
"""

import math

import matplotlib.image
import numpy as np
from matplotlib.figure import Figure

from .data import dequantize
from .files import write_atomically
from .validation import check_level_images, check_levels, check_positive_int

PAD_GRAY = 128  # mid-gray: separates black digits on black backgrounds


def image_grid(images, levels, ncols=None, pad=1):
    """Tile integer level images into one grayscale uint8 image.

    Args:
        images: (N, H, W) or (N, H, W, 1) integer levels in [0, levels).
        levels: number of intensity levels, 2 to 256; level l becomes its grey
            value by :func:`npixelcnn.dequantize`, round(l * 255 / (levels - 1)),
            so 0 is black and levels-1 white.
        ncols: images per row; default ceil(sqrt(N)), a near-square grid.
        pad: width in pixels of the mid-gray lines around every image.

    Returns:
        (rows*(H+pad)+pad, ncols*(W+pad)+pad) uint8, rows = ceil(N / ncols).
        Cells past the last image are left mid-gray.
    """
    images = _check_images(images, levels, "image_grid")
    return _tile(dequantize(images, levels), ncols, pad)


def colour_grid(images, levels, ncols=None, pad=1):
    """Tile colour level images into one RGB uint8 image, as :func:`image_grid` tiles grey ones.

    Args:
        images: (N, H, W, 3) integer levels in [0, levels), channels R, G, B; each
            channel's level becomes its value 0..255 by :func:`npixelcnn.dequantize`.
        levels, ncols, pad: as for :func:`image_grid`.

    Returns:
        (rows*(H+pad)+pad, ncols*(W+pad)+pad, 3) uint8; lines and empty cells mid-gray.
    """
    images = _check_images(images, levels, "colour_grid", colour=True)
    return _tile(dequantize(images, levels), ncols, pad)


def _tile(cells, ncols, pad):
    """Lay out N uint8 pictures, (N, H, W) grey or (N, H, W, 3) RGB, in rows of ``ncols``
    (default ceil(sqrt(N))), with mid-gray lines ``pad`` pixels wide around each one.

    Returns:
        (rows*(H+pad)+pad, ncols*(W+pad)+pad) uint8, with the cells' (3,) axis if they have one.
    """
    n, h, w = cells.shape[:3]
    ncols = math.ceil(math.sqrt(n)) if ncols is None else ncols
    check_positive_int(ncols, "ncols")
    check_positive_int(pad, "pad", minimum=0)
    ncols = min(ncols, n)  # no empty columns when ncols > N
    nrows = math.ceil(n / ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad) + cells.shape[3:], PAD_GRAY, np.uint8)
    for i in range(n):
        top, left = pad + (i // ncols) * (h + pad), pad + (i % ncols) * (w + pad)
        grid[top:top + h, left:left + w] = cells[i]
    return grid


def is_colour(images):
    """True for (N, H, W, 3) colour levels (an array, or anything np.asarray reads)."""
    shape = np.shape(images)
    return len(shape) == 4 and shape[-1] == 3


def any_grid(images, levels, ncols=None):
    """:func:`colour_grid` of (N, H, W, 3) colour levels, else :func:`image_grid` (grey)."""
    return colour_grid(images, levels, ncols=ncols) if is_colour(images) else image_grid(images, levels, ncols=ncols)


def _show_grid(ax, grid):
    """imshow a grid: grey on the gray map pinned to 0..255 (no stretching), RGB as it is."""
    if grid.ndim == 3:
        ax.imshow(grid, interpolation="nearest")
    else:
        ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")


def save_image_grid(images, levels, path, ncols=None, scale=4):
    """Write image_grid(images, levels, ncols) as a PNG, each pixel scale x scale.

    Args:
        images: (N, H, W) or (N, H, W, 1) integer levels in [0, levels), or (N, H, W, 3)
            colour levels (R, G, B), drawn in colour (:func:`colour_grid`).
        path: where to write the PNG; its folder must exist.
        scale: nearest-neighbour upscaling factor, so 28x28 digits are visible.

    Returns:
        The Path written; the PNG is (scale*grid_height, scale*grid_width).
    """
    check_positive_int(scale, "scale")
    grid = any_grid(images, levels, ncols=ncols)
    big = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    if big.ndim == 3:                    # RGB: written as it is
        return write_atomically(path, lambda f: matplotlib.image.imsave(f, big, format="png"))
    # vmin/vmax pin the gray map to 0..255, so a grid without white is not stretched.
    return write_atomically(path, lambda f: matplotlib.image.imsave(
        f, big, cmap="gray", vmin=0, vmax=255, format="png"))


def plot_history(history, path=None, ax=None):
    """Plot train and test bits/dim against the training step.

    Args:
        history: non-empty list of dicts with "step" and optionally "time"
            (seconds), "train_bits" and "test_bits" (None or absent when not
            measured at that step).
        path: if given, also save the figure there as a PNG.
        ax: a matplotlib Axes to draw into (notebooks); default a new Figure.

    Returns:
        The matplotlib Figure holding the plot.
    """
    _check_history(history)
    if ax is None:
        # A bare Figure (not pyplot) is freed when dropped: no leak in a CLI loop.
        ax = Figure(figsize=(6, 4), layout="constrained").add_subplot()
    fig = ax.figure
    train = [(h["step"], h["train_bits"]) for h in history if h.get("train_bits") is not None]
    test = [(h["step"], h["test_bits"]) for h in history if h.get("test_bits") is not None]
    if train:
        ax.plot(*zip(*train), linewidth=0.8, alpha=0.8, label="train")
    if test:
        ax.plot(*zip(*test), marker="o", markersize=4, label="test")
        last = next(h for h in reversed(history) if h.get("test_bits") is not None)
        note = f"test {last['test_bits']:.3f}"
        if last.get("time") is not None:
            note += f" after {last['time'] / 60:.1f} min"
        ax.annotate(note, xy=test[-1], xytext=(-4, 8), textcoords="offset points", ha="right")
    _zoom_past_the_first_steps(ax, train, test)
    ax.set_xlabel("step")
    ax.set_ylabel("bits / dim")
    ax.grid(True, alpha=0.3)
    if train or test:
        ax.legend()
    if path is not None:
        save_figure(fig, path)
    return fig


def _zoom_past_the_first_steps(ax, train, test):
    """Fit the y-axis to the test points and the later training losses.

    The loss falls from ln(levels) to near its final value within the first few
    percent of a run; scaled to include that drop, every later improvement would
    be squeezed into a flat line at the bottom of the plot.
    """
    later_train = [bits for _, bits in train[len(train) // 10:]]
    values = later_train + [bits for _, bits in test]
    if len(values) < 2:
        return
    low, high = min(values), max(values)
    margin = 0.1 * (high - low) or 0.01 * high
    ax.set_ylim(low - margin, high + margin)


def plot_completions(originals, visible, completions, levels, path=None, scale=3, row_names=None):
    """One row per image: the original | what the model sees | its completions.

    Args:
        originals: (N, H, W) integer levels, or (N, H, W, 3) colour levels (drawn in colour).
        visible: (H, W) or (N, H, W) bool, True where the model was shown the pixel.
        completions: (N, S, H, W) integer levels, S completions per image ((N, S, H, W, 3) in colour).
        levels: number of intensity levels.
        path: if given, also save the figure there as a PNG.
        scale: inches per 10 cells of the figure, roughly.
        row_names: N strings written left of the rows (e.g. the class each row was completed as).

    Hidden pixels are drawn in mid-gray in the middle column, so the part the
    model had to invent stands out. Returns the matplotlib Figure.
    """
    originals = _check_images(originals, levels, "plot_completions", colour=is_colour(originals))
    completions = np.asarray(completions)
    n, h, w = originals.shape[:3]
    pixel = originals.shape[1:]                          # (H, W), or (H, W, 3) in colour
    if completions.ndim != 2 + len(pixel) or completions.shape[0] != n or completions.shape[2:] != pixel:
        expected = ", ".join(map(str, (n, "S") + pixel))
        raise ValueError(f"completions must be ({expected}), got shape {completions.shape}")
    visible = np.broadcast_to(np.asarray(visible, dtype=bool), (n, h, w))
    per_row = 2 + completions.shape[1]
    cells = np.concatenate([originals[:, None], originals[:, None], completions], axis=1)
    grid = any_grid(cells.reshape((-1,) + pixel), levels, ncols=per_row)
    for i in range(n):                                   # gray out what the model did not see
        top, left = 1 + i * (h + 1), 1 + (w + 1)
        cell = grid[top:top + h, left:left + w]
        cell[~visible[i]] = PAD_GRAY
    fig = Figure(figsize=(scale * per_row / 3, scale * n / 3 + 0.4), layout="constrained")
    ax = fig.add_subplot()
    _show_grid(ax, grid)
    ax.set_xticks([1 + (w + 1) * c + w / 2 for c in range(per_row)])
    ax.set_xticklabels(["original", "model sees"] + [f"sample {k + 1}" for k in range(per_row - 2)],
                       fontsize=8)
    ax.xaxis.set_ticks_position("top")
    ax.tick_params(length=0)
    _name_rows(ax, row_names, n, h)
    if path is not None:
        save_figure(fig, path)
    return fig


def save_figure(fig, path):
    """Write a matplotlib Figure to ``path`` as a PNG at 100 dpi, atomically (npixelcnn.files)."""
    write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=100))


def _name_rows(ax, row_names, n, h):
    """Write row_names (n strings, or None: no names) left of the n rows of cells of height h."""
    if row_names is None:
        ax.set_yticks([])
        return
    if len(row_names) != n:
        raise ValueError(f"row_names must name the {n} rows, got {len(row_names)} names")
    ax.set_yticks([1 + (h + 1) * r + h / 2 for r in range(n)])
    ax.set_yticklabels([str(name) for name in row_names], fontsize=8)


def plot_class_grid(images, classes, levels, path=None, scale=3):
    """Samples of a class-conditional model, a row per class, each row named by its class.

    Args:
        images: (K, S, H, W) integer levels: S images for each of K classes ((K, S, H, W, 3) in colour).
        classes: the K classes (ints or names), in the rows' order.
        levels: number of intensity levels.
        path: if given, also save the figure there as a PNG.
        scale: inches per 10 cells of the figure, roughly.

    Returns the matplotlib Figure.
    """
    images = np.asarray(images)
    colour = images.ndim == 5 and images.shape[-1] == 3
    if images.ndim != 4 + colour or images.shape[0] != len(classes):
        raise ValueError(f"images must be (K, S, H, W) or (K, S, H, W, 3) with K = {len(classes)} classes, "
                         f"got shape {images.shape}")
    k, per_row, h, w = images.shape[:4]
    grid = any_grid(images.reshape((-1,) + images.shape[2:]), levels, ncols=per_row)
    fig = Figure(figsize=(scale * per_row / 3 + 0.4, scale * k / 3), layout="constrained")
    ax = fig.add_subplot()
    _show_grid(ax, grid)
    ax.set_xticks([])
    ax.tick_params(length=0)
    _name_rows(ax, list(classes), k, h)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_confusion(matrix, path=None, ax=None):
    """A confusion matrix as a picture: rows the true classes, columns the predicted ones, each
    cell its count, shaded by the share of its row (so the errors of rare classes show too).

    Args:
        matrix: (K, K) counts.
        path: if given, also save the figure there as a PNG.
        ax: a matplotlib Axes to draw into (notebooks); default a new Figure.

    Returns the matplotlib Figure.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix is square (K, K), got shape {matrix.shape}")
    k = len(matrix)
    fig = ax.figure if ax is not None else Figure(figsize=(0.45 * k + 1.5, 0.45 * k + 1.2), layout="constrained")
    ax = ax if ax is not None else fig.add_subplot()
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(np.sqrt(share), cmap="Blues", vmin=0, vmax=1)     # sqrt: a few errors stay visible
    for (r, c), count in np.ndenumerate(matrix):
        if count:
            ax.text(c, r, str(count), ha="center", va="center", fontsize=7,
                    color="white" if share[r, c] > 0.5 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if path is not None:
        save_figure(fig, path)
    return fig


def show_levels(images, levels, ax=None, title=None, ncols=None):
    """Draw image_grid(images, levels, ncols) on an axis, in gray, without ticks.

    Args:
        images: (N, H, W) or (N, H, W, 1) integer levels in [0, levels).
        ax: the Axes to draw on; default a new pyplot figure, which a
            notebook displays at the end of the cell.
        title: optional axis title.
        ncols: images per row (default: a near-square grid).

    Returns:
        The Axes.
    """
    grid = image_grid(images, levels, ncols=ncols)
    if ax is None:
        import matplotlib.pyplot as plt  # only here: pyplot picks a backend on import
        aspect = grid.shape[1] / grid.shape[0]          # a 4-inch short side, the long one to scale
        _, ax = plt.subplots(figsize=(min(4 * max(aspect, 1), 12), min(4 * max(1 / aspect, 1), 12)))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title)
    return ax


def _check_images(images, levels, where, colour=False):
    """``images`` as integer levels of ``levels`` (2 to 256), or a clear error naming ``where``:
    (N, H, W) grey (also given as (N, H, W, 1)), or with ``colour`` (N, H, W, 3) RGB."""
    check_levels(levels)
    if colour:
        return check_level_images(images, levels, where, channels=3)
    return check_level_images(images, levels, where, allow_channel=True)


def _check_history(history):
    if not isinstance(history, (list, tuple)) or len(history) == 0:
        raise ValueError(
            "history must be a non-empty list of dicts with a 'step' key, got "
            f"{history!r:.80}"
        )
    for i, h in enumerate(history):
        if not isinstance(h, dict) or "step" not in h:
            raise ValueError(f"history[{i}] must be a dict with a 'step' key, got {h!r:.80}")
