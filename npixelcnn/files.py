"""Files a run writes: atomic writes, and one run per output folder.

Atomic writes. The content goes to a temporary file in the target's folder, is
flushed to disk, and is then renamed over the target. A rename within one
filesystem is atomic (os.replace, on POSIX and Windows): the target is either
the old file or the complete new one. If anything fails, Ctrl-C included, the
temporary file is removed and the old target is untouched. Only ``kill -9`` (or
a power cut) can leave a temporary file behind; its name carries the writer's
process id, and the next write of the same target removes it once that process
is gone.

One run per folder. A training run claims its output folder for as long as it
runs (:func:`claim_folder`), so two runs started with the same ``--out`` cannot
both write there.
"""

import errno
import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np

LOCK_NAME = ".npixelcnn.lock"


class FolderInUseError(RuntimeError):
    """Another process has claimed the output folder."""


def write_atomically(path, write):
    """Call ``write(f)`` on a binary file that becomes ``path`` once complete. Returns the Path."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    remove_stale_temporaries(path)
    tmp = temporary_path(path)
    # os.open with 0o666 lets the umask set the usual permissions (mkstemp gives 0o600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _short_write_explained(err, path) from None
    except BaseException:  # KeyboardInterrupt too: never leave the temp file behind
        tmp.unlink(missing_ok=True)
        raise
    return path


def _short_write_explained(err, path):
    """NumPy's ``tofile`` reports a short write as "50176 requested and 12160 written", with no
    errno: on a regular file that means the disk (or the user's quota) is full. Say so."""
    if err.errno is not None:
        return err
    free = shutil.disk_usage(path.parent).free
    return OSError(errno.ENOSPC, f"No space left on device: {err} ({free:,} bytes free)", str(path))


def temporary_path(path):
    """Where a write of ``path`` goes first: .NAME.PID-RANDOM.tmp in its folder. The writer's
    process id in the name lets :func:`remove_stale_temporaries` tell a leftover of kill -9."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def remove_stale_temporaries(path):
    """Remove the temporary files of earlier writes of ``path`` whose writer is gone (kill -9)."""
    path = Path(path)
    prefix = f".{path.name}."                  # names as temporary_path makes them: .NAME.PID-RANDOM.tmp
    for tmp in path.parent.iterdir():
        if tmp.name.startswith(prefix) and tmp.name.endswith(".tmp"):
            writer = tmp.name[len(prefix):].split("-")[0]
            if writer.isdigit() and not _process_alive(int(writer)):
                tmp.unlink(missing_ok=True)


def _process_alive(pid):
    if pid == os.getpid():
        return True                    # a write of ours in another thread
    if os.name != "posix":
        return True                    # no cheap check: keep the file
    try:
        os.kill(pid, 0)                # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True                    # it exists, and belongs to someone else
    return True


def write_npy_atomically(path, array):
    """Write ``array`` as a .npy file to ``path`` atomically. Returns the Path."""
    return write_atomically(path, lambda f: np.save(f, array, allow_pickle=False))


def write_json_atomically(path, obj):
    """Write ``obj`` as indented JSON to ``path`` atomically. Returns the Path."""
    text = json.dumps(obj, indent=2)
    return write_atomically(path, lambda f: f.write(text.encode() + b"\n"))


def make_folder(folder):
    """Create ``folder`` (and its parents) if needed; NotADirectoryError if it is a file. Returns the Path."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_writable_folder(folder):
    """Create ``folder`` if needed and prove that a file can be written in it.

    Raises NotADirectoryError if it is a file, and the OS's error (PermissionError,
    a read-only filesystem, ...) if it cannot be created or written, so a command
    can fail before its work instead of after it.
    """
    folder = make_folder(folder)
    probe = folder / f".npixelcnn-write-test.{os.getpid()}-{secrets.token_hex(4)}"
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    probe.unlink()
    return folder


@contextmanager
def claim_folder(folder):
    """Hold ``folder`` for this process until the block ends: one run writes there at a time.

    Creates the folder if needed, then takes an exclusive lock on the file
    ``folder/.npixelcnn.lock`` (``flock`` on POSIX, ``msvcrt.locking`` on
    Windows). The OS drops the lock when the process ends, even by ``kill -9``,
    so a crash never leaves a folder claimed. When the block ends the lock file
    is removed, and so is every folder the claim created that is still empty:
    a start that was refused leaves nothing behind.

    Raises :class:`FolderInUseError` if another process (or another claim in
    this one) holds it; NotADirectoryError or the OS's error if the folder is a
    file, cannot be created, or cannot be written.
    """
    created = _missing_folders(Path(folder))
    folder = make_folder(folder)
    lock = folder / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except BaseException:
        _remove_if_empty(created)
        raise
    held = False
    try:
        held = _lock(fd) and _still_named(fd, lock)
        if not held:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            raise FolderInUseError(
                f"{folder} is in use by another run (pid {owner}); wait for it to end, or choose another --out"
            )
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield folder
    finally:
        if held and os.name == "posix":     # (Windows cannot remove an open file)
            lock.unlink(missing_ok=True)    # while still holding it: see _still_named
        os.close(fd)                   # closing the file releases the lock
        _remove_if_empty(created)      # a refused start leaves no folder behind


def _still_named(fd, lock):
    """True if the locked file ``fd`` is still the one called ``lock``. A run removes its lock
    file when it ends; a process that opened the file just before could then lock the removed
    file, while a third creates a new one: both would think they hold the folder. So a lock
    only counts if the name still leads to the locked file."""
    try:
        named = os.stat(lock)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)


def _missing_folders(folder):
    """The folders that creating ``folder`` would make, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_if_empty(folders):
    """Remove the folders (deepest first) that are empty: those a refused start created."""
    for folder in folders:
        try:
            folder.rmdir()             # only succeeds for an empty folder
        except OSError:
            return


def _lock(fd):
    """Try to take an exclusive lock on the open file ``fd`` without waiting; True if taken."""
    try:
        import fcntl
    except ImportError:                # Windows
        import msvcrt
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        # flock, not lockf: flock locks belong to the open file, so a second
        # claim in the same process is refused too.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def describe_os_error(err):
    """'Permission denied: runs/x/.npixelcnn.lock' rather than "[Errno 13] Permission denied: '...'"."""
    if err.strerror and err.filename:
        return f"{err.filename}: {err.strerror}"
    return str(err)
