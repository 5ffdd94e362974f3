"""Run the lesson notebooks top to bottom, each in a fresh kernel.

    python lessons/run_lessons.py                 # full run: outputs saved into the notebooks
    python lessons/run_lessons.py --fast          # fast mode (NPIXELCNN_FAST=1), nothing saved
    python lessons/run_lessons.py --fast --solutions 02   # fast, with the worked solutions loaded
    python lessons/run_lessons.py 04 05           # only the notebooks whose names start so

The full run is how the committed outputs are made; the fast mode is what the
tests run (tests/test_lessons.py). Each notebook reads NPIXELCNN_FAST in its
parameters cell and shrinks its data and steps when it is "1". The fast mode
also reads MNIST from the small subset committed with the tests
(tests/data/mnist), unless NPIXELCNN_DATA names another folder, so it needs no
download; the full run uses the full data (downloaded on first use).

Exercises. Each exercise is a cell tagged ``exercise`` holding a placeholder
(``None``, or a function that raises NotImplementedError), then a cell tagged
``exercise-check`` whose check raises until the exercise is done. By default
the notebooks run as a learner meets them, in *placeholder mode*: every
exercise-check cell must fail (an error there is expected and kept in the
outputs, so the committed notebook shows each check's message) and no other
cell may. With ``--solutions`` the parameters cell reads NPIXELCNN_SOLUTIONS=1
and the exercise cells load the worked solutions from ``lessons/solutions/``:
then no cell may fail, and nothing is saved. An exercise asks for something the notebook has
not shown yet: nothing before its check (no cell's text or output, nor the check's message on
the placeholder) states its answer, and its worked answer, a ``<details>`` block, comes after
the check (tests/test_lesson_exercises.py).

Saved outputs are cleaned the way a terminal would show them: a progress bar
redraws itself with carriage returns, and only its last state is kept.
"""

import argparse
import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
from nbclient import NotebookClient

LESSONS = Path(__file__).resolve().parent
FAST_ENV = "NPIXELCNN_FAST"
DATA_ENV = "NPIXELCNN_DATA"
SOLUTIONS_ENV = "NPIXELCNN_SOLUTIONS"
MNIST_SUBSET = LESSONS.parent / "tests" / "data" / "mnist"     # the first 2,000 / 1,000 MNIST images
EXERCISE, CHECK = "exercise", "exercise-check"                  # the cell tags of an exercise


def notebooks(prefixes=()):
    """The lesson notebooks in order, or those whose names start with one of ``prefixes``."""
    found = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
    if prefixes:
        found = [nb for nb in found if nb.name.startswith(tuple(prefixes))]
    return found


def execute(path, fast, solutions=False, allow_errors=False, timeout=1800, then_solve=False):
    """Run the notebook at ``path`` in a fresh kernel, with its folder as the
    working directory; return (the executed notebook, seconds).

    fast: NPIXELCNN_FAST=1 (less data, fewer steps) and the tests' MNIST subset.
    solutions: NPIXELCNN_SOLUTIONS=1, so the exercise cells load the worked solutions.
    allow_errors: run every cell even if some fail, keeping the errors in the
        outputs (see :func:`failed_cells`); otherwise nbclient's
        CellExecutionError, naming the cell, stops the run at the first failure.
    then_solve: after the run (in placeholder mode, errors allowed), solve
        every exercise in the same kernel: set SOLUTIONS = True, run each
        exercise cell and its check again, and raise RuntimeError naming any
        that fails. One run of the notebook shows both that each check fails
        on its placeholder and that it passes on its solution. The cells run
        for this are not kept in the notebook returned.
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            allow_errors=allow_errors or then_solve,
                            resources={"metadata": {"path": str(path.parent)}})
    settings = {FAST_ENV: "1" if fast else "0", SOLUTIONS_ENV: "1" if solutions else "0"}
    if fast and not os.environ.get(DATA_ENV):
        settings[DATA_ENV] = str(MNIST_SUBSET)
    with environment(settings):                         # the kernel inherits our environment
        started = time.perf_counter()
        if not then_solve:
            client.execute()
        else:
            with client.setup_kernel():
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                solve_in_kernel(client, nb, path.stem)
        return nb, time.perf_counter() - started


def solve_in_kernel(client, nb, name):
    """Run, in the kernel of ``client``, SOLUTIONS = True and then every exercise
    cell and its check cell again; raise RuntimeError naming each check that fails."""
    pairs = [(nb.cells[i - 1], cell) for i, cell in enumerate(nb.cells) if CHECK in tags(cell)]
    sources = ["SOLUTIONS = True"] + [source for exercise, check in pairs for source in (exercise.source, check.source)]
    extra = run_extra_cells(client, nb, sources)
    problems = [f"{name}: with the worked solution, the check {cell.source.strip().splitlines()[0][:60]!r} "
                f"failed: {output['ename']}: {output['evalue']}"
                for cell in extra for output in cell.outputs if output.get("output_type") == "error"]
    if problems:
        raise RuntimeError("\n".join(problems))


def run_extra_cells(client, nb, sources):
    """Run code cells made from ``sources`` after the last cell of ``nb``, in the kernel of
    ``client``, and take them out of the notebook again; returns the executed cells."""
    extra = [nbformat.v4.new_code_cell(source) for source in sources]
    first = len(nb.cells)
    nb.cells.extend(extra)                  # nbclient writes each executed cell back by its index
    try:
        for k, cell in enumerate(extra):
            client.execute_cell(cell, first + k)
    finally:
        del nb.cells[first:]
    return extra


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def failed_cells(nb):
    """The code cells with an error output: a list of (cell number, cell, error output)."""
    return [(i, cell, output) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def check_placeholder_run(nb, name):
    """In placeholder mode every exercise-check cell must fail with an
    AssertionError (its message tells the learner what to do) and no other
    cell may fail. Raises RuntimeError listing every cell that breaks this."""
    failed = {i: output for i, _, output in failed_cells(nb)}
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        where = f"{name}, cell {i} ({first_line[:60]!r})"
        if CHECK in tags(cell):
            if i not in failed:
                problems.append(f"{where}: this exercise check passed on its placeholder; "
                                "a check must fail until the exercise is done")
            elif failed[i]["ename"] != "AssertionError":
                problems.append(f"{where}: the check raised {failed[i]['ename']}: {failed[i]['evalue']}; "
                                "on a placeholder it must raise an AssertionError that says what to do")
        elif i in failed:
            problems.append(f"{where}: {failed[i]['ename']}: {failed[i]['evalue']} "
                            f"(only cells tagged {CHECK!r} may fail)")
    if problems:
        raise RuntimeError("\n".join(problems))


@contextmanager
def environment(settings):
    """Set the environment variables in ``settings`` for the block, then put them back."""
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def clean_outputs(nb):
    """Keep what a terminal would show of each text stream: consecutive
    pieces of one stream are joined, of every line that carriage returns
    redraw (progress bars) only the last state is kept, and streams left
    blank are dropped."""
    for cell in nb.cells:
        merged = []
        for output in cell.get("outputs", []):
            previous = merged[-1] if merged else None
            if (output.get("output_type") == "stream" and previous is not None
                    and previous.get("output_type") == "stream" and previous["name"] == output["name"]):
                previous["text"] += output["text"]
            else:
                merged.append(output)
        for output in merged:
            if output.get("output_type") == "stream":
                lines = output["text"].split("\n")
                output["text"] = "\n".join(re.split(r"\r(?!$)", line)[-1].rstrip() for line in lines)
        if "outputs" in cell:       # a bar that erased itself (leave=False) leaves only blanks
            cell["outputs"] = [o for o in merged if o.get("output_type") != "stream" or o["text"].strip()]
    return nb


def save(nb, path):
    """Write the notebook atomically: a temporary file, then a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ipynb.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
        os.chmod(tmp, 0o644)                    # mkstemp makes it private; a notebook is not
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="notebook name prefixes, e.g. 01 04")
    parser.add_argument("--fast", action="store_true", help="fast mode; the notebooks are not saved")
    parser.add_argument("--solutions", action="store_true",
                        help="load the worked solutions (no cell may fail); the notebooks are not saved")
    args = parser.parse_args(argv)
    paths = notebooks(args.only)
    if not paths:
        sys.exit(f"no lesson notebook matches {args.only} in {LESSONS}")
    saving = not args.fast and not args.solutions
    for path in paths:
        print(f"{path.name} ...", end=" ", flush=True)
        nb, seconds = execute(path, fast=args.fast, solutions=args.solutions,
                              allow_errors=not args.solutions)
        if not args.solutions:
            try:
                check_placeholder_run(nb, path.name)
            except RuntimeError as error:
                sys.exit(f"\n{error}\n{path.name} not saved" if saving else f"\n{error}")
        if saving:
            # Recorded in the notebook, so a reader (and the tests) can see how it was made.
            nb.metadata["npixelcnn_run"] = {"mode": "full", "minutes": round(seconds / 60, 1),
                                            "date": time.strftime("%Y-%m-%d")}
            save(clean_outputs(nb), path)
        checks = sum(CHECK in tags(c) for c in nb.cells)
        mode = "solutions" if args.solutions else f"placeholders: {checks} exercise checks failed as expected"
        took = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"
        print(f"{took} ({mode})", flush=True)


if __name__ == "__main__":
    main()
