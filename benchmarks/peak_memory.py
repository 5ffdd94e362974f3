"""Peak memory (resident set size) of evaluation and sampling, each job in its own process.

    python benchmarks/peak_memory.py --checkpoint checkpoints/pixelcnn_mnist256.npz --data-dir ../shared/mnist
    python benchmarks/peak_memory.py --arch gated --levels 256 --data-dir ../shared/mnist   # random weights

Each job runs as the command line runs it: the fast twins of the operations on, and the
evaluation split over the cores (``parallel=True``).

Jobs: ``evaluate`` scores the whole test set (batches of 50, as the CLI does);
``sample`` draws 64 images with the cached sampler; ``complete`` completes the
top half of 8 test images 8 times each (64 at once).

Each job runs in a fresh Python process (Linux), which reports two figures:
its RSS just before the job, with NumPy, the model and the data loaded, and the
peak RSS of its whole life (``getrusage``'s ru_maxrss). The difference is what
the job itself held at its worst moment.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

JOBS = ("evaluate", "sample", "complete")


def rss_mb():
    """The current resident set size of this process in MB, from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024          # kB -> MB
    raise RuntimeError("no VmRSS in /proc/self/status: this benchmark needs Linux")


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux reports kB


def build(args):
    """The model to measure: a checkpoint, or random weights of a benchmark architecture."""
    import npixelcnn as npc
    if args.checkpoint:
        return npc.load_checkpoint(args.checkpoint).model
    from bench_sampling import GATED_ARCH, SEED_ARCH                  # the architectures bench_sampling times
    if args.arch == "gated":
        return npc.GatedPixelCNN(seed=0, levels=args.levels, **GATED_ARCH)
    return npc.PixelCNN(seed=0, levels=args.levels, **SEED_ARCH)


def run_job(args, job):
    """Child process: load, note the RSS, run one job, print one JSON line."""
    import npixelcnn as npc
    npc.ops.use_fast(True)                  # as the command line runs
    model = build(args)
    images = npc.quantize(npc.load_mnist("test", args.data_dir)[0], model.levels)[:args.test_images]
    before = rss_mb()
    start = time.perf_counter()
    if job == "evaluate":
        result = f"{npc.nats_to_bits(npc.evaluate(model, images, parallel=True)):.4f} bits/dim on {len(images):,} images"
    elif job == "sample":
        result = f"{npc.sample(model, 64, seed=0, method='cached').shape} sampled"
    else:
        result = f"{npc.complete(model, images[:8], 14, n_samples=8, seed=0).shape} completed"
    print(json.dumps(dict(job=job, before_mb=before, peak_mb=peak_rss_mb(),
                          seconds=time.perf_counter() - start, result=result)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a trained model (.npz); without it, random weights")
    parser.add_argument("--arch", choices=["pixelcnn", "gated"], default="gated",
                        help="random-weight model: the seed's PixelCNN or the gated medium preset")
    parser.add_argument("--levels", type=int, default=256, help="levels of the random-weight model")
    parser.add_argument("--data-dir", required=True, help="folder with the MNIST test files")
    parser.add_argument("--test-images", type=int, default=10000, help="test images to evaluate")
    parser.add_argument("--job", choices=JOBS, action="append", help="a job to run (default: all)")
    args = parser.parse_args()

    child_job = os.environ.get("NPIXELCNN_PEAK_MEMORY_JOB")       # set for the child processes below
    if child_job:
        run_job(args, child_job)
        return
    described = args.checkpoint or f"{args.arch}, {args.levels} levels, random weights"
    print(f"Peak resident memory, one fresh process per job ({described}):")
    for job in args.job or JOBS:
        command = [sys.executable, os.path.abspath(__file__), *sys.argv[1:]]
        run = subprocess.run(command, env=dict(os.environ, NPIXELCNN_PEAK_MEMORY_JOB=job),
                             stdout=subprocess.PIPE, text=True)
        if run.returncode != 0:
            sys.exit(f"{job} failed (exit {run.returncode})")
        r = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"  {job:>9}: peak {r['peak_mb']:6.0f} MB; before the job {r['before_mb']:5.0f} MB, "
              f"so the job added at most {r['peak_mb'] - r['before_mb']:5.0f} MB "
              f"({r['seconds']:.1f} s; {r['result']})", flush=True)


if __name__ == "__main__":
    main()
