"""The lesson notebooks: each runs top to bottom in a fresh kernel, in fast mode.

Fast mode (NPIXELCNN_FAST=1, read in each notebook's parameters cell) shrinks
data and steps; the committed notebooks carry the outputs of a full run
(``python lessons/run_lessons.py``), checked here for completeness.
"""

import importlib.util
from pathlib import Path

import nbformat
import pytest

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
EXPECTED = ["01_autoregressive_models", "02_masked_convolution", "03_building_pixelcnn",
            "04_training_on_mnist", "05_sampling"]


def load_runner():
    spec = importlib.util.spec_from_file_location("run_lessons", LESSONS / "run_lessons.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_lessons = load_runner()


def test_every_lesson_is_there_in_order():
    assert [path.stem for path in run_lessons.notebooks()] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_lesson_has_the_agreed_shape(name):
    """Opens with what the reader will learn, reads FAST in one parameters
    cell, and closes with a summary and exercises."""
    nb = nbformat.read(LESSONS / f"{name}.ipynb", as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "what you will learn" in first.source.lower()
    parameters = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1 and parameters[0].cell_type == "code"
    assert "NPIXELCNN_FAST" in parameters[0].source
    readers = [c for c in nb.cells if c.cell_type == "code" and "os.environ" in c.source]
    assert readers == parameters, "only the parameters cell may read the environment"
    headings = [line.strip().lower() for c in nb.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("#")]
    assert "## summary" in headings and "## exercises" in headings
    assert headings.index("## summary") < headings.index("## exercises")


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_lesson_carries_the_outputs_of_a_full_run(name):
    """Every code cell ran once, in order, without an error, in a full run
    (run_lessons.py records the mode and time) of at most 15 minutes."""
    nb = nbformat.read(LESSONS / f"{name}.ipynb", as_version=4)
    run = nb.metadata.get("npixelcnn_run", {})
    assert run.get("mode") == "full" and run["minutes"] <= 15
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), "no figure"


@pytest.mark.parametrize("name", EXPECTED)
def test_lesson_runs_top_to_bottom_in_fast_mode(name, monkeypatch, tmp_path):
    # Fast mode reads the tests' MNIST subset by itself: no variable, no cache, no download.
    monkeypatch.delenv("NPIXELCNN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))                  # the kernel inherits both
    nb, seconds = run_lessons.execute(LESSONS / f"{name}.ipynb", fast=True, timeout=300)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    print(f"{name}: {seconds:.1f} s in fast mode")


def test_lesson_04_can_skip_training_and_use_the_shipped_model(monkeypatch):
    monkeypatch.delenv("NPIXELCNN_DATA", raising=False)
    monkeypatch.setenv("NPIXELCNN_SKIP_TRAINING", "1")
    nb, _ = run_lessons.execute(LESSONS / "04_training_on_mnist.ipynb", fast=True, timeout=300)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "SKIP_TRAINING is True: no training; using the shipped model" in printed
    assert "training:" not in printed                  # no progress bar: nothing was trained
