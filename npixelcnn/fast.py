"""The fast path: the speed work of npixelcnn, in one place.

Nothing here changes a result; every function is the fast twin of a plain
operation in :mod:`npixelcnn.ops` (or :mod:`npixelcnn.im2col`), tested equal to
it (tests/test_fast.py). A reader learning PixelCNN can skip this module.

What it does, and why:

* Threads over the batch. Matrix products already run on every core (BLAS is
  multithreaded), but NumPy's element-wise operations and copies run on one.
  In a training step the big ones (im2col, col2im, ReLU, the bias and residual
  additions) only stream memory, and one core cannot use all of the memory
  bandwidth: measured on a 2-core machine, splitting such a copy in two halves
  on two threads made it 2.4x faster. NumPy releases the GIL inside its loops,
  so plain Python threads run the halves truly in parallel.
  :func:`for_each_chunk` cuts the batch axis into one chunk per core; it is not
  a loop over images, each chunk is half (or a third...) of the batch.
* Reused buffers. Arrays over 32 MB are freshly mapped (and zeroed) by the
  allocator each time they are created; im2col's matrix and its gradient are
  that large, so they are refilled instead of allocated.
* Sums as products. ``ones @ a`` runs on every core (BLAS), ``a.sum(axis=0)`` on one.
* BLAS threads. The cached sampler's small products run on one BLAS thread
  (:func:`limit_blas_threads`).
* Data parallel training (:class:`DataParallel`). At a training batch of 16
  the threads above still leave one core idle much of the step: a matrix
  product shares its two threads well, but the gates, the shifts and the many
  small copies do not. Giving each core half of the batch, with a copy of the
  model that shares its weights, keeps both busy from start to end.
* OpenBLAS's spin: see ``npixelcnn/__main__.py`` and the README ("Where the time goes").
"""

import contextlib
import copy
import ctypes
import functools
import glob
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

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
    if chunks <= 1 or arrays[0].nbytes < MIN_PARALLEL_BYTES or _in_replica():
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
    last axis slowly: for the logits of 50 images at 256 levels, (39200, 256)
    float32, the sum took 32 ms here and the exp 45 ms; the product takes a few.
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

    np.cumsum adds one number after another: for a draw's (64, 256) float32
    probabilities it took 56 us here, a fifth of a cached sampling step at 256
    levels. Cut each row into blocks of 16: the running sums inside every
    block are one product (M * L/16, 16) @ U, and the running block totals a
    second, (M, L/16) @ U, added to the blocks after the first (27 us). The
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
    """Kernel positions (row, col) -> offsets (di, dj) from the kernel centre."""
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


# --------------------------------------------------------------------------- data parallel training

_replica_thread = threading.local()     # .active is True while a thread runs one replica's share


def _in_replica():
    """True inside :meth:`DataParallel.forward_backward`'s work: each core already has its share of
    the batch there, so the element-wise operations must not split it again."""
    return getattr(_replica_thread, "active", False)


class DataParallel:
    """A training step's forward and backward passes, with the batch split over the cores.

    Each worker runs a replica of the model, a copy whose layers share the
    model's parameter arrays (so an update of the model is an update of every
    replica) but keep their own gradients and caches, on a slice of the batch,
    on one BLAS thread. The model's own gradients then become the mean of the
    replicas', weighted by their share of the batch: the gradient of the mean
    loss over the whole batch, equal to the serial one to float rounding, since
    no layer mixes the images of a batch.

    Args:
        model: a model made of :mod:`npixelcnn.layers` (``named_leaves``, ``params``, ``grads``).
        workers: replicas (the model itself is the first); default one per core.
    """

    def __init__(self, model, workers=None):
        self.model = model
        self.workers = WORKERS if workers is None else int(workers)
        if self.workers < 1:
            raise ValueError(f"DataParallel: workers must be at least 1, got {workers}")
        self.replicas = [model] + [_replica(model) for _ in range(self.workers - 1)]

    def forward_backward(self, forward_backward, x, targets):
        """Run ``forward_backward(replica, x_part, targets_part) -> loss`` on every replica's part.

        Args:
            forward_backward: runs one model's forward and backward passes on a
                batch, filling its ``grads``, and returns the mean loss (a float).
            x: (N, ...) the model's input; targets: (N, ...) what the loss scores.

        Returns:
            the mean loss over the batch; ``model.grads`` then holds its gradient.
        """
        losses, weights = zip(*self.over_parts(forward_backward, x, targets))
        if len(losses) > 1:
            replica_grads = [replica.grads for replica in self.replicas[1:len(losses)]]
            for name, grad in self.model.grads.items():
                grad *= weights[0]
                for weight, grads in zip(weights[1:], replica_grads):
                    grad += weight * grads[name]
        return float(sum(weight * loss for weight, loss in zip(weights, losses)))

    def over_parts(self, fn, x, targets):
        """Run ``fn(replica, x_part, targets_part)`` on every replica's part of the batch, in parallel.

        Args:
            fn: any function of one model and a batch (a training step, a scoring).
            x: (N, ...) the model's input; targets: (N, ...) what goes with it.

        Returns:
            a list of (what ``fn`` returned, the part's share of the batch), in the batch's order.
        """
        n = len(x)
        bounds = [n * i // self.workers for i in range(self.workers + 1)]
        shares = [(slice(lo, hi), (hi - lo) / n) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
        replicas = self.replicas[:len(shares)]
        for replica in replicas[1:]:
            _share_parameters(self.model, replica)      # cheap, and right even after model.astype()

        def run(replica, part):
            _replica_thread.active = True
            try:
                return fn(replica, x[part], targets[part])
            finally:
                _replica_thread.active = False

        with limit_blas_threads(1):                     # one core per replica, not two threads each
            futures = [_get_pool().submit(run, replica, part)
                       for replica, (part, _) in zip(replicas[1:], shares[1:])]
            try:
                results = [run(replicas[0], shares[0][0])]      # this thread runs the model itself
            finally:
                wait(futures)                   # never leave a replica running past this call
            results += [future.result() for future in futures]  # re-raises a worker's exception
        return [(result, weight) for result, (_, weight) in zip(results, shares)]


def _replica(model):
    """A copy of ``model`` that shares its parameter arrays, with gradients and caches of its own."""
    replica = copy.deepcopy(model)
    for _, leaf in replica.named_leaves():
        leaf._cache = None
    _share_parameters(model, replica)
    return replica


def _share_parameters(model, replica):
    """Point every leaf of ``replica`` at the parameter arrays of the same leaf of ``model``."""
    for (_, leaf), (_, twin) in zip(model.named_leaves(), replica.named_leaves()):
        for name, value in leaf.params.items():
            twin.params[name] = value
            if twin.grads[name].dtype != value.dtype:
                twin.grads[name] = np.zeros_like(value)
        twin.training = leaf.training


_data_parallel = weakref.WeakKeyDictionary()    # model -> its DataParallel (replicas are made once)


def _data_parallel_for(model):
    """The model's :class:`DataParallel`, made on first use (its replicas are kept)."""
    parallel = _data_parallel.get(model)
    if parallel is None or parallel.workers != WORKERS:
        parallel = _data_parallel[model] = DataParallel(model)
    return parallel


def forward_backward(step, model, x, targets):
    """The fast twin of ``step(model, x, targets)``: the same step with the batch split over the
    cores (:class:`DataParallel`), or ``step`` itself on one core or for a batch of one."""
    if WORKERS <= 1 or len(x) < 2:
        return step(model, x, targets)
    return _data_parallel_for(model).forward_backward(step, x, targets)


def batch_total(score, model, x, targets):
    """The fast twin of ``score(model, x, targets)`` for a score that is a sum over the images of
    the batch (a total NLL): each core scores its part with a replica; the parts' totals are added."""
    if WORKERS <= 1 or len(x) < 2:
        return score(model, x, targets)
    return sum(total for total, _ in _data_parallel_for(model).over_parts(score, x, targets))
