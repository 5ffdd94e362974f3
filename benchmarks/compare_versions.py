"""Speed of two versions of npixelcnn, side by side: the CLI's training step and cached sampling.

    python benchmarks/compare_versions.py --before /work/before --after /work/main

Each measurement runs ``python -m npixelcnn`` exactly as a user would, in a
fresh process whose working folder and PYTHONPATH are that version's source
tree (so neither an installed copy nor the other tree is imported; the script
checks this first). The versions alternate, before, after, before, after, ...
for ``--repeats`` rounds, so that a machine that speeds up or slows down while
it runs affects both alike. It reports the median of each version and the
ratio after/before: above 1 means the new version is slower.

What it measures:

- the training step: ms per step = training seconds / steps, from the
  metrics.json of ``train --steps N --evals 1 --samples 0`` on the small test
  data in ``<tree>/tests/data/mnist``, for the three settings in TRAINING.
  The training seconds count the steps only: start-up and the final test
  evaluation are outside them. They are ``metrics.train_seconds`` (kept to
  0.1 s), or the same time kept to 1 ms by the history's last record when it
  is at the final step. They include the first steps, which are slower
  (warm-up); both versions run the same N steps and include them alike, so
  the ratio is fair, but the figure is a little above a long run's ms/step.
- cached sampling of every shipped model, ``sample --n N --seed 0``: the
  seconds the command prints (``sampled N images in X s (cached)``, to
  0.1 s only, coarse for runs this short), and the whole command's seconds as
  timed here (to the millisecond, but with about a second of start-up, loading
  and writing in it). Both versions sample the same files, the before tree's,
  so a checkpoint renamed in the after tree does not matter. It also checks
  that every run drew the same images (the .npy files are equal).

OPENBLAS_THREAD_TIMEOUT is removed from the children's environment, so that
each version's entry point sets it its own way. Run this script with the
Python that has the project's requirements: the children use the same one.
Uses the standard library and NumPy only.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TRAINING = {                      # measurement name: the options that choose the model
    "train pixelcnn small, 4 levels": ["--arch", "pixelcnn", "--preset", "small", "--levels", "4"],
    "train pixelcnn medium, 4 levels": ["--arch", "pixelcnn", "--preset", "medium", "--levels", "4"],
    "train gated medium-k5, 4 levels": ["--arch", "gated", "--preset", "medium-k5", "--levels", "4"],
    "train pixelcnn small, 256 levels": ["--arch", "pixelcnn", "--preset", "small", "--levels", "256"],
}
SHIPPED = ["pixelcnn_mnist4.npz", "gated_mnist4.npz", "gated_mnist256.npz",
           "mnist256.npz"]        # the 256-level PixelCNN; the after tree may call it pixelcnn_mnist256.npz
SAMPLED = re.compile(r"^sampled (\d+) images in ([0-9.]+) s \(cached\)", re.MULTILINE)


def python(tree, args, taskset=None):
    """Run ``python ARGS`` in a fresh process whose cwd and PYTHONPATH are TREE: its stdout, and seconds."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("OPENBLAS_THREAD_TIMEOUT", None)
    command = [sys.executable, *args]
    if taskset:
        command = ["taskset", "-c", taskset, *command]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed in {tree} (exit status {done.returncode}): {' '.join(command)}\n{done.stderr}")
    return done.stdout, seconds


def check_imports(tree):
    """Stop unless a process set up as the measurements are imports npixelcnn from TREE itself."""
    stdout, _ = python(tree, ["-c", "import npixelcnn; print(npixelcnn.__file__)"])
    where = Path(stdout.splitlines()[-1]).resolve()
    if tree not in where.parents:
        sys.exit(f"a process in {tree} imports npixelcnn from {where}, not from that tree")


def train_run(tree, options, steps, scratch, taskset):
    """One training run of STEPS steps: its ms per step."""
    out = Path(tempfile.mkdtemp(dir=scratch)) / "run"
    python(tree, ["-m", "npixelcnn", "train", *options, "--steps", str(steps), "--evals", "1",
                  "--samples", "0", "--no-progress", "--data-dir", str(tree / "tests/data/mnist"),
                  "--out", str(out)], taskset)
    record = json.loads((out / "metrics.json").read_text())
    metrics = record["metrics"]
    if metrics["step"] != steps:
        sys.exit(f"{tree}: the run stopped at step {metrics['step']}, not {steps}")
    seconds = metrics["train_seconds"]                          # kept to 0.1 s
    last = (record.get("history") or [{}])[-1]
    if last.get("step") == steps and abs(last.get("time", -1) - seconds) <= 0.05:
        seconds = last["time"]                                  # the same time, kept to 1 ms
    return {"ms per step": 1000 * seconds / steps}, None


def sample_run(tree, checkpoint, n, scratch, taskset):
    """One sampling run: the seconds it printed, the whole command's seconds, and the images."""
    out = Path(tempfile.mkdtemp(dir=scratch)) / "s.png"
    stdout, wall = python(tree, ["-m", "npixelcnn", "sample", "--checkpoint", str(checkpoint), "--n", str(n),
                                 "--seed", "0", "--no-progress", "--out", str(out)], taskset)
    found = SAMPLED.search(stdout)
    if found is None or int(found.group(1)) != n:
        sys.exit(f"{tree}: no line 'sampled {n} images in X s (cached)' in its output:\n{stdout}")
    figures = {"s sampling, as printed (to 0.1 s)": float(found.group(2)),
               "s whole command (start-up, load, write)": wall}
    return figures, np.load(out.with_suffix(".npy"))


def measure(trees, repeats, one_run):
    """ONE_RUN(tree) for before, after, before, after, ...: each version's figures, and all the images."""
    runs, images = {"before": [], "after": []}, []
    for _ in range(repeats):
        for version, tree in trees.items():
            figures, image = one_run(tree)
            runs[version].append(figures)
            images.append(image)
            print(f"  {version}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()),
                  file=sys.stderr, flush=True)
    return runs, images


def report(title, runs):
    """One measurement's table: for each figure the medians, their ratio and every raw value."""
    print(f"\n{title}")
    print(f"  {'':42}{'before':>9}{'after':>9}  after/before   raw: before | after")
    table = {}
    for figure in runs["before"][0]:
        before, after = ([r[figure] for r in runs[v]] for v in ("before", "after"))
        b, a = statistics.median(before), statistics.median(after)
        raw = " ".join(f"{x:.3f}" for x in before) + " | " + " ".join(f"{x:.3f}" for x in after)
        ratio = a / b if b else float("nan")          # a printed 0.0 s has no ratio
        print(f"  {figure:42}{b:9.3f}{a:9.3f}  {ratio:12.3f}   {raw}")
        table[figure] = {"before": before, "after": after, "before_median": b, "after_median": a,
                         "after_over_before": ratio}
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="source tree of the earlier version")
    parser.add_argument("--after", type=Path, required=True, help="source tree of the later version")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of before-then-after (default: 3)")
    parser.add_argument("--steps", type=int, default=60, help="training steps per run (default: 60)")
    parser.add_argument("--n", type=int, default=16, help="images per sampling run (default: 16)")
    parser.add_argument("--only", choices=["train", "sample"], help="measure only this")
    parser.add_argument("--taskset", metavar="CPUS", help="run every command under 'taskset -c CPUS'")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for tree in trees.values():
        check_imports(tree)
    print(f"before: {trees['before']}\nafter:  {trees['after']}\n{args.repeats} rounds, alternating; "
          f"{sys.executable}" + (f"; taskset -c {args.taskset}" if args.taskset else ""))
    results = {}
    with tempfile.TemporaryDirectory(prefix="compare_versions-") as scratch:
        if args.only != "sample":
            for name, options in TRAINING.items():
                title = f"{name}, {args.steps} steps"
                print(title, file=sys.stderr)
                runs, _ = measure(trees, args.repeats, lambda tree: train_run(
                    tree, options, args.steps, scratch, args.taskset))
                results[title] = report(title, runs)
        if args.only != "train":
            for filename in SHIPPED:
                checkpoint = trees["before"] / "checkpoints" / filename
                title = f"sample {filename}, {args.n} images, cached"
                print(title, file=sys.stderr)
                runs, images = measure(trees, args.repeats, lambda tree: sample_run(
                    tree, checkpoint, args.n, scratch, args.taskset))
                same = all(np.array_equal(im, images[0]) for im in images)
                results[title] = report(f"{title}; the same images in all {len(images)} runs: "
                                        f"{'yes' if same else 'NO'}", runs)
                results[title]["same_images"] = same
    if args.json:
        args.json.write_text(json.dumps({"before": str(trees["before"]), "after": str(trees["after"]),
                                         "python": sys.executable, "taskset": args.taskset,
                                         "repeats": args.repeats, "steps": args.steps, "n": args.n,
                                         "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
