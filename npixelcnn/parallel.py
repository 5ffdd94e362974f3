"""Spread memory-bound NumPy work over the CPU cores.

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
