"""The lesson notebooks: each runs top to bottom in a fresh kernel, in fast mode.

Fast mode (NPIXELCNN_FAST=1, read in each notebook's parameters cell) shrinks
data and steps; the committed notebooks carry the outputs of a full run
(``python lessons/run_lessons.py``), checked here for completeness.

Exercises: a cell tagged ``exercise`` holds a placeholder (``None``, or a
function that raises NotImplementedError) and ends by loading the worked
solution from ``lessons/solutions/lessonNN.py`` when SOLUTIONS is set; the next
cell, tagged ``exercise-check``, checks it. Each notebook runs once as a learner
meets it, with the placeholders (every check must fail, with an AssertionError
saying what to do, and nothing else may), and then, in the same kernel, every
exercise again with its solution (every check must pass), so no check can be
one that always passes, nor one that never does.
"""

import ast
import re
from pathlib import Path

import nbformat
import pytest

from conftest import load_module

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
EXPECTED = ["01_autoregressive_models", "02_masked_convolution", "03_building_pixelcnn",
            "04_training_on_mnist", "05_sampling", "06_gated_pixelcnn", "07_how_many_levels",
            "08_what_a_likelihood_knows", "09_neighbouring_levels", "10_steering_the_model",
            "11_colour"]
MIN_EXERCISES = 3
SOLUTION_IMPORT = re.compile(
    r"^if SOLUTIONS: from solutions\.lesson(\d\d) import (\w+(?:, \w+)*)\s+# the worked solution: "
    r"lessons/solutions/lesson(\d\d)\.py$")


run_lessons = load_module("run_lessons", LESSONS / "run_lessons.py")


def read(name):
    return nbformat.read(LESSONS / f"{name}.ipynb", as_version=4)


def tags(cell):
    return cell.metadata.get("tags", [])


def exercises(nb):
    """The (exercise cell, check cell) pairs of a notebook."""
    return [(nb.cells[i - 1], cell) for i, cell in enumerate(nb.cells)
            if run_lessons.CHECK in tags(cell)]


def test_every_lesson_is_there_in_order():
    assert [path.stem for path in run_lessons.notebooks()] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_lesson_has_the_agreed_shape(name):
    """Opens with what the reader will learn, reads FAST and SOLUTIONS in one
    parameters cell, and closes with a summary, exercises and references."""
    nb = read(name)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "what you will learn" in first.source.lower()
    parameters = [c for c in nb.cells if "parameters" in tags(c)]
    assert len(parameters) == 1 and parameters[0].cell_type == "code"
    assert "NPIXELCNN_FAST" in parameters[0].source
    assert 'SOLUTIONS = os.environ.get("NPIXELCNN_SOLUTIONS", "0") == "1"' in parameters[0].source
    readers = [c for c in nb.cells if c.cell_type == "code" and "os.environ" in c.source]
    assert readers == parameters, "only the parameters cell may read the environment"
    headings = [line.strip().lower() for c in nb.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("## ")]
    assert "## summary" in headings and "## exercises" in headings and "## references" in headings
    assert headings.index("## summary") < headings.index("## exercises") < headings.index("## references")
    assert headings[-1] == "## references", "the references come at the very end"


def is_placeholder(statement):
    """``NAME = None`` or a function whose body (after a docstring) only raises NotImplementedError."""
    if isinstance(statement, ast.Assign):
        return isinstance(statement.value, ast.Constant) and statement.value.value is None
    if isinstance(statement, ast.FunctionDef):
        body = statement.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]                                          # the docstring
        if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
            return False
        raised = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
        return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"
    return False


@pytest.mark.parametrize("name", EXPECTED)
def test_lesson_exercises_are_placeholders_with_solutions_on_request(name):
    """At least 3 exercises; each is an exercise cell holding only placeholders
    (no solution code in the learner's notebook) and ending with the line that
    loads the worked solution, followed by its check cell; the solution file
    defines every name the line imports."""
    nb = read(name)
    lesson = name[:2]
    pairs = exercises(nb)
    assert len(pairs) >= MIN_EXERCISES, f"{name}: {len(pairs)} exercise checks, want at least {MIN_EXERCISES}"
    assert sum(run_lessons.EXERCISE in tags(c) for c in nb.cells) == len(pairs), \
        f"{name}: every exercise cell must be followed by its exercise-check cell"
    solutions = load_module(f"solutions_lesson{lesson}", LESSONS / "solutions" / f"lesson{lesson}.py")
    assert solutions.__doc__ and f"lesson {lesson}" in solutions.__doc__.lower()
    for exercise, check in pairs:
        assert exercise.cell_type == "code" and run_lessons.EXERCISE in tags(exercise), \
            f"{name}: the cell before the check {check.source[:60]!r} is not tagged 'exercise'"
        lines = exercise.source.rstrip().splitlines()
        match = SOLUTION_IMPORT.match(lines[-1])
        assert match, f"{name}: exercise cell must end with the solution line, not {lines[-1]!r}"
        assert match.group(1) == match.group(3) == lesson
        names = match.group(2).split(", ")
        missing = [n for n in names if not hasattr(solutions, n)]
        assert not missing, f"{name}: lessons/solutions/lesson{lesson}.py lacks {missing}"
        statements = ast.parse("\n".join(lines[:-1])).body
        assert statements, f"{name}: an exercise cell without a placeholder"
        solved = [ast.get_source_segment("\n".join(lines[:-1]), s) for s in statements if not is_placeholder(s)]
        assert not solved, f"{name}: exercise cell holds code that is not a placeholder: {solved}"
        defined = {t.id for s in statements if isinstance(s, ast.Assign) for t in s.targets
                   if isinstance(t, ast.Name)} | {s.name for s in statements if isinstance(s, ast.FunctionDef)}
        assert set(names) <= defined, f"{name}: the solution line loads {names}, the cell defines {defined}"


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_lesson_carries_the_outputs_of_a_full_run(name):
    """Every code cell ran once, in order, in a full run in placeholder mode
    (run_lessons.py records the mode and time) of at most 15 minutes: each
    exercise check shows its failure message, and no other cell failed."""
    nb = read(name)
    run = nb.metadata.get("npixelcnn_run", {})
    assert run.get("mode") == "full" and run["minutes"] <= 15
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    run_lessons.check_placeholder_run(nb, name)
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), "no figure"


@pytest.mark.parametrize("name", EXPECTED)
def test_lesson_runs_and_each_check_fails_on_its_placeholder_and_passes_on_its_solution(
        name, monkeypatch, tmp_path):
    """Fast mode as a learner meets it: every exercise-check cell raises an
    AssertionError and no other cell raises anything; then, in the same kernel,
    with SOLUTIONS = True, every exercise cell and its check run again and pass."""
    # Fast mode reads the tests' MNIST subset by itself: no variable, no cache, no download.
    monkeypatch.delenv("NPIXELCNN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))                  # the kernel inherits both
    nb, seconds = run_lessons.execute(LESSONS / f"{name}.ipynb", fast=True, then_solve=True, timeout=300)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    run_lessons.check_placeholder_run(nb, name)
    assert len(exercises(nb)) >= MIN_EXERCISES
    print(f"{name}: {seconds:.1f} s in fast mode, placeholders then solutions")


def test_a_solution_that_fails_its_check_is_reported(monkeypatch, tmp_path):
    """then_solve is not a formality: a notebook whose 'solution' is wrong fails."""
    nb = nbformat.v4.new_notebook()
    exercise = nbformat.v4.new_code_cell("answer = None\nif SOLUTIONS: answer = 41")
    exercise.metadata["tags"] = [run_lessons.EXERCISE]
    check = nbformat.v4.new_code_cell("assert answer == 42, f'answer is {answer}'")
    check.metadata["tags"] = [run_lessons.CHECK]
    nb.cells = [nbformat.v4.new_code_cell("SOLUTIONS = False"), exercise, check]
    path = tmp_path / "99_wrong.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(RuntimeError, match="with the worked solution, the check .assert answer == 42.*failed: AssertionError: answer is 41"):
        run_lessons.execute(path, fast=True, then_solve=True, timeout=60)


def test_lesson_04_can_skip_training_and_use_the_shipped_model(monkeypatch):
    monkeypatch.delenv("NPIXELCNN_DATA", raising=False)
    monkeypatch.setenv("NPIXELCNN_SKIP_TRAINING", "1")
    nb, _ = run_lessons.execute(LESSONS / "04_training_on_mnist.ipynb", fast=True, solutions=True, timeout=300)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "SKIP_TRAINING is True: no training; using the shipped model" in printed
    assert "training:" not in printed                  # no progress bar: nothing was trained
