"""The package is installed, not just importable from the repository root."""

import subprocess
import sys


def test_import_works_from_any_folder(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import npixelcnn, sys; print(npixelcnn.__version__)"],
        cwd=tmp_path, capture_output=True, text=True, env={"PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0.1.0"


def test_importing_the_package_leaves_the_environment_unchanged(tmp_path):
    code = ("import json, os\nbefore = dict(os.environ)\nimport npixelcnn\n"
            "print(json.dumps({k: v for k, v in os.environ.items() if before.get(k) != v}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{}"


def test_the_command_line_sets_the_blas_spin_itself(tmp_path):
    """``python -m npixelcnn`` starts itself again with OPENBLAS_THREAD_TIMEOUT set (see __main__.py).

    Run as __main__ with the CLI's main() replaced by a probe that prints what it sees."""
    probe = ("import os, runpy, sys\n"
             "import npixelcnn.cli\n"
             "npixelcnn.cli.main = lambda: print(os.environ.get('OPENBLAS_THREAD_TIMEOUT')) or 0\n"
             "runpy.run_module('npixelcnn', run_name='__main__')")
    shown = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                           env={"PATH": ""})
    assert shown.returncode == 0 and shown.stdout.strip() == "4", shown.stderr
    real = subprocess.run([sys.executable, "-m", "npixelcnn", "eval", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, env={"PATH": ""})
    assert real.returncode == 0 and "--checkpoint" in real.stdout, real.stderr


def test_importing_the_package_changes_nothing_in_the_process(tmp_path):
    """No thread started, no signal handler, no BLAS setting, no speed switch turned on: a
    learner's process after ``import npixelcnn`` is the process before it (numpy aside)."""
    code = ("import json, signal, threading, numpy\n"
            "before = (threading.active_count(), signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))\n"
            "import npixelcnn\n"
            "from npixelcnn import blas, ops\n"
            "after = (threading.active_count(), signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))\n"
            "print(json.dumps({'same': before == after, 'fast': ops.using_fast(), 'pool': npixelcnn.fast_ops._pool is None}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '{"same": true, "fast": false, "pool": true}'
