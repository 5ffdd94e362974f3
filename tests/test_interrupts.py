"""Ctrl-C in any command ends with one line on stderr and exit status 130, never a traceback.

Most tests start the command line as a user does, in a child process, wait
until it is in the middle of its work, and press Ctrl-C: a real SIGINT. The
ones that need Ctrl-C at one exact point (between two files, in the middle
of a save) send the real signal from inside, at that point.
"""

import os
import re
import runpy
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import npixelcnn as npc
from npixelcnn import cli, commands, train_command
from npixelcnn.train import Trainer

pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends SIGINT to a child process")

REPO = Path(npc.__file__).resolve().parent.parent       # the package the tests import, for the child too


@pytest.fixture(autouse=True)
def ctrl_c_as_in_a_terminal():
    """SIGINT raises KeyboardInterrupt here, and reaches the commands started here, even when the
    tests themselves run with it ignored (a shell starts 'pytest &' so, and a child inherits it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def small(tmp_path):
    """A checkpoint that samples fast: the commands are still running when Ctrl-C comes."""
    return npc.save_checkpoint(npc.PixelCNN(levels=4, hidden=4, blocks=1, head=8, seed=0),
                               tmp_path / "model.npz")


def start(*args, cwd, data):
    env = {**os.environ, "NPIXELCNN_DATA": str(data), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "npixelcnn", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_until(child, stream, pattern, timeout=30):
    """Read the child's ``stream`` until ``pattern`` (a regex on bytes) appears; returns what was read."""
    seen, deadline = b"", time.monotonic() + timeout
    while not re.search(pattern, seen):
        ready, _, _ = select.select([stream], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(stream.fileno(), 1 << 16) if ready else b""
        if not chunk:
            child.kill()
            pytest.fail(f"{pattern!r} never came; the command wrote {seen[-500:]!r}, "
                        f"then {child.communicate()[1][-2000:]!r}")
        seen += chunk
    return seen


def wait_for(child, condition, timeout=30):
    """Poll until ``condition()`` holds while the child runs."""
    deadline = time.monotonic() + timeout
    while not condition():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"the command never got there; it wrote {child.communicate()[1][-2000:]!r}")
        time.sleep(0.005)


def press_ctrl_c(child, stderr_so_far=b""):
    """SIGINT, as Ctrl-C sends it; returns (status, stdout, the whole stderr) once the child ends."""
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    return child.returncode, out.decode(), (stderr_so_far + err).decode()


# A bar that has counted some work: the command is in the middle of it.
WORKING = rb" [1-9]\d*/\d+ \["


def the_error_line(stderr):
    """The one error, last, on one line; no traceback. It comes after the progress output,
    usually on a line of its own: only a Ctrl-C inside tqdm's own drawing leaves the bar's
    line unfinished, and on a terminal the CLI clears that line first."""
    assert "Traceback" not in stderr, stderr
    assert stderr.count("error: ") == 1, repr(stderr)
    error = stderr[stderr.index("error: "):]
    assert error.endswith("\n") and error.count("\n") == 1, repr(stderr)
    return error[:-1]


def test_ctrl_c_while_sampling_is_one_line_and_leaves_the_earlier_files_as_they_were(small, tmp_path, mnist_dir):
    (tmp_path / "samples.png").write_bytes(b"an earlier run's grid")
    child = start("sample", "--checkpoint", small, "--n", 2000, "--method", "naive", "--out", "samples.png",
                  cwd=tmp_path, data=mnist_dir)
    seen = read_until(child, child.stderr, WORKING)
    status, _, stderr = press_ctrl_c(child, seen)
    assert status == 130
    assert the_error_line(stderr) == "error: interrupted by Ctrl-C; nothing was written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "samples.png"]   # no .npy, no temp file
    assert (tmp_path / "samples.png").read_bytes() == b"an earlier run's grid"


def test_ctrl_c_while_completing_is_one_line_and_writes_nothing(small, tmp_path, mnist_dir):
    child = start("complete", "--checkpoint", small, "--n", 1000, "--samples", 4, "--method", "naive",
                  cwd=tmp_path, data=mnist_dir)
    seen = read_until(child, child.stderr, WORKING)
    status, _, stderr = press_ctrl_c(child, seen)
    assert status == 130
    assert the_error_line(stderr) == "error: interrupted by Ctrl-C; nothing was written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_ctrl_c_while_evaluating_is_one_line(tmp_path, mnist_dir):
    # A bigger model, one image per pass: a few seconds of evaluation to interrupt.
    model = npc.save_checkpoint(npc.PixelCNN(levels=4, hidden=32, blocks=4, head=32, seed=0), tmp_path / "model.npz")
    child = start("eval", "--checkpoint", model, "--batch-size", 1, cwd=tmp_path, data=mnist_dir)
    seen = read_until(child, child.stderr, WORKING)
    status, stdout, stderr = press_ctrl_c(child, seen)
    assert status == 130
    assert the_error_line(stderr) == "error: interrupted by Ctrl-C; nothing was written"
    assert "test NLL" not in stdout


def test_ctrl_c_before_the_training_loop_is_one_line(tmp_path, mnist_dir):
    # The run claims its folder, loads the data, then times a few steps to size the budget:
    # Ctrl-C there comes before the loop that turns it into "finish the step and save".
    out = tmp_path / "run"
    child = start("train", "--minutes", 1, "--batch-size", 64, "--evals", 1, "--samples", 0, "--no-progress",
                  "--out", out, cwd=tmp_path, data=mnist_dir)
    wait_for(child, out.is_dir)
    status, stdout, stderr = press_ctrl_c(child)
    assert status == 130
    assert stderr == "error: interrupted by Ctrl-C before training started; no checkpoint was written\n"
    assert "time budget" not in stdout                   # stopped before the budget was sized
    assert not (out / "checkpoint.npz").exists()


def test_a_second_ctrl_c_in_training_aborts_without_saving_and_names_the_checkpoint_kept(tmp_path, mnist_dir):
    out = tmp_path / "run"
    child = start("train", "--steps", 100_000, "--batch-size", 8, "--evals", 1, "--samples", 0, "--out", out,
                  cwd=tmp_path, data=mnist_dir)
    # The bar counting steps says the loop runs (no --no-progress for that); the first
    # Ctrl-C asks it to finish the step and save, which it says on stdout.
    seen = read_until(child, child.stderr, WORKING)
    child.send_signal(signal.SIGINT)
    read_until(child, child.stdout, rb"press Ctrl-C again")
    status, _, stderr = press_ctrl_c(child, seen)
    assert status == 130
    line = the_error_line(stderr)
    assert "without saving" in line and str(Path("run") / "checkpoint.npz") in line
    npc.load_checkpoint(out / "checkpoint.npz")                     # the one kept is whole
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.usefixtures("few_mnist_images")
def test_a_second_ctrl_c_while_the_checkpoint_is_written_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    original_step, original_replace, pressed = Trainer.train_step, os.replace, []

    def step(self):
        loss = original_step(self)
        if self.state.step == 2:
            pressed.append(1)
            os.kill(os.getpid(), signal.SIGINT)          # the first Ctrl-C: finish the step and save
        return loss

    def replace(source, target):
        if pressed and Path(target).name == "checkpoint.npz":
            os.kill(os.getpid(), signal.SIGINT)          # the second, with the new checkpoint written but not in place
        return original_replace(source, target)

    monkeypatch.setattr(Trainer, "train_step", step)
    monkeypatch.setattr(os, "replace", replace)
    try:
        status = cli.main(["train", "--steps", "6", "--batch-size", "8", "--evals", "1", "--samples", "0",
                           "--no-progress", "--out", str(out)])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped cli.main")
    assert status == 130
    line = the_error_line(capsys.readouterr().err)
    assert "without saving" in line and str(out / "checkpoint.npz") in line
    assert npc.load_checkpoint(out / "checkpoint.npz").meta["state"]["step"] == 0   # the one saved at the start
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_ctrl_c_between_the_two_files_says_which_was_written(small, tmp_path, monkeypatch, capsys):
    def grid_then_ctrl_c(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)              # Ctrl-C after the .npy, before the PNG
        return npc.save_image_grid(*args, **kwargs)

    monkeypatch.setattr(commands, "save_image_grid", grid_then_ctrl_c)
    out = tmp_path / "grid.png"
    try:
        status = cli.main(["sample", "--checkpoint", str(small), "--n", "2", "--out", str(out), "--no-progress"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped cli.main")
    assert status == 130
    assert the_error_line(capsys.readouterr().err) == (
        f"error: interrupted by Ctrl-C after writing {out.with_suffix('.npy')}; {out} was not written")
    assert out.with_suffix(".npy").is_file() and not out.exists()


def test_where_python_cannot_restart_itself_the_command_runs_in_place(small, tmp_path, monkeypatch, capsys):
    # python -m npixelcnn restarts the interpreter to set OPENBLAS_THREAD_TIMEOUT; some
    # sandboxes refuse exec. The command must still run, and say what it could not do.
    def refused(path, args):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "execv", refused)
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    out = tmp_path / "in_place.png"
    monkeypatch.setattr(sys, "argv", ["npixelcnn", "sample", "--checkpoint", str(small), "--n", "1",
                                      "--out", str(out), "--no-progress"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("npixelcnn", run_name="__main__")
    assert exit_.value.code == 0 and out.is_file()
    assert capsys.readouterr().err.startswith("note: could not restart Python with OPENBLAS_THREAD_TIMEOUT=4 "
                                              "(Permission denied); running without it")
    assert "OPENBLAS_THREAD_TIMEOUT" not in os.environ           # not claimed where it is not in effect


def test_after_ctrl_c_the_command_ends_even_if_a_thread_would_keep_it_alive(tmp_path):
    # A Ctrl-C while concurrent.futures starts a worker thread leaves a thread that nobody will
    # tell to stop, and Python waits for every such thread before it exits. Here, one that never ends.
    code = """if True:
        import runpy, sys, threading
        from npixelcnn import cli

        def run_eval(args):
            threading.Thread(target=threading.Event().wait).start()
            raise KeyboardInterrupt

        cli.run_eval = run_eval
        sys.argv = ["npixelcnn", "eval", "--checkpoint", "model.npz"]
        runpy.run_module("npixelcnn", run_name="__main__")
    """
    env = {**os.environ, "OPENBLAS_THREAD_TIMEOUT": "4",                      # no restart: runs as it is
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    try:
        ended = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("after Ctrl-C the command waited for its threads, for ever")
    assert ended.returncode == 130 and ended.stderr == "error: interrupted by Ctrl-C; nothing was written\n"


@pytest.mark.usefixtures("few_mnist_images")
def test_ctrl_c_while_the_finished_run_samples_its_preview_is_not_called_a_second_one(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def sample(*args, **kwargs):                 # the run has ended and saved; then the user presses Ctrl-C
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)

    monkeypatch.setattr(train_command, "sample", sample)
    status = cli.main(["train", "--steps", "2", "--batch-size", "8", "--evals", "1", "--samples", "2",
                       "--no-progress", "--out", str(out)])
    assert status == 130
    line = the_error_line(capsys.readouterr().err)
    assert line == f"error: interrupted by Ctrl-C; the last checkpoint written is kept: {out / 'checkpoint.npz'}"
    assert npc.load_checkpoint(out / "checkpoint.npz").meta["state"]["step"] == 2


@pytest.mark.usefixtures("few_mnist_images")
def test_a_first_ctrl_c_during_the_last_save_lets_it_finish_and_stops_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    original_replace = os.replace

    def replace(source, target):
        if Path(target).name == "checkpoint.npz" and replace.saves == 1:
            os.kill(os.getpid(), signal.SIGINT)          # during the save at the last step (the first is at step 0)
        replace.saves += Path(target).name == "checkpoint.npz"
        return original_replace(source, target)

    replace.saves = 0
    monkeypatch.setattr(os, "replace", replace)
    status = cli.main(["train", "--steps", "2", "--batch-size", "8", "--evals", "1", "--samples", "0",
                       "--no-progress", "--out", str(out)])
    assert status == 0 and "stopped by" not in capsys.readouterr().out      # nothing was left to stop
    assert npc.load_checkpoint(out / "checkpoint.npz").meta["state"]["step"] == 2
