"""``python -m npixelcnn``: see :mod:`npixelcnn.cli`.

After each matrix product OpenBLAS's worker threads keep spinning for a while,
holding the cores that npixelcnn's own threads need for the element-wise work
that follows (npixelcnn/fast_ops.py, npixelcnn/data_parallel.py);
OPENBLAS_THREAD_TIMEOUT=4 makes them sleep soon after (compare
``OPENBLAS_THREAD_TIMEOUT=4 python benchmarks/bench_train_step.py`` with the
variable set to 0). OpenBLAS reads that variable once, when NumPy loads it,
and by the time this file runs NumPy is loaded (``python -m`` imports the
package first). So when the variable is not set, the command starts itself
again with it set: the setting is made here, by the entry point, never as a
side effect of ``import npixelcnn``.
"""

import os
import sys

from npixelcnn.cli import main

BLAS_SPIN = ("OPENBLAS_THREAD_TIMEOUT", "4")

if __name__ == "__main__":
    name, value = BLAS_SPIN
    if name not in os.environ:
        os.environ[name] = value
        argv = getattr(sys, "orig_argv", [sys.executable, "-m", "npixelcnn", *sys.argv[1:]])
        os.execv(sys.executable, argv)
    sys.exit(main())
