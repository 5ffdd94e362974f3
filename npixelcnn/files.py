"""Atomic file writes: a reader (or a crash) never sees a half-written file.

The content goes to a temporary file in the target's folder, is flushed to disk,
and is then renamed over the target. A rename within one filesystem is atomic
(os.replace, on POSIX and Windows): the target is either the old file or the
complete new one. If anything fails, Ctrl-C included, the temporary file is
removed and the old target is untouched.
"""

import json
import os
import secrets
from pathlib import Path

import numpy as np


def write_atomically(path, write):
    """Call ``write(f)`` on a binary file that becomes ``path`` once complete. Returns the Path."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 lets the umask set the usual permissions (mkstemp gives 0o600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave the temp file behind
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_npy_atomically(path, array):
    """Write ``array`` as a .npy file to ``path`` atomically. Returns the Path."""
    return write_atomically(path, lambda f: np.save(f, array, allow_pickle=False))


def write_json_atomically(path, obj):
    """Write ``obj`` as indented JSON to ``path`` atomically. Returns the Path."""
    text = json.dumps(obj, indent=2)
    return write_atomically(path, lambda f: f.write(text.encode() + b"\n"))
