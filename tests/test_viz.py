"""The pictures are right to the pixel, and a file is either whole or untouched."""

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from npixelcnn import viz


def levels_images(n=5, h=3, w=4, levels=4, seed=0):
    return np.random.default_rng(seed).integers(0, levels, size=(n, h, w))


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


# --- image_grid -------------------------------------------------------------

@pytest.mark.parametrize("n, ncols, pad, rows, cols", [
    (5, None, 1, 2, 3),   # near-square: ceil(sqrt(5)) = 3 columns, 2 rows
    (9, None, 1, 3, 3),
    (5, 2, 0, 3, 2),
    (1, None, 2, 1, 1),
    (3, 10, 1, 1, 3),     # more columns than images: no empty columns
])
def test_grid_shape_is_rows_and_columns_of_padded_cells(n, ncols, pad, rows, cols):
    grid = viz.image_grid(levels_images(n, h=3, w=4), levels=4, ncols=ncols, pad=pad)
    assert grid.dtype == np.uint8
    assert grid.shape == (rows * (3 + pad) + pad, cols * (4 + pad) + pad)


def test_levels_map_linearly_onto_0_to_255_with_gray_padding():
    images = np.array([[[0, 1], [2, 3]], [[3, 3], [0, 0]]])    # (2, 2, 2), 4 levels
    grid = viz.image_grid(images, levels=4, ncols=2, pad=1)
    expected = np.array([
        [128, 128, 128, 128, 128, 128, 128],
        [128,   0,  85, 128, 255, 255, 128],
        [128, 170, 255, 128,   0,   0, 128],
        [128, 128, 128, 128, 128, 128, 128],
    ], dtype=np.uint8)
    np.testing.assert_array_equal(grid, expected)


def test_unfilled_cells_stay_padding_gray():
    grid = viz.image_grid(np.zeros((3, 2, 2), np.int64), levels=2, ncols=2, pad=1)
    assert (grid[4:6, 4:6] == viz.PAD_GRAY).all()              # the 4th cell is empty
    assert (grid[1:3, 1:3] == 0).all()


def test_channel_axis_of_one_is_accepted():
    images = levels_images(4, levels=7)
    np.testing.assert_array_equal(
        viz.image_grid(images[..., None], 7), viz.image_grid(images, 7))


@pytest.mark.parametrize("images, levels, error, match", [
    (np.zeros((2, 3, 3), np.float32), 4, TypeError, "integer NumPy array"),
    ([[[0, 1]]], 4, TypeError, "integer NumPy array"),
    (np.zeros((3, 3), np.int64), 4, ValueError, r"\(N, H, W\) or \(N, H, W, 1\)"),
    (np.zeros((2, 3, 3, 3), np.int64), 4, ValueError, r"\(N, H, W\) or \(N, H, W, 1\)"),
    (np.zeros((0, 3, 3), np.int64), 4, ValueError, r"N, H, W >= 1, got shape \(0, 3, 3\)"),
    (np.full((1, 2, 2), 4), 4, ValueError, r"levels in \[0, 3\].*from 4 to 4"),
    (np.full((1, 2, 2), -1), 4, ValueError, r"levels in \[0, 3\]"),
    (np.zeros((1, 2, 2), np.int64), 1, ValueError, "levels must be at least 2"),
])
def test_bad_images_are_rejected_with_a_clear_error(images, levels, error, match):
    with pytest.raises(error, match=match):
        viz.image_grid(images, levels)


def test_bad_layout_arguments_are_rejected():
    with pytest.raises(ValueError, match="ncols must be at least 1"):
        viz.image_grid(levels_images(), 4, ncols=0)
    with pytest.raises(ValueError, match="pad must be at least 0"):
        viz.image_grid(levels_images(), 4, pad=-1)


def test_a_grey_grid_and_the_same_images_in_colour_show_the_same_bytes():
    """One tiling and one mapping of levels to bytes (npixelcnn.dequantize) for grey and colour:
    at 7 levels, level 1 is 42.5 and level 3 127.5, both rounded half up."""
    images = levels_images(5, levels=7)
    grey = viz.image_grid(images, 7, ncols=3, pad=2)
    colour = viz.colour_grid(np.stack([images] * 3, axis=-1), 7, ncols=3, pad=2)
    np.testing.assert_array_equal(colour, np.stack([grey] * 3, axis=-1))
    np.testing.assert_array_equal(viz.image_grid(np.arange(7)[None, None], 7, pad=0),
                                  [[0, 43, 85, 128, 170, 213, 255]])


# --- save_image_grid --------------------------------------------------------

def test_saved_png_is_the_grid_upscaled_and_leaves_no_temp_file(tmp_path):
    images = levels_images(5, h=3, w=4, levels=4)
    grid = viz.image_grid(images, 4, ncols=2)
    path = viz.save_image_grid(images, 4, tmp_path / "grid.png", ncols=2, scale=3)
    assert path == tmp_path / "grid.png"
    assert files_in(tmp_path) == ["grid.png"]
    decoded = matplotlib.image.imread(path)                     # (H, W, 4) floats in [0, 1]
    assert decoded.shape[:2] == (grid.shape[0] * 3, grid.shape[1] * 3)
    gray = np.rint(decoded[..., 0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(gray, np.kron(grid, np.ones((3, 3), np.uint8)))


def test_saving_into_a_missing_folder_says_which_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        viz.save_image_grid(levels_images(), 4, tmp_path / "nope" / "grid.png")


def test_interrupted_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "grid.png"
    path.write_bytes(b"the previous picture")

    def half_write(f, *args, **kwargs):
        f.write(b"\x89PNG\r\n\x1a\n half a picture")
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.image, "imsave", half_write)
    with pytest.raises(KeyboardInterrupt):
        viz.save_image_grid(levels_images(), 4, path)
    assert path.read_bytes() == b"the previous picture"
    assert files_in(tmp_path) == ["grid.png"]


# --- plot_history -----------------------------------------------------------

HISTORY = [
    {"step": 0, "time": 0.0, "train_bits": 2.0, "test_bits": 1.9},
    {"step": 10, "time": 30.0, "train_bits": 1.5},                      # no test_bits key
    {"step": 20, "time": 60.0, "train_bits": 1.2, "test_bits": None},
    {"step": 30, "time": 90.0, "train_bits": None, "test_bits": 1.1},   # eval only
]


def lines_by_label(fig):
    return {line.get_label(): line for line in fig.axes[0].get_lines()}


def test_history_plot_holds_the_train_and_test_values(tmp_path):
    fig = viz.plot_history(HISTORY, path=tmp_path / "history.png")
    assert isinstance(fig, Figure)
    lines = lines_by_label(fig)
    np.testing.assert_array_equal(lines["train"].get_xdata(), [0, 10, 20])
    np.testing.assert_array_equal(lines["train"].get_ydata(), [2.0, 1.5, 1.2])
    np.testing.assert_array_equal(lines["test"].get_xdata(), [0, 30])
    np.testing.assert_array_equal(lines["test"].get_ydata(), [1.9, 1.1])
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "bits / dim")
    assert "test 1.100 after 1.5 min" in [t.get_text() for t in ax.texts]
    assert files_in(tmp_path) == ["history.png"]
    assert matplotlib.image.imread(tmp_path / "history.png").shape[:2] == (400, 600)


def test_history_without_any_test_values_plots_only_train():
    fig = viz.plot_history([{"step": s, "train_bits": 3.0 - s} for s in range(3)])
    assert list(lines_by_label(fig)) == ["train"]
    assert len(fig.axes[0].texts) == 0


def test_history_draws_into_a_given_axis():
    ax = Figure().add_subplot()
    fig = viz.plot_history(HISTORY, ax=ax)
    assert fig is ax.figure and len(ax.get_lines()) == 2


@pytest.mark.parametrize("history, match", [
    ([], "non-empty list"),
    (None, "non-empty list"),
    ({"step": 0}, "non-empty list"),
    ([{"step": 0}, {"time": 1.0}], r"history\[1\] must be a dict with a 'step' key"),
    ([3], r"history\[0\] must be a dict"),
])
def test_bad_history_is_rejected_with_a_clear_error(history, match):
    with pytest.raises(ValueError, match=match):
        viz.plot_history(history)


# --- show_levels ------------------------------------------------------------

def test_show_levels_draws_the_grid_without_ticks():
    images = levels_images(4, levels=3)
    ax = viz.show_levels(images, 3, ax=Figure().add_subplot(), title="samples")
    np.testing.assert_array_equal(ax.images[0].get_array(), viz.image_grid(images, 3))
    assert ax.images[0].get_clim() == (0, 255)
    assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []
    assert ax.get_title() == "samples"


def test_show_levels_without_an_axis_makes_a_pyplot_figure():
    import matplotlib.pyplot as plt
    ax = viz.show_levels(levels_images(), 4)
    try:
        assert ax.figure in [plt.figure(n) for n in plt.get_fignums()]
    finally:
        plt.close(ax.figure)


def test_plot_history_zooms_in_past_the_initial_drop():
    history = [{"step": s, "train_bits": 2.0 if s == 1 else 0.3 - s / 1e4,
                "test_bits": 0.29 - s / 1e4 if s % 10 == 0 else None} for s in range(1, 101)]
    fig = viz.plot_history(history)
    low, high = fig.axes[0].get_ylim()
    assert high < 1.0                                  # the first step (2.0 bits) is off the chart
    tested = [h["test_bits"] for h in history if h["test_bits"] is not None]
    assert low < min(tested) and max(tested) < high     # every test point is visible


def test_show_levels_lays_out_ncols_images_per_row():
    import matplotlib
    matplotlib.use("Agg")
    ax = viz.show_levels(levels_images(8, levels=4), 4, ncols=8)
    height, width = ax.get_images()[0].get_array().shape[:2]
    assert width > 4 * height                    # one row of 8 images
    width_in, height_in = ax.figure.get_size_inches()
    assert width_in > 2 * height_in              # the figure follows the grid's shape
    import matplotlib.pyplot as plt
    plt.close(ax.figure)
