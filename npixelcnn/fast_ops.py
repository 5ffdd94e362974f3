"""The fast twins of the operations in :mod:`npixelcnn.ops` and :mod:`npixelcnn.im2col`.

Nothing here changes a result: every function gives the numbers of its plain
twin (exactly, or to float rounding where a sum is taken in another order),
tested in tests/test_fast.py and tests/test_im2col.py. A reader learning
PixelCNN can skip this module: the layers call :mod:`npixelcnn.ops`, which
runs these only after ``ops.use_fast(True)`` (the CLI does that).

What the twins do, and why:

* Threads over the batch. Matrix products already run on every core (BLAS is
  multithreaded), but NumPy's element-wise operations and copies run on one.
  The big ones of a training step (im2col, col2im, ReLU, the bias and residual
  additions) only stream memory, and one core cannot use all of the memory
  bandwidth. NumPy releases the GIL inside its loops, so plain Python threads
  run the parts truly in parallel. :func:`for_each_chunk` cuts the batch axis
  into one chunk per core; it is not a loop over images, each chunk is half
  (or a third...) of the batch.
* Reused buffers. Large arrays are freshly mapped (and zeroed) by the
  allocator each time they are created; im2col's matrix and its gradient are
  that large, so they are refilled instead of allocated.
* Sums as products. ``ones @ a`` runs on every core (BLAS), ``a.sum(axis=0)``
  on one, and NumPy sums along a short last axis slowly.

``python benchmarks/bench_train_step.py`` measures a training step with them,
``--plain`` without them, and ``--breakdown`` times the layers one by one.
"""

import functools
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

WORKERS = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
# Below this many bytes per array, starting threads costs more than it saves.
MIN_PARALLEL_BYTES = 1 << 20

_pool = None
_replica_thread = threading.local()     # .active is True while a thread runs one replica's share


def get_pool():
    """The worker threads (one per core), started on first use."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="npixelcnn")
    return _pool


def in_replica():
    """True inside a replica's share of a data parallel step (:mod:`npixelcnn.data_parallel`):
    each core already has its part of the batch there, so the element-wise operations must not
    split it again."""
    return getattr(_replica_thread, "active", False)


def set_in_replica(active):
    """Mark this thread as running (True) or no longer running (False) a replica's share."""
    _replica_thread.active = active


def for_each_chunk(fn, *arrays):
    """Call ``fn(*chunks)`` on matching slices of axis 0 of ``arrays``, in parallel.

    Args:
        fn: applies one vectorized operation to the chunks it is given (views
            into the arrays, so it may write its results into them).
        arrays: arrays sharing the length of axis 0.
    """
    n = arrays[0].shape[0]
    chunks = min(WORKERS, n)
    if chunks <= 1 or arrays[0].nbytes < MIN_PARALLEL_BYTES or in_replica():
        fn(*arrays)
        return
    bounds = [n * i // chunks for i in range(chunks + 1)]
    slices = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    pool = get_pool()
    futures = [pool.submit(fn, *(a[s] for a in arrays)) for s in slices[1:]]
    fn(*(a[slices[0]] for a in arrays))        # this thread does the first chunk
    for future in futures:
        future.result()                         # re-raises a worker's exception


# --------------------------------------------------------------------------- buffers

_scratch = threading.local()            # one set of buffers per thread: no sharing across threads
_kept_buffers = weakref.WeakKeyDictionary()   # owner (a layer) -> its im2col buffer


def scratch_buffer(shape, dtype):
    """A reusable array for a result that is consumed at once (im2col in
    inference, the gradient of im2col's matrix); shared by all layers."""
    buffers = _scratch.__dict__.setdefault("buffers", {})
    key = (tuple(shape), np.dtype(dtype))
    if key not in buffers:
        buffers[key] = np.empty(shape, dtype=dtype)
    return buffers[key]


def owned_buffer(owner, shape, dtype):
    """A reusable array that belongs to ``owner`` (a layer keeps its im2col
    matrix from forward to backward), refilled on every call."""
    buffer = _kept_buffers.get(owner)
    if buffer is None or buffer.shape != tuple(shape) or buffer.dtype != dtype:
        buffer = _kept_buffers[owner] = np.empty(shape, dtype=dtype)
    return buffer


# --------------------------------------------------------------------------- the fast twins of ops.py


def relu(x):
    """np.maximum(x, 0), on every core."""
    y = np.empty_like(x)
    for_each_chunk(lambda x, y: np.maximum(x, 0, out=y), x, y)
    return y


def relu_backward(dy, y):
    """dy * (y > 0), on every core."""
    dx = np.empty_like(dy)
    for_each_chunk(lambda dy, y, dx: np.multiply(dy, y > 0, out=dx), dy, y, dx)
    return dx


def add(a, b):
    """a + b as a new array, on every core."""
    out = np.empty_like(b)
    for_each_chunk(lambda a, b, out: np.add(a, b, out=out), a, b, out)
    return out


def add_bias(y, b):
    """y + b for y (M, C) and b (C,): added into y, in place, on every core; returns y."""
    for_each_chunk(lambda y: np.add(y, b, out=y), y)
    return y


def sum_rows(a):
    """a (M, C) -> (C,), as ones(M) @ a: a matrix-vector product runs on every core."""
    return np.ones(a.shape[0], dtype=a.dtype) @ a


def exp_and_row_sums(z, z_max):
    """np.exp(z - z_max) on every core, and its row sums as a product with ones.

    z (M, L), z_max (M, 1) -> exp (M, L), sums (M,). NumPy sums along a short
    last axis one number after another; a product with ones runs on BLAS
    (``python benchmarks/bench_evaluate.py`` at ``--levels 256`` shows the gain).
    """
    exp = np.empty_like(z)
    for_each_chunk(lambda z, z_max, exp: np.exp(np.subtract(z, z_max, out=exp), out=exp), z, z_max, exp)
    return exp, exp @ np.ones(z.shape[1], exp.dtype)


# Running sums come in blocks of this many columns (see cumsum_rows).
CUMSUM_BLOCK = 16


@functools.lru_cache(maxsize=None)
def _upper_ones(size, dtype):
    """U (size, size): ones on and above the diagonal, so (v @ U)[k] = v[0] + ... + v[k]."""
    upper = np.triu(np.ones((size, size), dtype))
    upper.flags.writeable = False
    return upper


def cumsum_rows(p):
    """np.cumsum(p, axis=1) for p (M, L), as two products with a triangular matrix of ones.

    np.cumsum adds one number after another, a large part of a cached sampling
    step at 256 levels (``python benchmarks/bench_sampling.py --levels 256``).
    Cut each row into blocks of 16: the running sums inside every block are one
    product (M * L/16, 16) @ U, and the running block totals a second,
    (M, L/16) @ U, added to the blocks after the first. The
    sums are taken in another order, so they agree with np.cumsum to float
    rounding, not to the last bit. Rows that do not split into blocks of 16
    (2 or 4 levels, already fast) go to np.cumsum.
    """
    rows, length = p.shape
    if length % CUMSUM_BLOCK or length < 2 * CUMSUM_BLOCK:
        return np.cumsum(p, axis=1)
    upper = _upper_ones(CUMSUM_BLOCK, p.dtype)
    blocks = (p.reshape(-1, CUMSUM_BLOCK) @ upper).reshape(rows, -1, CUMSUM_BLOCK)
    totals_so_far = blocks[:, :, -1] @ _upper_ones(blocks.shape[1], p.dtype)     # (M, L/16)
    blocks[:, 1:] += totals_so_far[:, :-1, None]
    return blocks.reshape(rows, length)


def matmul_into_scratch(a, b):
    """a @ b, written into a reused scratch buffer: the result must be consumed at once."""
    out = scratch_buffer((a.shape[0], b.shape[1]), np.result_type(a, b))
    return np.matmul(a, b, out=out)


def shifted_slices(offset, size):
    """Slices that align ``out[dst]`` with ``in[src]`` for ``out[p] = in[p + offset]``.

    Returns:
        (dst, src): slices of length ``size - abs(offset)`` (empty if the shift
            moves everything out of range).
    """
    dst = slice(max(0, -offset), max(0, size - max(0, offset)))
    src = slice(max(0, offset), max(0, size + min(0, offset)))
    return dst, src


def tap_offsets(taps, kernel_size):
    """Positions (row, col) in a window of width ``kernel_size`` -> offsets (di, dj) from its
    centre (for a kernel dilated by d, the positions are already multiplied by d)."""
    centre = kernel_size // 2
    return [(int(i) - centre, int(j) - centre) for i, j in taps]


def im2col(x, taps, kernel_size, out=None, owner=None):
    """The fast twin of :func:`npixelcnn.im2col.im2col`: no padded copy, one
    slice copy per tap, threads over the batch, a reused output buffer.

    A tap at offset (di, dj) from the centre reads the input shifted by that
    offset; the part of the shift that falls into the zero padding is written
    as zeros.

    Args:
        x, taps, kernel_size: as for the plain im2col.
        out: a (N*H*W, T*C) C-contiguous array of x's dtype to fill, or None.
        owner: with ``out=None``, an object (the layer) whose own buffer is
            refilled, for a matrix kept until backward; None: the shared scratch
            buffer, for a matrix used at once.

    Returns:
        cols: (N*H*W, T*C); column block t holds tap t.
    """
    n, h, w, c = x.shape
    t = len(taps)
    shape = (n * h * w, t * c)
    if out is None:
        out = owned_buffer(owner, shape, x.dtype) if owner is not None else scratch_buffer(shape, x.dtype)
    elif out.shape != shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(f"im2col: out must be a C-contiguous {x.dtype} array of shape {shape}, "
                         f"got {out.dtype} {out.shape}")
    offsets = tap_offsets(taps, kernel_size)

    def gather(x, cols):                        # one chunk of the batch
        for tap, (di, dj) in enumerate(offsets):
            rows_dst, rows_src = shifted_slices(di, h)
            cols_dst, cols_src = shifted_slices(dj, w)
            block = cols[:, :, :, tap, :]
            block[:, rows_dst, cols_dst] = x[:, rows_src, cols_src]
            # Pixels whose tap lands in the zero padding read zero.
            block[:, : rows_dst.start] = 0
            block[:, rows_dst.stop:] = 0
            block[:, :, : cols_dst.start] = 0
            block[:, :, cols_dst.stop:] = 0

    for_each_chunk(gather, x, out.reshape(n, h, w, t, c))
    return out


def col2im(cols, x_shape, taps, kernel_size):
    """The fast twin of :func:`npixelcnn.im2col.col2im`: no padded copy, threads over the batch."""
    n, h, w, c = x_shape
    t = len(taps)
    offsets = tap_offsets(taps, kernel_size)
    # The centre tap (offset 0, kept by mask B) covers every pixel: copying it
    # first saves clearing dx and adding onto zeros.
    centre = offsets.index((0, 0)) if (0, 0) in offsets else None

    def scatter_add(cols, dx):                  # one chunk of the batch
        if centre is None:
            dx[...] = 0
        else:
            dx[...] = cols[:, :, :, centre, :]
        for tap, (di, dj) in enumerate(offsets):
            if tap == centre:
                continue
            rows_dst, rows_src = shifted_slices(di, h)
            cols_dst, cols_src = shifted_slices(dj, w)
            # im2col did block[dst] = x[src], so the gradient flows from dst to src.
            dx[:, rows_src, cols_src] += cols[:, rows_dst, cols_dst, tap, :]

    dx = np.empty(x_shape, dtype=cols.dtype)
    for_each_chunk(scatter_add, cols.reshape(n, h, w, t, c), dx)
    return dx
