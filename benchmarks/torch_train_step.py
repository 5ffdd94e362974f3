"""The PyTorch twin of bench_train_step.py: time one training step of the same
PixelCNN in PyTorch (CPU), for a side-by-side comparison run on one machine.

    /work/torchvenv/bin/python benchmarks/torch_train_step.py --arch small --threads 2

It runs in its own interpreter (a venv with torch), never inside npixelcnn's
environment; bench_train_step.py --torch-python PATH starts it in a subprocess
after its own measurement. Imports only torch, numpy and the standard library.

The model is npixelcnn.PixelCNN layer for layer: a 7x7 mask-A convolution
1 -> 2h, residual blocks ReLU -> 1x1 (2h -> h) -> ReLU -> 3x3 mask B (h -> h)
-> ReLU -> 1x1 (h -> 2h) plus the skip, then ReLU, 1x1 (2h -> head), ReLU,
1x1 (head -> head), 1x1 (head -> levels). Masks multiply the weight in forward
(the usual PyTorch PixelCNN), so the masked taps are multiplied too; npixelcnn
gathers only the kept taps. The initialisation follows npixelcnn (He-normal on
kept taps, zero biases, residual outputs scaled by 1/sqrt(blocks), output by
0.1); it does not change the timing.

One step: forward, softmax cross-entropy over the levels (mean over pixels),
backward, gradient clipping to global norm 1, Adam (lr 1e-3). Prints one JSON
line per architecture: {"arch", "ms_per_step", "threads", "torch", "params",
"npixelcnn_params"}; exits with an error if the parameter counts differ.
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

# As in bench_train_step.py (npixelcnn.PixelCNN's hidden, blocks, head).
ARCHITECTURES = {
    "seed": dict(hidden=64, blocks=15, head=128),
    "small": dict(hidden=32, blocks=5, head=128),
}
# npc.PixelCNN(levels=4, **ARCHITECTURES[arch]).num_params(), masked weight entries
# included (they are in npixelcnn's W arrays too); PyTorch must build the same count.
NPIXELCNN_PARAMS = {"seed": 842500, "small": 95748}


def causal_mask(kernel_size, mask_type):
    """(k, k) float mask: rows above the centre, left of the centre, the centre for mask B."""
    centre = kernel_size // 2
    mask = torch.zeros(kernel_size, kernel_size)
    mask[:centre, :] = 1
    mask[centre, :centre] = 1
    mask[centre, centre] = float(mask_type == "B")
    return mask


class Conv(torch.nn.Module):
    """k x k convolution, stride 1, zero "same" padding; with mask_type, causally masked.

    He-normal init over the taps the mask keeps (std = gain * sqrt(2 / fan_in)), zero bias.
    """

    def __init__(self, in_channels, out_channels, kernel_size=1, mask_type=None, gain=1.0):
        super().__init__()
        k = kernel_size
        mask = torch.ones(k, k) if mask_type is None else causal_mask(k, mask_type)
        fan_in = int(mask.sum()) * in_channels
        std = gain * (2.0 / fan_in) ** 0.5
        self.weight = torch.nn.Parameter(std * torch.randn(out_channels, in_channels, k, k) * mask)
        self.bias = torch.nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("mask", mask if mask_type is not None else None)
        self.padding = k // 2

    def forward(self, x):
        weight = self.weight if self.mask is None else self.weight * self.mask
        return F.conv2d(x, weight, self.bias, padding=self.padding)


class ResidualBlock(torch.nn.Module):
    """ReLU -> 1x1 (2h -> h) -> ReLU -> 3x3 mask B (h -> h) -> ReLU -> 1x1 (h -> 2h), plus x."""

    def __init__(self, h, out_gain):
        super().__init__()
        self.conv1 = Conv(2 * h, h, 1)
        self.conv2 = Conv(h, h, 3, "B")
        self.conv3 = Conv(h, 2 * h, 1, gain=out_gain)

    def forward(self, x):
        y = self.conv1(F.relu(x))
        y = self.conv2(F.relu(y))
        y = self.conv3(F.relu(y))
        return x + y


class PixelCNN(torch.nn.Module):
    """7x7 mask-A conv -> residual blocks -> ReLU, 1x1, ReLU, 1x1, 1x1 -> logits (N, levels, H, W)."""

    def __init__(self, levels=4, hidden=64, blocks=15, head=128):
        super().__init__()
        stream = 2 * hidden
        self.input_conv = Conv(1, stream, 7, "A")
        out_gain = 1.0 / max(blocks, 1) ** 0.5
        self.blocks = torch.nn.Sequential(*[ResidualBlock(hidden, out_gain) for _ in range(blocks)])
        self.head1 = Conv(stream, head, 1)
        self.head2 = Conv(head, head, 1)
        self.out = Conv(head, levels, 1, gain=0.1)

    def forward(self, x):
        x = self.blocks(self.input_conv(x))
        x = self.head1(F.relu(x))
        x = self.head2(F.relu(x))
        return self.out(x)


def bench(arch, batch_size, steps, warmup, levels=4, size=28):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = PixelCNN(levels=levels, **ARCHITECTURES[arch])
    params = sum(p.numel() for p in model.parameters())
    if params != NPIXELCNN_PARAMS[arch]:
        raise SystemExit(f"{arch}: PyTorch model has {params:,} parameters, npixelcnn's {NPIXELCNN_PARAMS[arch]:,}")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    targets = torch.from_numpy(rng.integers(0, levels, (batch_size, size, size)))       # (N, H, W) int64
    x = (targets[:, None] / (levels - 1)).to(torch.float32)                              # (N, 1, H, W)

    def train_step():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), targets)       # mean over all N*H*W pixels
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    for _ in range(warmup):
        train_step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        train_step()
        times.append(time.perf_counter() - start)
    return {
        "arch": arch,
        "ms_per_step": 1e3 * statistics.median(times),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "params": params,
        "npixelcnn_params": NPIXELCNN_PARAMS[arch],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=[*ARCHITECTURES, "all"], default="all")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=7, help="timed steps (median is reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    archs = list(ARCHITECTURES) if args.arch == "all" else [args.arch]
    for arch in archs:
        print(json.dumps(bench(arch, args.batch_size, args.steps, args.warmup)), flush=True)


if __name__ == "__main__":
    main()
