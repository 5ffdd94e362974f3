"""Spread memory-bound NumPy work over the CPU cores, and rein in BLAS's threads.

Matrix products already run on every core (BLAS is multithreaded), but NumPy's
element-wise operations and copies run on one. In a training step the big ones
(im2col, col2im, ReLU, the residual additions) only stream memory, and one core
cannot use all of the memory bandwidth: measured on a 2-core machine, splitting
such a copy in two halves on two threads made it 2.4x faster.

NumPy releases the GIL inside its loops, so plain Python threads run the halves
truly in parallel. :func:`for_each_chunk` cuts the batch axis into one chunk per
core and applies the same vectorized function to every chunk; it is not a loop
over images, each chunk is half (or a third...) of the batch.
"""

import contextlib
import ctypes
import functools
import glob
import os
from concurrent.futures import ThreadPoolExecutor

WORKERS = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
# Below this many bytes per array, starting threads costs more than it saves.
MIN_PARALLEL_BYTES = 1 << 20

_pool = None


def _get_pool():
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="npixelcnn")
    return _pool


def for_each_chunk(fn, *arrays):
    """Call ``fn(*chunks)`` on matching slices of axis 0 of ``arrays``, in parallel.

    Args:
        fn: applies one vectorized operation to the chunks it is given (views
            into the arrays, so it may write its results into them).
        arrays: arrays sharing the length of axis 0.
    """
    n = arrays[0].shape[0]
    chunks = min(WORKERS, n)
    if chunks <= 1 or arrays[0].nbytes < MIN_PARALLEL_BYTES:
        fn(*arrays)
        return
    bounds = [n * i // chunks for i in range(chunks + 1)]
    slices = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    pool = _get_pool()
    futures = [pool.submit(fn, *(a[s] for a in arrays)) for s in slices[1:]]
    fn(*(a[slices[0]] for a in arrays))        # this thread does the first chunk
    for future in futures:
        future.result()                         # re-raises a worker's exception


# --------------------------------------------------------------------------- BLAS threads
#
# OpenBLAS splits a matrix product over its threads once m * n * k passes about
# half a million. For the products of a training step that is a gain, but the
# cached sampler runs thousands of products of one pixel per image, e.g.
# (64, 320) @ (320, 64), where waking and joining the second thread costs more
# than it saves: measured on 2 cores, 43 us with two threads, 23 us with one.
# NumPy has no setting for this, so we call OpenBLAS's own
# ``openblas_set_num_threads`` through ctypes, on the copy NumPy has loaded.

_OPENBLAS_PREFIXES = ("scipy_openblas", "openblas")   # NumPy's wheels rename the symbols
_OPENBLAS_SUFFIXES = ("64_", "_64_", "")             # 64-bit integer builds add a suffix


def _loaded_openblas_paths():
    """Paths of the OpenBLAS libraries loaded in this process (Linux), or
    shipped in NumPy's wheel (other systems: numpy.libs or numpy/.dylibs)."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    if not paths:
        import numpy
        root = os.path.dirname(numpy.__file__)
        for folder in (os.path.join(root, os.pardir, "numpy.libs"), os.path.join(root, ".dylibs")):
            paths += sorted(glob.glob(os.path.join(folder, "*openblas*")))
    return paths


@functools.lru_cache(maxsize=None)
def _openblas_functions():
    """(get_num_threads, set_num_threads) of NumPy's OpenBLAS, or None if
    NumPy uses another BLAS (MKL, Accelerate...) or it cannot be found."""
    import numpy  # noqa: F401  (loads OpenBLAS, so that /proc/self/maps lists it)
    for path in _loaded_openblas_paths():
        try:
            # RTLD_NOLOAD: only a library that is already loaded, never a second copy.
            lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        for prefix in _OPENBLAS_PREFIXES:
            for suffix in _OPENBLAS_SUFFIXES:
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    get.restype, set_.restype = ctypes.c_int, None
                    set_.argtypes = [ctypes.c_int]
                    return get, set_
    return None


def blas_threads():
    """The number of threads NumPy's OpenBLAS uses now, or None if it is not OpenBLAS."""
    functions = _openblas_functions()
    return None if functions is None else functions[0]()


@contextlib.contextmanager
def limit_blas_threads(n):
    """Within the ``with`` block, NumPy's matrix products use at most ``n`` threads.

    Yields True if the limit took effect, False if NumPy's BLAS is not an
    OpenBLAS we can reach (then nothing changes). The previous count is
    restored on exit, also after an exception.
    """
    functions = _openblas_functions()
    if functions is None:
        yield False
        return
    get, set_ = functions
    before = get()
    set_(min(n, before))
    try:
        yield True
    finally:
        set_(before)
