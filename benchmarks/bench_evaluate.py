"""Time npc.evaluate on MNIST test images, with the fast twins on (as the CLI runs it): each
core scoring a part of every batch (``parallel=True``, the CLI's way) against the whole batch
on one model (``parallel=False``, the default from Python). ``--batch-size`` compares sizes.

    python benchmarks/bench_evaluate.py --checkpoint checkpoints/gated_mnist4.npz --data-dir ../shared/mnist
    python benchmarks/bench_evaluate.py --checkpoint checkpoints/pixelcnn_mnist256.npz --images 2000 --repeats 2

The two ways alternate (data parallel, whole batches, data parallel, ...) in one
process, so a machine whose speed drifts affects both alike; each line gives the
seconds, images per second and the figure in bits/dim, which must agree to
float rounding. On one core (taskset -c 0) there is one worker and the two are
the same computation.
"""

import argparse
import os
import time

# Before NumPy loads: OpenBLAS's threads stop spinning soon after each product (docs/results.md, "Where the time goes").
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import npixelcnn as npc  # noqa: E402
from npixelcnn import blas, fast_ops, ops  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by train")
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST .gz files")
    parser.add_argument("--images", type=int, default=10_000, help="test images to score (default: all 10,000)")
    parser.add_argument("--batch-size", type=int, default=50, help="images per forward pass (evaluate's default)")
    parser.add_argument("--repeats", type=int, default=2, help="times each way is timed")
    args = parser.parse_args(argv)

    model = npc.load_checkpoint(args.checkpoint).model
    test = npc.quantize(npc.load_mnist("test", data_dir=args.data_dir, progress=False)[0], model.levels)
    test = test[:args.images]
    print(f"{model!r}; {len(test):,} test images, batches of {args.batch_size}; "
          f"{fast_ops.WORKERS} worker(s), {blas.blas_threads()} BLAS thread(s)")
    ops.use_fast(True)
    npc.evaluate(model, test[:args.batch_size], batch_size=args.batch_size, parallel=True)   # warm-up: replicas, buffers
    seconds = {"data parallel": [], "whole batches": []}
    for _ in range(args.repeats):
        for way in seconds:
            started = time.perf_counter()
            nats = npc.evaluate(model, test, batch_size=args.batch_size, parallel=way == "data parallel")
            seconds[way].append(time.perf_counter() - started)
            print(f"{way:>14}: {seconds[way][-1]:6.1f} s, {len(test) / seconds[way][-1]:6.1f} images/s, "
                  f"{npc.nats_to_bits(nats):.6f} bits/dim")
    best = {way: min(times) for way, times in seconds.items()}
    print(f"best of {args.repeats}: data parallel {best['data parallel']:.1f} s, whole batches "
          f"{best['whole batches']:.1f} s: {best['whole batches'] / best['data parallel']:.2f}x")


if __name__ == "__main__":
    main()
