"""The command line: ``python -m npixelcnn train | eval | sample | complete``.

Each command is a thin layer over the library: it parses options, calls
:mod:`npixelcnn.train`, :mod:`npixelcnn.checkpoint` and :mod:`npixelcnn.viz`,
and reports what it did. Errors a user can cause are printed as one clear line
(exit status 2 for bad input, 1 when training fails), never as a traceback.
"""

import argparse
import shlex
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError, load_checkpoint
from .data import MNISTDownloadError, load_mnist, quantize
from .files import write_json_atomically, write_npy_atomically
from .losses import nats_per_image, nats_to_bits
from .sampling import METHODS, complete, sample
from .train import (PRESETS, Trainer, TrainConfig, TrainingDiverged, evaluate, steps_for_epochs,
                    steps_for_minutes)
from .viz import plot_completions, plot_history, save_image_grid

TRAIN_EXAMPLES = """examples:
  python -m npixelcnn train                                  # recommended: small preset, 4 levels, 15 minutes
  python -m npixelcnn train --levels 4 --preset small --minutes 15 --out runs/small
  python -m npixelcnn train --preset seed --epochs 1 --batch-size 64 --lr 1e-3
  python -m npixelcnn train --levels 2 --steps 200 --out runs/binary
  python -m npixelcnn train --resume runs/small/checkpoint.npz  # continue an interrupted run
"""

EVAL_EXAMPLES = """examples:
  python -m npixelcnn eval --checkpoint checkpoints/pixelcnn_mnist4.npz
  python -m npixelcnn eval --checkpoint runs/small/checkpoint.npz --data-dir ../shared/mnist
"""


SAMPLE_EXAMPLES = """examples:
  python -m npixelcnn sample --checkpoint checkpoints/pixelcnn_mnist4.npz --n 64 --out samples.png
  python -m npixelcnn sample --checkpoint runs/small/checkpoint.npz --temperature 0.8 --seed 1 --out cold.png
  python -m npixelcnn sample --checkpoint runs/small/checkpoint.npz --n 4 --method naive --out slow.png
"""

COMPLETE_EXAMPLES = """examples:
  python -m npixelcnn complete --checkpoint checkpoints/pixelcnn_mnist4.npz --rows 14 --n 8 --out completions.png
  python -m npixelcnn complete --checkpoint runs/small/checkpoint.npz --rows 10 --samples 5 --seed 3
"""


class UsageError(Exception):
    """A problem with the user's options or files: printed as one line, exit status 2."""


def main(argv=None):
    """Entry point of ``python -m npixelcnn``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    args.command_line = "python -m npixelcnn " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        return args.run(args)
    except (UsageError, CheckpointError, MNISTDownloadError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"error: training diverged: {err}", file=sys.stderr)
        return 1


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m npixelcnn",
        description="PixelCNN in pure NumPy: train on MNIST, evaluate in bits per dimension, "
                    "sample new images and complete hidden parts of test images.",
        epilog="Run 'python -m npixelcnn COMMAND --help' for a command's options and examples.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    formatter = argparse.RawDescriptionHelpFormatter

    train = commands.add_parser(
        "train", help="train a PixelCNN on MNIST", epilog=TRAIN_EXAMPLES, formatter_class=formatter,
        description="Train a PixelCNN on quantised MNIST. Writes OUT/checkpoint.npz (updated after "
                    "every test evaluation and when the run ends, Ctrl-C included), OUT/metrics.json, "
                    "OUT/loss_curve.png and OUT/samples.png.")
    train.add_argument("--preset", choices=sorted(PRESETS), default="small",
                       help="architecture and training settings (default: small, the CPU one)")
    train.add_argument("--levels", type=int, default=4, help="intensity levels, 2 to 256 (default: 4)")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="training time budget (default: 15)")
    length.add_argument("--epochs", type=float, help="passes over the 60,000 training images")
    length.add_argument("--steps", type=int, help="number of Adam updates")
    train.add_argument("--batch-size", type=int, help="images per update (default: from the preset)")
    train.add_argument("--lr", type=float, help="peak learning rate (default: from the preset)")
    train.add_argument("--seed", type=int, default=0, help="seeds the weights and the data order (default: 0)")
    train.add_argument("--evals", type=int, default=10, help="test-set evaluations during the run (default: 10)")
    train.add_argument("--samples", type=int, default=16, help="images to sample at the end (0: none)")
    train.add_argument("--data-dir", help="folder with the MNIST .gz files (default: $NPIXELCNN_DATA or "
                                          "~/.cache/npixelcnn/mnist, downloaded if missing)")
    train.add_argument("--out", help="output folder (default: runs/PRESET-LEVELS-TIME)")
    train.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in CHECKPOINT")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    train.set_defaults(run=run_train)

    evaluate_ = commands.add_parser(
        "eval", help="test-set NLL of a checkpoint", epilog=EVAL_EXAMPLES, formatter_class=formatter,
        description="Print the NLL of a checkpoint on the 10,000 MNIST test images, in bits per "
                    "dimension and nats per image.")
    evaluate_.add_argument("--checkpoint", required=True, help="a .npz written by 'train'")
    evaluate_.add_argument("--data-dir", help="folder with the MNIST .gz files")
    evaluate_.add_argument("--batch-size", type=int, default=50, help="images per forward pass (default: 50)")
    evaluate_.set_defaults(run=run_eval)

    sample_ = commands.add_parser(
        "sample", help="draw new images from a checkpoint", epilog=SAMPLE_EXAMPLES, formatter_class=formatter,
        description="Sample images pixel by pixel; writes a PNG grid and the levels as OUT with .npy.")
    add_sampling_options(sample_)
    sample_.add_argument("--n", type=int, default=64, help="number of images (default: 64)")
    sample_.add_argument("--out", default="samples.png", help="PNG to write (default: samples.png)")
    sample_.set_defaults(run=run_sample)

    complete_ = commands.add_parser(
        "complete", help="complete test images whose bottom part is hidden", epilog=COMPLETE_EXAMPLES,
        formatter_class=formatter,
        description="Show a checkpoint the top rows of MNIST test images and sample the rest. Writes "
                    "a PNG (original | what the model sees | completions, side by side) and the "
                    "completions as OUT with .npy.")
    add_sampling_options(complete_)
    complete_.add_argument("--rows", type=int, default=14, help="rows the model sees (default: 14)")
    complete_.add_argument("--n", type=int, default=8, help="test images to complete (default: 8)")
    complete_.add_argument("--samples", type=int, default=4, help="completions per image (default: 4)")
    complete_.add_argument("--data-dir", help="folder with the MNIST .gz files")
    complete_.add_argument("--out", default="completions.png", help="PNG to write (default: completions.png)")
    complete_.set_defaults(run=run_complete)
    return parser


def add_sampling_options(parser):
    parser.add_argument("--checkpoint", required=True, help="a .npz written by 'train'")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same images (default: 0)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="below 1: sharper, less varied images; above 1: noisier (default: 1)")
    parser.add_argument("--method", choices=METHODS, default="cached",
                        help="cached (fast, default) or naive (a full forward pass per pixel)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


# -- train ------------------------------------------------------------------
def run_train(args):
    if args.resume:
        trainer, out = resume_trainer(args)
    else:
        trainer, out = new_trainer(args)
    cfg = trainer.config
    print(f"model: {trainer.model}")
    print(f"training: {cfg.total_steps} steps of batch {cfg.batch_size}, lr {cfg.lr:g}, "
          f"{cfg.levels} levels; writing to {out}/")

    def save(t):
        t.save(out / "checkpoint.npz", command=args.command_line, metrics=metrics(t))

    if trainer.state.step == 0:
        save(trainer)          # from the start there is a good checkpoint to fall back on
    started = time.perf_counter()
    try:
        trainer.run(on_checkpoint=save, progress=not args.no_progress)
    except TrainingDiverged as err:
        kept = out / "checkpoint.npz"
        raise TrainingDiverged(f"{err}. The last good checkpoint is kept: {kept}") from None
    wall = time.perf_counter() - started
    state = trainer.state
    write_json_atomically(out / "metrics.json", {
        "command": args.command_line, "config": trainer.checkpoint_meta()["train"],
        "metrics": metrics(trainer), "wall_seconds": round(wall, 1), "history": state.history})
    plot_history(state.history, out / "loss_curve.png")
    if trainer.interrupted:
        print(f"stopped by Ctrl-C at step {state.step}; resume with: "
              f"python -m npixelcnn train --resume {out / 'checkpoint.npz'}")
        return 0
    if args.samples > 0:
        images = sample(trainer.model, args.samples, shape=trainer.train_images.shape[1:], seed=cfg.seed,
                        method="cached", progress=not args.no_progress)
        write_npy_atomically(out / "samples.npy", images)
        save_image_grid(images, cfg.levels, out / "samples.png")
    bits = state.last_test_bits
    print(f"done: step {state.step}, {state.train_seconds / 60:.1f} min of training "
          f"({wall / 60:.1f} min with evaluations); test {bits:.4f} bits/dim")
    print(f"wrote {out}/checkpoint.npz, metrics.json, loss_curve.png"
          + (", samples.png" if args.samples > 0 else ""))
    return 0


def new_trainer(args):
    preset = dict(PRESETS[args.preset])
    if args.batch_size is not None:
        preset["batch_size"] = args.batch_size
    if args.lr is not None:
        preset["lr"] = args.lr
    known = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(levels=args.levels, seed=args.seed, evals=args.evals,
                         **{k: v for k, v in preset.items() if k in known})
    _check_config(config)
    train_images, test_images = load_levels(args.data_dir, config.levels)
    trainer = Trainer(config, train_images, test_images)
    if args.steps is not None:
        config.total_steps = args.steps
    elif args.epochs is not None:
        config.total_steps = steps_for_epochs(args.epochs, len(train_images), config.batch_size)
    else:
        minutes = 15.0 if args.minutes is None else args.minutes
        if not minutes > 0:
            raise UsageError(f"--minutes must be positive, got {minutes}")
        config.total_steps, per_step = steps_for_minutes(trainer, minutes)
        print(f"time budget {minutes:g} min at {per_step * 1000:.0f} ms/step: {config.total_steps} steps")
    if config.total_steps < 1:
        raise UsageError("the run must have at least one step (check --steps / --epochs)")
    out = Path(args.out or f"runs/{args.preset}-L{config.levels}-{time.strftime('%Y%m%d-%H%M%S')}")
    checkpoint = out / "checkpoint.npz"
    if checkpoint.exists():
        raise UsageError(f"{checkpoint} already exists: use --resume {checkpoint}, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    return trainer, out


def resume_trainer(args):
    overridden = [name for name in ("minutes", "epochs", "steps", "batch_size", "lr")
                  if getattr(args, name) is not None]
    if overridden:
        raise UsageError(f"--resume continues the saved run exactly; it cannot change "
                         f"{', '.join('--' + n.replace('_', '-') for n in overridden)}")
    ckpt = load_checkpoint(args.resume)
    train_images, test_images = load_levels(args.data_dir, ckpt.model.levels)
    trainer = Trainer.from_checkpoint(ckpt, train_images, test_images, args.resume)
    out = Path(args.out) if args.out else Path(args.resume).parent
    out.mkdir(parents=True, exist_ok=True)
    print(f"resuming {args.resume} at step {trainer.state.step} of {trainer.config.total_steps}")
    return trainer, out


def _check_config(config):
    if not 2 <= config.levels <= 256:
        raise UsageError(f"--levels must be between 2 and 256, got {config.levels}")
    if config.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {config.batch_size}")
    if not config.lr > 0:
        raise UsageError(f"--lr must be positive, got {config.lr}")


def load_levels(data_dir, levels):
    """Train and test MNIST as (N, 28, 28) uint8 levels."""
    train_images, _ = load_mnist("train", data_dir)
    test_images, _ = load_mnist("test", data_dir)
    return quantize(train_images, levels), quantize(test_images, levels)


def metrics(trainer):
    bits = trainer.state.last_test_bits
    return {"step": trainer.state.step, "train_seconds": round(trainer.state.train_seconds, 1),
            "test_bits_per_dim": bits,
            "test_nats_per_image": None if bits is None else nats_per_image(bits * np.log(2))}


# -- eval -------------------------------------------------------------------
def run_eval(args):
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model
    test_images, _ = load_mnist("test", args.data_dir)
    levels_images = quantize(test_images, model.levels)
    started = time.perf_counter()
    nats = evaluate(model, levels_images, batch_size=args.batch_size, progress=True)
    seconds = time.perf_counter() - started
    print(f"checkpoint: {args.checkpoint} ({model})")
    print(f"test set: {len(levels_images)} images, {model.levels} levels")
    print(f"test NLL: {nats_to_bits(nats):.4f} bits/dim = {nats:.4f} nats/dim "
          f"= {nats_per_image(nats):.2f} nats/image  ({seconds:.1f} s)")
    return 0


# -- sample and complete -----------------------------------------------------
def run_sample(args):
    model = load_checkpoint(args.checkpoint).model
    out = png_path(args.out)
    started = time.perf_counter()
    images = sample(model, args.n, temperature=args.temperature, seed=args.seed, method=args.method,
                    progress=not args.no_progress)
    seconds = time.perf_counter() - started
    write_npy_atomically(out.with_suffix(".npy"), images)
    save_image_grid(images, model.levels, out)
    print(f"sampled {args.n} images in {seconds:.1f} s ({args.method}); wrote {out} and "
          f"{out.with_suffix('.npy')}")
    return 0


def run_complete(args):
    model = load_checkpoint(args.checkpoint).model
    out = png_path(args.out)
    test_images, _ = load_mnist("test", args.data_dir)
    if not 1 <= args.n <= len(test_images):
        raise UsageError(f"--n must be between 1 and {len(test_images)}, got {args.n}")
    originals = quantize(test_images[:args.n], model.levels)
    if not 0 <= args.rows <= originals.shape[1]:
        raise UsageError(f"--rows must be between 0 and {originals.shape[1]}, got {args.rows}")
    started = time.perf_counter()
    completions = complete(model, originals, args.rows, n_samples=args.samples, temperature=args.temperature,
                           seed=args.seed, method=args.method, progress=not args.no_progress)
    seconds = time.perf_counter() - started
    write_npy_atomically(out.with_suffix(".npy"), completions)
    visible = np.zeros(originals.shape[1:], dtype=bool)
    visible[:args.rows] = True
    plot_completions(originals, visible, completions, model.levels, path=out)
    print(f"completed {args.n} test images x {args.samples} from their top {args.rows} rows in "
          f"{seconds:.1f} s ({args.method}); wrote {out} and {out.with_suffix('.npy')}")
    return 0


def png_path(out):
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must be a .png file, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
