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
side effect of ``import npixelcnn``. Where the interpreter cannot be started
again (``os.execv`` refused, as some sandboxes do), the command runs in place
without the setting, only slower, and says how to give it the setting.
"""

import os
import sys

from npixelcnn.cli import INTERRUPTED, main

BLAS_SPIN = ("OPENBLAS_THREAD_TIMEOUT", "4")

if __name__ == "__main__":
    name, value = BLAS_SPIN
    if name not in os.environ:
        os.environ[name] = value
        argv = getattr(sys, "orig_argv", [sys.executable, "-m", "npixelcnn", *sys.argv[1:]])
        try:
            os.execv(sys.executable, argv)            # on success, never returns
        except OSError as err:
            del os.environ[name]                      # this process runs without it: say so, not pretend
            print(f"note: could not restart Python with {name}={value} ({err.strerror or err}); running "
                  f"without it, which can be slower. To have it, start the command with {name}={value} "
                  f"set", file=sys.stderr)
    status = main()
    if status == INTERRUPTED:
        # Ctrl-C can land while a worker thread is being started (concurrent.futures),
        # leaving a thread that is never told to stop: the interpreter would wait for it
        # forever at exit. The command has already undone what it must (temporary
        # files, the folder's lock), so end now, without waiting for threads.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
