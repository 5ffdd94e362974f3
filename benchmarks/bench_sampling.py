"""Time sampling: the naive loop, the cached sampler (and its plain twin), and one full forward pass.

    python benchmarks/bench_sampling.py                          # seed architecture, random weights
    python benchmarks/bench_sampling.py --arch gated             # the gated medium preset, random weights
    python benchmarks/bench_sampling.py --arch all --levels 256  # both, with a softmax over 256 levels
    python benchmarks/bench_sampling.py --checkpoint checkpoints/model.npz
    python benchmarks/bench_sampling.py --checkpoint checkpoints/pixelcnn_mnist256.npz --arch none --n 1   # the checkpoint only
    python benchmarks/bench_sampling.py --n 4 --naive-pixels 2 --repeats 1   # a quick check
    python benchmarks/bench_sampling.py --profile                # where the cached sampler's time goes
    python benchmarks/bench_sampling.py --plain --n 16            # also the plain cached sampler
    python benchmarks/bench_sampling.py --arch gated --classes 0 --classes 10   # what a class condition costs
    python benchmarks/bench_sampling.py --arch all --in-channels 3   # colour (R, G, B) models, random weights

The naive loop runs one full forward pass per pixel, whatever the pixel, so
its time is measured on the first ``--naive-pixels`` pixels (with the real
loop, through ``complete``) and multiplied by H*W / naive-pixels; the output
says when it is extrapolated (``--naive-pixels 0`` runs all H*W of them). In
colour every pixel costs the naive loop C forward passes, one per sub-pixel:
the pixels timed include theirs, so the same factor extrapolates it.

Colour: ``--in-channels 3`` builds the random-weight models of either
architecture for R, G, B images (channel order "ordered"), and a colour
checkpoint is timed on images of its data set's size (28x28 coloured MNIST,
32x32 CIFAR-10). The cached sampler computes each layer at a pixel once, its
channel groups split over the three sub-pixels' rounds, so its targets are the
grey ones.

Targets from the issue: cached at least 500x faster than naive, and at most
1.5x the time of one full forward pass of the same batch. The plain cached
sampler (``--plain``) is written to be read, not timed against a target.

The layers run their fast element-wise twins (``npc.ops.fast()``), as the
command line does.
"""

import argparse
import cProfile
import os
import pstats
import statistics
import time

# Before NumPy loads: OpenBLAS's threads stop spinning soon after each product,
# which frees the cores for npixelcnn's threaded element-wise work (README, "Where the time goes").
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import npixelcnn as npc  # noqa: E402
from npixelcnn.commands import DATASETS, dataset_of  # noqa: E402

import numpy as np  # noqa: E402

SEED_ARCH = npc.PixelCNN.presets["seed"].model             # the seed tutorial's architecture
GATED_ARCH = npc.GatedPixelCNN.presets["medium"].model      # the gated "medium" preset


def median_s(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(model, label, n, shape, naive_pixels, repeats, profile, plain=False):
    height, width = shape
    pixels, channels = height * width, model.in_channels
    x = np.zeros((n, height, width, channels), model.dtype)
    # A class-conditional model draws every class in turn (0, 1, ..., K-1, 0, ...).
    labels = None if model.classes is None else np.arange(n) % model.classes
    model.eval()
    model.forward(x, labels)                                          # warm-up: buffers, BLAS threads
    forward = median_s(lambda: model.forward(x, labels), repeats)
    model.train()

    cached = median_s(lambda: npc.sample(model, n, shape, seed=0, method="cached", labels=labels), repeats)
    if plain:
        plain_cached = median_s(lambda: npc.sample(model, n, shape, seed=0, method="plain-cached",
                                                   labels=labels), repeats)

    k = pixels if naive_pixels <= 0 else min(naive_pixels, pixels)
    visible = np.ones(shape, bool)
    visible.reshape(-1)[:k] = False                                   # the naive loop visits these k
    images = np.zeros((n, height, width) + ((channels,) if channels > 1 else ()), np.uint8)
    start = time.perf_counter()
    npc.sampling.complete(model, images, visible, seed=0, method="naive", labels=labels)
    naive = (time.perf_counter() - start) * pixels / k
    how = "measured" if k == pixels else f"extrapolated from {k} of {pixels} pixels"
    if channels > 1:
        how += f", {channels} forward passes per pixel"

    colour = f" x {channels} sub-pixels" if channels > 1 else ""
    print(f"\n{label}: {n} images of {height}x{width}{colour}, {model.num_params():,} parameters, "
          f"dtype {model.dtype}")
    print(f"  one full forward pass  {forward:9.3f} s   (median of {repeats})")
    print(f"  cached sampling        {cached:9.3f} s   (median of {repeats}; "
          f"{1e3 * cached / pixels:.2f} ms per pixel)")
    if plain:
        print(f"  plain cached sampling  {plain_cached:9.3f} s   (median of {repeats}; "
              f"{plain_cached / cached:.1f}x the cached sampler)")
    print(f"  naive sampling         {naive:9.1f} s   ({how})")
    print(f"  naive / cached   = {naive / cached:8.0f}x   (target >= 500x)")
    print(f"  cached / forward = {cached / forward:8.2f}x   (target <= 1.5x)")

    if profile:
        print_profile(model, n, shape, labels)
    return {"forward": forward, "cached": cached, "naive": naive}


def print_profile(model, n, shape, labels, top=10):
    """cProfile one cached run; print the functions with the most own time, named by class."""
    profiler = cProfile.Profile()
    profiler.runcall(npc.sample, model, n, shape, seed=0, method="cached", labels=labels)
    stats = pstats.Stats(profiler).stats        # {(file, line, name): (cc, calls, own, cumulative, callers)}
    names = {}
    modules = (npc.sampling, npc.cached_sampler, npc.pixel_steps, npc.gated_steps, npc.steps)
    for cls in (c for module in modules for c in vars(module).values()):
        if isinstance(cls, type):
            for attr, fn in vars(cls).items():
                code = getattr(fn, "__code__", None)
                if code is not None:
                    names[(code.co_filename, code.co_firstlineno, code.co_name)] = f"{cls.__name__}.{attr}"
    total = sum(own for _, _, own, _, _ in stats.values())
    print(f"  where one cached run spends its time (cProfile, {total:.3f} s; own time, "
          "a NumPy call's time counted in the method that makes it):")
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
    for key, (_, calls, own, _, _) in rows:
        name = names.get(key, key[2] if key[0] == "~" else f"{key[2]} ({key[0].split('/')[-1]})")
        print(f"    {own:7.3f} s {100 * own / total:5.1f}%  {calls:7d} calls  {name}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="also time this trained model (.npz)")
    parser.add_argument("--n", type=int, default=64, help="images per batch (default 64)")
    parser.add_argument("--size", type=int, nargs=2, default=(28, 28), metavar=("H", "W"),
                        help="image size for the random-weight model (default 28 28)")
    parser.add_argument("--naive-pixels", type=int, default=28,
                        help="pixels of the naive loop to time before extrapolating (0: all)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of forward and cached, median")
    parser.add_argument("--levels", type=int, default=4, help="levels of the random-weight models (default 4)")
    parser.add_argument("--in-channels", type=int, choices=[1, 3], default=1,
                        help="channels of the random-weight models' images: 1 grey (default), 3 colour (R, G, B)")
    parser.add_argument("--profile", action="store_true", help="profile one cached run")
    parser.add_argument("--plain", action="store_true", help="also time the plain cached sampler")
    parser.add_argument("--classes", type=int, action="append",
                        help="the random-weight gated model with this many classes, 0 for none (repeat "
                             "to compare, e.g. --classes 0 --classes 10; default: none)")
    parser.add_argument("--arch", choices=["pixelcnn", "gated", "all", "none"], default="pixelcnn",
                        help="random-weight model: the seed's PixelCNN, the gated medium preset, both, "
                             "or none (the checkpoint only)")
    args = parser.parse_args(argv)
    try:
        npc.validation.check_levels(args.levels, "--levels")         # the range the library accepts
    except ValueError as error:
        parser.error(str(error))

    print("Timings on this machine, whatever else it is running; one number per setting.")
    npc.ops.use_fast(True)                  # the fast element-wise twins, as the command line runs
    if args.checkpoint:
        ckpt = npc.load_checkpoint(args.checkpoint)
        shape = DATASETS[dataset_of(ckpt, args.checkpoint)]["shape"]      # 28x28, or 32x32 for CIFAR-10
        bench(ckpt.model, f"checkpoint {args.checkpoint}", args.n, shape, args.naive_pixels,
              args.repeats, args.profile, args.plain)
    if args.arch in ("pixelcnn", "all"):
        settings = dict(levels=args.levels, **SEED_ARCH, in_channels=args.in_channels)
        model = npc.PixelCNN(seed=0, **settings)
        bench(model, f"seed architecture, random weights {settings}", args.n, tuple(args.size),
              args.naive_pixels, args.repeats, args.profile, args.plain)
    if args.arch in ("gated", "all"):
        results = {}
        for classes in [k or None for k in (args.classes or [0])]:
            settings = dict(levels=args.levels, **GATED_ARCH, classes=classes, in_channels=args.in_channels)
            model = npc.GatedPixelCNN(seed=0, **settings)
            results[classes] = bench(model, f"Gated PixelCNN, random weights {settings}", args.n,
                                     tuple(args.size), args.naive_pixels, args.repeats, args.profile, args.plain)
        if None in results and len(results) > 1:
            for classes, r in results.items():
                if classes is not None:
                    print(f"\n{classes} classes / none: cached sampling {r['cached'] / results[None]['cached']:.3f}x, "
                          f"one forward pass {r['forward'] / results[None]['forward']:.3f}x")


if __name__ == "__main__":
    main()
