"""No exercise is answered before its check.

An exercise asks for something the notebook has not already printed or written: if the
answer stands in an earlier cell (its text, its code, or what it printed), the exercise
tests copying, not understanding. Two checks, for every lesson run_lessons.notebooks() finds:

- static: every ``<details>`` answer block of the exercises section comes after the check of
  the exercise it answers (the n-th block answers the n-th exercise);
- by running: each notebook runs once in fast mode as a learner meets it (placeholders), then,
  in the same kernel, each exercise is solved with its worked solution while every name the
  exercise defines is recorded (a value as it is; a function by the results it returns on the
  check's own inputs). No earlier cell may contain those values: not its source, not its
  outputs in the committed notebook, not its outputs in the fast run; nor may the check's
  source or the message it shows on the placeholder.

A value is looked for as the notebook would print it: to 3 and 4 significant digits, fixed or
general, with or without thousands separators. A *distinctive* value (3 or more significant
digits, or an integer of 100 or more) counts wherever it stands. A *plain* one (8, 24, 0.5) is
everywhere in a lesson, so it counts only within a sentence's reach of a number the question
itself names (the "256" of "uniform over 256 levels"): "8 for 256 grey values" gives the answer
away, an "8" elsewhere does not. A function's answer is given away by one distinctive result on
the check's inputs, or by all of them; an array's, by half of a dozen of its distinct entries.
"""

import json
import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from conftest import load_module

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
SOLUTION_LINE = re.compile(r"^if SOLUTIONS: from solutions\.lesson\d\d import (\w+(?:, \w+)*)", re.M)
WINDOW = 60                 # characters either side of a plain value in which a question's number must stand
NUMBER = r"(?<![\w.])({})(?![\w]|\.\d)"


run_lessons = load_module("run_lessons", LESSONS / "run_lessons.py")
NOTEBOOKS = run_lessons.notebooks()


def checks(nb):
    """The indices of the exercise-check cells (the exercise cell is the one before each)."""
    return [i for i, cell in enumerate(nb.cells) if run_lessons.CHECK in run_lessons.tags(cell)]


def answer_names(exercise_source):
    match = SOLUTION_LINE.search(exercise_source)
    return match.group(1).split(", ") if match else []


# ---------------------------------------------------------------- running and recording

RECORDER = r'''
import functools as _functools
import numpy as _np
_RECORDED = {}

def _numbers(value, out, limit=20000):
    """Every number in value (scalars, sequences, arrays), as floats."""
    if isinstance(value, (bool, _np.bool_)) or value is None or len(out) > limit:
        return out
    if isinstance(value, (int, float, _np.integer, _np.floating)):
        if _np.isfinite(value):
            out.append(float(value))
    elif isinstance(value, _np.ndarray):
        if value.dtype.kind in "iuf":
            flat = value.ravel()[:limit]
            out.extend(float(v) for v in flat[_np.isfinite(flat)])
    elif isinstance(value, (tuple, list)):
        for v in value:
            _numbers(v, out, limit)
    elif isinstance(value, dict):
        for v in value.values():
            _numbers(v, out, limit)
    return out

def _record(name, kind, results, inputs=()):
    entry = _RECORDED.setdefault(name, {"kind": kind, "results": [], "inputs": []})
    entry["results"].append(_numbers(results, []))
    scalars = [a for a in inputs if isinstance(a, (int, float, _np.integer, _np.floating))]
    entry["inputs"].extend(_numbers(scalars, []))

def _wrap(name, f):
    @_functools.wraps(f)
    def recorded(*args, **kwargs):
        result = f(*args, **kwargs)
        _record(name, "function", result, list(args) + list(kwargs.values()))
        return result
    return recorded

for _name in NAMES:
    _value = globals()[_name]
    if callable(_value):
        globals()[_name] = _wrap(_name, _value)
    else:
        _record(_name, "value", _value)
'''


def text_of(cell, with_source=True):
    """What a reader sees of a cell as text: its source and its text outputs (no images)."""
    parts = [cell.source] if with_source else []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(output.get("text", ""))
        elif kind == "error":
            parts.append(f"{output.get('ename', '')}: {output.get('evalue', '')}")
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "\n".join(parts)


def run_and_record(path, timeout=300):
    """Run the notebook in fast mode with its placeholders, then solve each exercise in the same
    kernel, recording what its names hold. Returns (the executed notebook, {check index:
    {name: record}}), where a record is {"kind": "value"|"function", "results": [[numbers] per
    value or call], "inputs": [scalar arguments of the calls]}."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    settings = {run_lessons.FAST_ENV: "1", run_lessons.SOLUTIONS_ENV: "0",
                run_lessons.DATA_ENV: str(run_lessons.MNIST_SUBSET)}
    records = {}
    with run_lessons.environment(settings), client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
        for check in checks(nb):
            names = answer_names(nb.cells[check - 1].source)
            dump = "import json as _json; print('RECORDED' + _json.dumps(_RECORDED))"
            extra = run_lessons.run_extra_cells(client, nb, [
                "SOLUTIONS = True", nb.cells[check - 1].source, f"NAMES = {names!r}\n" + RECORDER,
                nb.cells[check].source, dump])
            errors = [o for c in extra for o in c.outputs if o.get("output_type") == "error"]
            assert not errors, f"{path.name}: solving the exercise before cell {check} failed: {errors[0]['evalue']}"
            printed = text_of(extra[-1], with_source=False)
            records[check] = json.loads(printed[printed.index("RECORDED") + len("RECORDED"):])
    return nb, records


# ---------------------------------------------------------------- looking for a value

def significant(v):
    """The significant digits of |v| to 4 digits, without trailing zeros: 0.1457 -> '1457', 8 -> '8'."""
    mantissa = f"{abs(v):.3e}".split("e")[0].replace(".", "")
    return mantissa.rstrip("0") or "0"


def distinctive(v):
    return len(significant(v)) >= 3 or (float(v).is_integer() and abs(v) >= 100)


def spellings(v):
    """How a notebook might print |v|."""
    a = abs(v)
    found = set()
    if float(a).is_integer() and a < 1e15:
        found |= {str(int(a)), f"{int(a):,}"}
    for digits in (3, 4):
        found.add(f"{a:.{digits}g}")
        if a != 0:
            decimals = max(0, digits - 1 - math.floor(math.log10(a)))
            if decimals <= 8:
                found.add(f"{a:.{decimals}f}")
    if 0 < a < 1:
        found |= {f"{a:.1%}", f"{a:.2%}"}
    return {s for s in found if "e" not in s and telling(s, a)}


def telling(spelling, a):
    """Whether a printed spelling of |v| = a would give it away: not a rounding to zero ("0.00%"
    of 8e-9), and, unless a is a whole number printed whole, at least two significant digits
    ("0.1" of 0.100434 or "1" of 0.999865 would match any 0.1 or 1 of the text)."""
    digits = spelling.rstrip("%").replace(",", "")
    if float(digits) == 0:
        return False
    significant = digits.replace(".", "").lstrip("0")
    return len(significant) >= 2 or float(a).is_integer() and "." not in digits


def pattern(v):
    return re.compile(NUMBER.format("|".join(re.escape(s) for s in sorted(spellings(v), key=len, reverse=True))))


def numbers_in(text):
    return [float(m.replace(",", "")) for m in re.findall(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)(?![\w])", text)
            if m.replace(",", "").replace(".", "", 1).isdigit()]


def anchors_of(question, inputs):
    """The numbers a question names (and the scalar inputs the check calls a function with), with
    at least two digits: those a sentence giving the answer away would name beside it."""
    question = re.sub(r"\*\*\d+\.", "", question)                  # the exercise's own number
    found = {n for n in numbers_in(question) + list(inputs) if abs(n) >= 10}
    return {n for n in found if n == n}


def found(values, texts, anchors):
    """Where the number, or the short sequence of numbers, ``values`` stands in texts
    ([(where, text, prose)]), as the rule for them allows; or None. A sequence is looked for
    written together ("(12, 13)", "12 and 13") and counts wherever it stands; a plain number
    only in prose (markdown and printed outputs), beside a number of the question."""
    if not all(spellings(v) for v in values):
        return None        # 0 has no spelling worth looking for (an empty pattern would match anywhere)
    if len(values) > 1:
        look = re.compile(r"\s*(?:,|;|and)\s*".join(pattern(v).pattern for v in values))
        strong = True
    else:
        look, strong = pattern(values[0]), distinctive(values[0])
    for where, text, prose in texts:
        if not strong and not prose:
            continue
        for match in look.finditer(text):
            if strong:
                return where, text[max(0, match.start() - 40):match.end() + 40]
            near = text[max(0, match.start() - WINDOW):match.end() + WINDOW]
            if any(pattern(a).search(near) for a in anchors if a != values[0]):
                return where, near
    return None


def leaks(record, texts, anchors):
    """The places that give this recorded answer away, or [] if it stays the exercise's to find.

    A value of at most 4 numbers (a number, a pair) is given away when all of it is found. A
    function is given away when one of its results on the check's inputs is found and is
    distinctive, or when all of them are; a larger result (an array) when half of a dozen of its
    distinctive entries are."""
    results = record["results"]
    if results and all(0 < len(r) <= 4 for r in results):
        wanted = sorted({tuple(r) for r in results})
        hits = [(values, hit) for values in wanted if (hit := found(values, texts, anchors))]
        if record["kind"] == "function" and any(len(v) > 1 or distinctive(v[0]) for v, _ in hits):
            return hits                                # one distinctive result is already too many
        return hits if len(hits) == len(wanted) else []
    else:
        strong = sorted({v for r in results for v in r if distinctive(v)})
        if not strong:
            return []
        picked = sorted({strong[i] for i in np.linspace(0, len(strong) - 1, min(12, len(strong))).astype(int)})
        wanted, need = [(v,) for v in picked], max(1, len(picked) // 2)
    hits = [(values, hit) for values in wanted if (hit := found(values, texts, anchors))]
    return hits if len(hits) >= need else []


def before_check(nb, check, label):
    """[(where, text)] of everything a learner has seen before solving the exercise of ``check``."""
    texts = []
    for i in range(check + 1):
        cell = nb.cells[i]
        where = (f"{label} cell {i} ({cell.source.strip()[:40]!r})" if i < check else
                 f"{label} check cell {check} (its source and its message on the placeholder)")
        texts.append((where, text_of(cell), cell.cell_type == "markdown"))
        if cell.cell_type == "code":
            texts.append((f"{where}, printed", text_of(cell, with_source=False), True))
    return texts


def question_of(nb, check):
    """The markdown between the previous check (or the start) and this exercise."""
    previous = max([c for c in checks(nb) if c < check], default=-1)
    return "\n".join(nb.cells[i].source for i in range(previous + 1, check - 1)
                     if nb.cells[i].cell_type == "markdown")


def answered_early(committed, ran, records):
    """Messages naming each exercise whose recorded answer stands before its check."""
    problems = []
    for number, check in enumerate(checks(committed), start=1):
        texts = before_check(committed, check, "committed") + before_check(ran, check, "fast run")
        question = question_of(committed, check)
        for name, record in records.get(check, {}).items():
            for values, (where, context) in leaks(record, texts, anchors_of(question, record["inputs"])):
                shown = ", ".join(f"{v:g}" for v in values)
                problems.append(f"exercise {number} ({name}): {shown} already stands in {where}: "
                                f"...{' '.join(context.split())}...")
    return problems


def details_before_their_checks(nb):
    """Messages naming each <details> answer block that stands before the check it answers."""
    positions = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                 for _ in re.finditer(r"<details", c.source)]
    exercise_checks = checks(nb)
    return [f"the answer block number {n + 1} (cell {cell}) stands before the check of exercise "
            f"{n + 1} (cell {exercise_checks[n]}): move it after that check"
            for n, cell in enumerate(positions) if n < len(exercise_checks) and cell < exercise_checks[n]]


# ---------------------------------------------------------------- the tests

@pytest.fixture(scope="module")
def fast_runs():
    """One fast run per lesson, placeholders then solutions, shared by the tests below."""
    return {}


def run_once(fast_runs, path):
    if path not in fast_runs:
        fast_runs[path] = run_and_record(path)
    return fast_runs[path]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_no_answer_block_before_its_check(path):
    nb = nbformat.read(path, as_version=4)
    problems = details_before_their_checks(nb)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_no_exercise_is_answered_before_its_check(path, fast_runs):
    committed = nbformat.read(path, as_version=4)
    ran, records = run_once(fast_runs, path)
    assert len(records) == len(checks(committed)) and all(records.values()), \
        f"{path.name}: an exercise recorded nothing: {records}"
    problems = answered_early(committed, ran, records)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


LEAKY = {
    "markdown": ("The uniform model over 32 levels costs 5 bits/dim; a reported 79.2 nats is 0.1457 bits/dim.",
                 "answer = None", "answer = round(79.2 / (784 * 0.6931471805599453), 4)"),
    "output": ("print(f'{79.2 / (784 * 0.6931471805599453):.4f} bits/dim')",
               "answer = None", "answer = round(79.2 / (784 * 0.6931471805599453), 4)"),
    "plain value beside the question's number": ("Over 256 levels the uniform model costs 8 bits/dim.",
                                                 "answer = None", "answer = 8.0"),
    "function": ("Counting gives 13,440 for h = 32 and 53,504 for h = 64.",
                 "def block(h):\n    raise NotImplementedError('exercise: a formula in h')",
                 "def block(h):\n    return 13 * h * h + 4 * h"),
    "placeholder message": ("No numbers here.",
                            "answer = None   # hint: it is 0.1457",
                            "answer = round(79.2 / (784 * 0.6931471805599453), 4)"),
}


def write_lesson(folder, earlier, placeholder, solution, details_first=False):
    """A small lesson in folder: an earlier cell, one exercise with its solution module and check."""
    (folder / "solutions").mkdir(exist_ok=True)
    (folder / "solutions" / "__init__.py").write_text("")
    (folder / "solutions" / "lesson99.py").write_text(solution + "\n")
    name = "block" if "def block" in solution else "answer"
    question = nbformat.v4.new_markdown_cell(
        "## Exercises\n\n**1.** What is it, for h = 32 or for 79.2 nats per image over 256 levels?"
        + ("\n\n<details><summary>Answer</summary>It is given here.</details>" if details_first else ""))
    exercise = nbformat.v4.new_code_cell(
        f"{placeholder}\nif SOLUTIONS: from solutions.lesson99 import {name}   # the worked solution")
    exercise.metadata["tags"] = [run_lessons.EXERCISE]
    test = {"block": "block(32) == 13 * 32 * 32 + 4 * 32 and block(64) == 13 * 64 * 64 + 4 * 64",
            "answer": "(abs(answer - 79.2 / 784 / math.log(2)) < 1e-3 or answer == 2 ** 3)"}[name]
    check = nbformat.v4.new_code_cell(f"import math\nassert {name} is not None and {test}, 'not yet'")
    check.metadata["tags"] = [run_lessons.CHECK]
    after = nbformat.v4.new_markdown_cell("<details><summary>Answer</summary>After the check.</details>")
    first = (nbformat.v4.new_code_cell(earlier) if earlier.startswith("print")
             else nbformat.v4.new_markdown_cell(earlier))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("SOLUTIONS = False"), first, question, exercise, check, after]
    path = folder / "99_leaky.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_leaked_answer_is_caught_and_a_clean_lesson_passes(tmp_path):
    """The rules fail where they should: each kind of leak below is flagged, the same lesson without
    the leak is not (so the rules are not vacuous, nor always failing)."""
    for kind, (earlier, placeholder, solution) in LEAKY.items():
        folder = tmp_path / kind.replace(" ", "_").replace("'", "")
        folder.mkdir()
        path = write_lesson(folder, earlier, placeholder, solution)
        committed = nbformat.read(path, as_version=4)
        ran, records = run_and_record(path, timeout=60)
        assert answered_early(committed, ran, records), f"the {kind} leak was not caught"
        # The same lesson with the earlier cell saying nothing about the answer passes (the same
        # recorded answer, looked for in the clean notebook, its own record of what it printed).
        clean = write_lesson(folder, "print('something else: 1.234')" if earlier.startswith("print")
                             else "Nothing about it here: 12 and 0.25.", placeholder.split("   #")[0], solution)
        clean = nbformat.read(clean, as_version=4)
        if earlier.startswith("print"):
            clean.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="something else: 1.234\n")]
        assert not answered_early(clean, clean, records), f"the clean version of the {kind} lesson was flagged"


def test_an_answer_block_before_its_check_is_caught(tmp_path):
    path = write_lesson(tmp_path, "Nothing.", "answer = None", "answer = 8.0", details_first=True)
    assert details_before_their_checks(nbformat.read(path, as_version=4))
    path = write_lesson(tmp_path, "Nothing.", "answer = None", "answer = 8.0")
    assert not details_before_their_checks(nbformat.read(path, as_version=4))
