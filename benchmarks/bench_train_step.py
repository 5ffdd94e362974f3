"""Time one training step (forward + loss + backward + Adam) and compare it with
this machine's float32 matmul throughput on the same matrix shapes.

    python benchmarks/bench_train_step.py            # every architecture below
    python benchmarks/bench_train_step.py --arch medium --arch gated-medium   # the two medium presets
    python benchmarks/bench_train_step.py --arch small --steps 20
    python benchmarks/bench_train_step.py --arch gated-small --levels 4 --levels 256 --breakdown   # what 256 classes cost
    python benchmarks/bench_train_step.py --torch-python /work/torchvenv/bin/python
    python benchmarks/bench_train_step.py --arch small-dilated --arch small-dilated-twin --levels 256 --batch-size 16
    python benchmarks/bench_train_step.py --arch small --levels 256 --output softmax --output logistic-mixture --breakdown
    python benchmarks/bench_train_step.py --arch gated-medium-k5 --batch-size 16 --classes 0 --classes 10   # what the condition costs

The step is the one the CLI's training runs: the fast twins of the operations on
(npixelcnn.fast_ops) and, on two or more cores, each core taking a part of the
batch with a replica of the model (npixelcnn.data_parallel); --serial times the
whole batch on one model, its products on every BLAS thread; --plain also turns
the fast twins off (the defaults of a model called from Python).

FLOPs count only the multiply-adds of kept taps (2 FLOPs each), three matrix
products per convolution: y = cols @ W, dW = cols^T @ dy, dcols = dy @ W^T.
The matmul reference times exactly those products with np.matmul, so the ratio
step GFLOP/s / matmul GFLOP/s is the share of the step spent in useful matmul.

--torch-python PATH: after npixelcnn's measurement of each architecture, time
the same step in PyTorch with that interpreter (benchmarks/torch_train_step.py,
in its own process; npixelcnn never imports torch), with the same architecture,
batch size, steps, warm-up and thread count, and print npixelcnn / PyTorch.
Without it no PyTorch figure is printed: speeds are only compared side by side,
measured in the same run on the same machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# Before NumPy loads: OpenBLAS's threads stop spinning soon after each product,
# which frees the cores for npixelcnn's threaded element-wise work (docs/results.md, "Where the time goes").
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import npixelcnn as npc  # noqa: E402

import numpy as np  # noqa: E402
from npixelcnn import blas, data_parallel, fast_ops, ops  # noqa: E402
from npixelcnn.layers import Conv2D, MaskedConv2D  # noqa: E402

ARCHITECTURES = {
    "seed": dict(arch="pixelcnn", hidden=64, blocks=15, head=128),
    "small": dict(arch="pixelcnn", hidden=32, blocks=5, head=128),
    "medium": dict(arch="pixelcnn", **npc.PixelCNN.presets["medium"].model),
    "gated-small": dict(arch="gated", **npc.GatedPixelCNN.presets["small"].model),
    "gated-medium": dict(arch="gated", **npc.GatedPixelCNN.presets["medium"].model),
    "gated-medium-k5": dict(arch="gated", **npc.GatedPixelCNN.presets["medium-k5"].model),
    # The dilated presets, and their twins: the same sizes undilated. Dilation moves the taps
    # but keeps their number, so the products are the same; only the copies of im2col differ.
    "small-dilated": dict(arch="pixelcnn", **npc.PixelCNN.presets["small-dilated"].model),
    "small-dilated-twin": {"arch": "pixelcnn", **npc.PixelCNN.presets["small-dilated"].model, "dilations": None},
    "gated-dilated": dict(arch="gated", **npc.GatedPixelCNN.presets["dilated"].model),
    "gated-dilated-twin": {"arch": "gated", **npc.GatedPixelCNN.presets["dilated"].model, "dilations": None},
}
TORCH_TWINS = ("seed", "small")        # the architectures torch_train_step.py builds
TORCH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_train_step.py")


def npixelcnn_threads():
    """The threads npixelcnn computes on, which PyTorch gets too: OpenBLAS's for the
    products, npixelcnn.fast_ops's (one per core this process may use) for the rest."""
    return max(fast_ops.WORKERS, blas.blas_threads() or 0)


def conv_layers(model):
    """Every convolution in the model, in order."""
    return [layer for _, layer in model.named_leaves() if isinstance(layer, (MaskedConv2D, Conv2D))]


def matmul_shapes(model, pixels):
    """(M, K, N) of the forward product of every convolution; K counts kept taps."""
    return [(pixels, len(c.taps) * c.in_channels, c.out_channels) for c in conv_layers(model)]


def median_ms(fn, steps, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def time_matmuls(shapes, steps, rng):
    """Median ms of the three products of each distinct shape, summed over layers."""
    total_ms = 0.0
    counts = {}
    for shape in shapes:
        counts[shape] = counts.get(shape, 0) + 1
    for (m, k, n), count in counts.items():
        cols = rng.standard_normal((m, k), dtype=np.float32)
        W = rng.standard_normal((k, n), dtype=np.float32)
        dy = rng.standard_normal((m, n), dtype=np.float32)
        ms = (
            median_ms(lambda: cols @ W, steps, 1)
            + median_ms(lambda: cols.T @ dy, steps, 1)
            + median_ms(lambda: dy @ W.T, steps, 1)
        )
        total_ms += count * ms
    return total_ms


def time_by_layer(model, train_step, steps):
    """Median-free breakdown: total ms per step spent in each kind of layer call.

    Wraps every leaf layer's forward and backward, and the loss, with a timer,
    so the gap between the matmul reference and the step shows up by layer kind.
    ``train_step(loss)`` must compute its loss with the function it is given.
    """
    totals = {}

    def timed(method, label):
        def run(*args):
            start = time.perf_counter()
            out = method(*args)
            totals[label] = totals.get(label, 0.0) + time.perf_counter() - start
            return out
        return run

    leaves = [layer for _, layer in model.named_leaves()]
    for layer in leaves:
        kind = type(layer).__name__
        if hasattr(layer, "kernel_size"):
            kind += f" {layer.kernel_size}x{layer.kernel_size} {layer.in_channels}->{layer.out_channels}"
        layer.forward = timed(layer.forward, f"{kind} forward")
        layer.backward = timed(layer.backward, f"{kind} backward")
    loss = timed(model.output.loss, f"{model.output.name} loss (value and gradient)")
    for _ in range(steps):
        train_step(loss)
    for layer in leaves:                       # remove the instance-level wrappers
        del layer.forward, layer.backward
    return {label: 1e3 * t / steps for label, t in totals.items()}


def bench(arch, batch_size, steps, warmup, levels=4, size=28, breakdown=False, parallel=True, fast=True,
          output="softmax", classes=None):
    rng = np.random.default_rng(0)
    settings = dict(ARCHITECTURES[arch])
    if classes is not None:
        settings["classes"] = classes
    model = npc.build_model(settings.pop("arch"), dict(levels=levels, output=output, **settings), seed=0)
    optimizer = npc.Adam(model, lr=1e-3, clip_norm=1.0)
    targets = rng.integers(0, levels, (batch_size, size, size))
    x = (targets[..., None] / (levels - 1)).astype(np.float32)
    labels = None if classes is None else rng.integers(0, classes, batch_size)

    def loss_and_gradients(model, x, targets, labels, loss=model.output.loss):
        outputs = model.forward(x, labels)
        value, doutputs = loss(outputs, targets)
        model.backward(doutputs)
        return value

    def train_step(loss=model.output.loss, split=parallel):     # what Trainer.train_step does
        step = lambda model, x, targets, labels=None: loss_and_gradients(model, x, targets, labels, loss)  # noqa: E731
        if split:
            data_parallel.split_loss_and_gradients(step, model, x, targets, labels)
        else:
            step(model, x, targets, labels)
        optimizer.step()

    with ops.fast(fast):
        step_ms = median_ms(train_step, steps, warmup)
        # The breakdown times the model's own layers, so no replicas.
        layer_ms = time_by_layer(model, lambda loss: train_step(loss, split=False), steps) if breakdown else None
    shapes = matmul_shapes(model, batch_size * size * size)
    flops = sum(3 * 2 * m * k * n for m, k, n in shapes)
    matmul_ms = time_matmuls(shapes, steps, rng)
    step_gflops = flops / step_ms / 1e6
    matmul_gflops = flops / matmul_ms / 1e6
    return {
        "arch": arch,
        "levels": levels,
        "params": model.num_params(),
        "step_ms": step_ms,
        "images_per_s": batch_size / step_ms * 1e3,
        "gflop": flops / 1e9,
        "step_gflops": step_gflops,
        "matmul_ms": matmul_ms,
        "matmul_gflops": matmul_gflops,
        "matmul_share": step_gflops / matmul_gflops,
        "layer_ms": layer_ms,
    }


def time_torch(python, arch, batch_size, steps, warmup, threads):
    """Run torch_train_step.py with interpreter ``python`` in its own process; returns its JSON result."""
    command = [python, TORCH_SCRIPT, "--arch", arch, "--batch-size", str(batch_size),
               "--steps", str(steps), "--warmup", str(warmup), "--threads", str(threads)]
    run = subprocess.run(command, stdout=subprocess.PIPE, text=True)   # stderr passes through
    if run.returncode != 0:
        sys.exit(f"PyTorch benchmark failed (exit {run.returncode}): {' '.join(command)}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=[*ARCHITECTURES, "all"], action="append",
                        help="an architecture to time (repeat for several; default: all)")
    parser.add_argument("--levels", type=int, action="append",
                        help="intensity levels (repeat to compare, e.g. --levels 4 --levels 256; default: 4)")
    parser.add_argument("--output", choices=sorted(npc.distributions.OUTPUTS), action="append",
                        help="the output distribution (repeat to compare; default: softmax); the mixture "
                             f"has {npc.distributions.DEFAULT_COMPONENTS} components")
    parser.add_argument("--classes", type=int, action="append",
                        help="a class-conditional model with this many classes, 0 for none (repeat to "
                             "compare side by side, e.g. --classes 0 --classes 10; default: none)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=7, help="timed steps (median is reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--breakdown", action="store_true", help="also print ms per step by layer kind")
    parser.add_argument("--serial", action="store_true",
                        help="time the step without data parallelism (the whole batch on one model, "
                             "the products on all BLAS threads): Trainer's default (parallel=False)")
    parser.add_argument("--plain", action="store_true",
                        help="with --serial: the plain operations of npixelcnn.ops, not their fast twins "
                             "(a model called from Python with the defaults)")
    parser.add_argument("--torch-python", metavar="PATH", default=None,
                        help="also time PyTorch with this interpreter (its own process), after npixelcnn")
    args = parser.parse_args()
    archs = list(ARCHITECTURES) if args.arch is None or "all" in args.arch else args.arch
    levels_list = args.levels or [4]
    for levels in levels_list:
        try:
            npc.validation.check_levels(levels, "--levels")         # the range the library accepts
        except ValueError as error:
            parser.error(str(error))
    threads = npixelcnn_threads()
    print(f"batch {args.batch_size}, 28x28; median of {args.steps} steps after {args.warmup} warm-up; "
          f"npixelcnn on {threads} threads (BLAS {blas.blas_threads() or 'not OpenBLAS'}, element-wise "
          f"{fast_ops.WORKERS}); " + ("serial step" if args.serial or args.plain or fast_ops.WORKERS == 1
                                      else f"data parallel step ({fast_ops.WORKERS} replicas)")
          + (", plain operations" if args.plain else ", fast twins"))
    outputs = args.output or ["softmax"]
    classes_list = [k or None for k in (args.classes or [0])]
    for arch, levels, output, classes in ((a, n, o, k) for a in archs for n in levels_list for o in outputs
                                          for k in classes_list):
        r = bench(arch, args.batch_size, args.steps, args.warmup, levels=levels, breakdown=args.breakdown,
                  parallel=not (args.serial or args.plain), fast=not args.plain, output=output, classes=classes)
        condition = "" if classes is None else f", {classes} classes"
        print(
            f"{r['arch']:>12}, {levels:3d} levels, {output}{condition}: {r['params']:,} params | {r['step_ms']:.0f} ms/step | "
            f"{r['images_per_s']:.0f} images/s | {r['gflop']:.1f} GFLOP/step (kept taps) | "
            f"{r['step_gflops']:.0f} GFLOP/s vs np.matmul {r['matmul_gflops']:.0f} GFLOP/s on the same "
            f"shapes ({r['matmul_ms']:.0f} ms) = {100 * r['matmul_share']:.0f}%",
            flush=True,
        )
        if r["layer_ms"]:
            for label, ms in sorted(r["layer_ms"].items(), key=lambda kv: -kv[1]):
                print(f"        {ms:7.1f} ms  {label}")
        if args.torch_python and arch in TORCH_TWINS and levels == 4 and output == "softmax":
            t = time_torch(args.torch_python, arch, args.batch_size, args.steps, args.warmup, threads)
            if t["params"] != r["params"]:
                sys.exit(f"{arch}: the PyTorch model has {t['params']:,} parameters, npixelcnn's {r['params']:,}")
            print(
                f"{'':>12}  PyTorch {t['torch']} ({t['threads']} threads, own process): {t['params']:,} params | "
                f"{t['ms_per_step']:.0f} ms/step | npixelcnn / PyTorch = {r['step_ms'] / t['ms_per_step']:.2f} "
                f"(PyTorch ms measured in this run)",
                flush=True,
            )


if __name__ == "__main__":
    main()
