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
