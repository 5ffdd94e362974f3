"""A quick look at what the channel order buys on coloured MNIST: the same small model trained
with channel_order "ordered" (G reads R at its own pixel, B reads R and G) and "independent"
(neither), for the same number of steps, one after the other; bits/dim per channel on the first
200 test images. Not the issue's equal-time figure (see docs/results.md), a first check.

    taskset -c 0 env OPENBLAS_NUM_THREADS=1 python benchmarks/channel_order_probe.py pixelcnn 2000 32 --data-dir ../shared/mnist
    taskset -c 1 env OPENBLAS_NUM_THREADS=1 python benchmarks/channel_order_probe.py gated 2000 24 --data-dir ../shared/mnist

ARCH STEPS WIDTH: a PixelCNN of 5 blocks of hidden WIDTH (head 64), or a Gated PixelCNN of
6 layers of WIDTH channels, k = 3 (head 48); batch 16, 4 levels, the first 30,000 training images.
"""

import argparse
import time

import numpy as np

import npixelcnn as npc
from npixelcnn.config import TrainConfig
from npixelcnn.train import Trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arch", choices=["pixelcnn", "gated"])
    parser.add_argument("steps", type=int)
    parser.add_argument("width", type=int)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    train, _ = npc.load_coloured_mnist("train", data_dir=args.data_dir, progress=False)
    test, _ = npc.load_coloured_mnist("test", data_dir=args.data_dir, progress=False)
    train, test = npc.quantize(train[:30_000], 4), npc.quantize(test[:200], 4)
    for order in ("ordered", "independent"):
        lr = 6e-3 if args.arch == "pixelcnn" else 4e-3
        config = TrainConfig(levels=4, batch_size=16, lr=lr, warmup_steps=100, seed=0, arch=args.arch,
                             total_steps=args.steps)
        if args.arch == "pixelcnn":
            model = npc.PixelCNN(levels=4, hidden=args.width, blocks=5, head=64, in_channels=3,
                                 channel_order=order, seed=0)
        else:
            model = npc.GatedPixelCNN(levels=4, channels=args.width, layers=6, kernel_size=3, head=48,
                                      in_channels=3, channel_order=order, seed=0)
        trainer = Trainer(config, train, test, model=model)
        started = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step()
        seconds = time.perf_counter() - started
        model.eval()
        nll = model.output.pixel_nll(model.forward(npc.to_model_input(test, 4)), test)   # (N, H, W, 3) nats
        per_channel = [round(float(nll[..., c].mean() / np.log(2)), 3) for c in range(3)]
        print(f"{args.arch} width {args.width}, {order}: {args.steps} steps in {seconds:.0f} s; bits/dim "
              f"R, G, B {per_channel}, all {nll.mean() / np.log(2):.4f}", flush=True)


if __name__ == "__main__":
    main()
