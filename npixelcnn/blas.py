"""How many threads NumPy's matrix products use: OpenBLAS's own setting, reached through ctypes.

OpenBLAS splits a matrix product over its threads once m * n * k passes about
half a million. For the products of a training step that is a gain, but the
cached sampler runs thousands of products of one pixel per image, e.g.
(64, 320) @ (320, 64), where waking and joining a second thread costs more
than the second thread saves; and each replica of the data parallel training
step (:mod:`npixelcnn.data_parallel`) already has a core of its own. NumPy has
no setting for this, so we call OpenBLAS's ``openblas_set_num_threads`` on the
copy NumPy has loaded. ``python benchmarks/bench_sampling.py`` measures the
cached sampler, which runs on one BLAS thread.

Nothing changes at import: only :func:`limit_blas_threads` changes the count,
for the length of its ``with`` block.
"""

import contextlib
import ctypes
import functools
import glob
import os

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


def one_blas_thread():
    """A context in which matrix products run on one BLAS thread: for many small
    products, as the cached sampler makes (see the module docstring)."""
    return limit_blas_threads(1)
