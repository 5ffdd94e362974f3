"""The command line: ``python -m npixelcnn train | eval | sample | complete | classify``.

This module parses the options and reports errors; what each command does is
in :mod:`npixelcnn.commands`, a thin layer over the library (training,
checkpoints, sampling, plots). Errors a user can cause are printed as one clear line,
never as a traceback: exit status 2 when the command cannot start (a bad
option, a file that is not a checkpoint, a folder it cannot write), 1 when a
run that started fails (the loss diverged, the disk filled up), 130 when
Ctrl-C stopped it. Everything that can be checked before the work is checked
before it.
"""

import argparse
import shlex
import shutil
import sys
from pathlib import Path

from . import ops
from .autoregressive import ARCHITECTURES
from .checkpoint import CheckpointError
from .commands import (DATASETS, Interrupted, RunFailed, UsageError, run_classify, run_complete, run_eval,
                       run_sample)
from .train_command import run_train
from .download import DownloadError
from .distributions import DEFAULT_COMPONENTS, OUTPUTS
from .masks import CHANNEL_ORDERS
from .files import FolderInUseError, describe_os_error
from .sampling import METHODS
from .train import TrainingDiverged

TRAIN_EXAMPLES = """examples:
  python -m npixelcnn train                                  # recommended: PixelCNN small, 4 levels, 15 minutes
  python -m npixelcnn train --levels 4 --preset small --minutes 15 --out runs/small
  python -m npixelcnn train --preset seed --epochs 1 --batch-size 64 --lr 1e-3
  python -m npixelcnn train --levels 2 --steps 200 --out runs/binary
  python -m npixelcnn train --arch gated --preset medium --minutes 120 --out runs/gated
  python -m npixelcnn train --arch gated --classes 10 --out runs/conditional   # p(x | digit)
  python -m npixelcnn train --data colour-mnist --arch gated --out runs/colour  # R, G, B sub-pixels
  python -m npixelcnn train --data colour-mnist --channel-order independent --out runs/independent
  python -m npixelcnn train --resume runs/small/checkpoint.npz  # continue an interrupted run

--minutes counts training time only: the test evaluations (--evals) come on top,
and the run prints its estimate of the whole before it starts. The run checks the
clock as it goes and ends when the budget is spent; --steps gives a fixed length.
"""

EVAL_EXAMPLES = """examples:
  python -m npixelcnn eval --checkpoint checkpoints/pixelcnn_mnist4.npz
  python -m npixelcnn eval --checkpoint runs/small/checkpoint.npz --data-dir ../shared/mnist
"""


SAMPLE_EXAMPLES = """examples:
  python -m npixelcnn sample --checkpoint checkpoints/pixelcnn_mnist4.npz --n 64 --out samples.png
  python -m npixelcnn sample --checkpoint runs/small/checkpoint.npz --temperature 0.8 --seed 1 --out cold.png
  python -m npixelcnn sample --checkpoint runs/small/checkpoint.npz --n 4 --method naive --out slow.png
  python -m npixelcnn sample --checkpoint checkpoints/gated_mnist4_conditional.npz --labels 0-9 --n 8   # a row per digit
  python -m npixelcnn sample --checkpoint checkpoints/gated_mnist4_conditional.npz --labels 3 --n 16
"""

COMPLETE_EXAMPLES = """examples:
  python -m npixelcnn complete --checkpoint checkpoints/pixelcnn_mnist4.npz --rows 14 --n 8 --out completions.png
  python -m npixelcnn complete --checkpoint runs/small/checkpoint.npz --rows 10 --samples 5 --seed 3
  python -m npixelcnn complete --checkpoint checkpoints/gated_mnist4_conditional.npz --labels 0-9 --n 2
"""

CLASSIFY_EXAMPLES = """examples:
  python -m npixelcnn classify --checkpoint checkpoints/gated_mnist4_conditional.npz
  python -m npixelcnn classify --checkpoint runs/conditional/checkpoint.npz --n 1000 --prior train
  python -m npixelcnn classify --checkpoint checkpoints/gated_mnist4_conditional.npz --rows 14   # from the top half
"""


INTERRUPTED = 130                    # the exit status for Ctrl-C: 128 + SIGINT, as a shell reports it


def main(argv=None):
    """Entry point of ``python -m npixelcnn``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    args.command_line = "python -m npixelcnn " + shlex.join(sys.argv[1:] if argv is None else argv)
    before = output_stamps(args)
    try:
        # A command does the work of a user's run: the fast twins of the operations are on
        # (npixelcnn.ops), and training and evaluation split each batch over the cores.
        with ops.fast():
            return args.run(args)
    except KeyboardInterrupt:
        pass                         # reported below, once the traceback and the progress bar it holds are gone
    except Interrupted as err:       # Ctrl-C in a training run that started: the message names the checkpoint kept
        return fail(err, INTERRUPTED)
    except (UsageError, CheckpointError, DownloadError, FolderInUseError, ValueError) as err:
        return fail(err, 2)
    except OSError as err:           # a folder that is a file, read-only, missing, ...
        return fail(describe_os_error(err), 2)
    except MemoryError as err:
        return fail(f"not enough memory for this command ({err}); ask for less: fewer images "
                    f"(--n, --samples) or a smaller --batch-size", 2)
    except RunFailed as err:
        return fail(err, 1)
    except TrainingDiverged as err:
        return fail(f"training diverged: {err}", 1)
    # Ctrl-C. Leaving the except clause freed the interrupted frames, and with them the
    # progress bar, which has now closed its line on stderr: the error gets a line of its own.
    # A Ctrl-C inside tqdm's own drawing can leave the bar's line unfinished; on a terminal,
    # clear that line as tqdm does (spaces, no escape codes).
    if getattr(sys.stderr, "isatty", lambda: False)():
        sys.stderr.write("\r" + " " * (shutil.get_terminal_size().columns - 1) + "\r")
    return fail(interrupted(args.command, before), INTERRUPTED)


def output_stamps(args):
    """The files sample and complete write (OUT.npy, then OUT), each with its stamp now."""
    if args.command not in ("sample", "complete"):
        return {}
    out = Path(args.out)
    paths = (out.with_suffix(".npy"), out)
    if args.command == "sample" and args.labels is not None:
        paths = (out.with_suffix(".npy"), out.with_name(out.stem + "_labels.npy"), out)
    return {path: stamp(path) for path in paths}


def stamp(path):
    """Inode and mtime of ``path`` (None if absent): an atomic write's rename changes the inode."""
    try:
        status = path.stat()
    except (OSError, ValueError):    # absent, or a name no file can have
        return None
    return status.st_ino, status.st_mtime_ns


def interrupted(command, before):
    """The line for Ctrl-C: which of the files stamped ``before`` were written since.

    Every file is written whole or not at all (npixelcnn.files), so a file is
    either new and complete or as it was. A Ctrl-C that reaches here in train
    came before its training loop: in the loop the first one saves and ends the
    run (exit 0), and a second one is :class:`Interrupted`.
    """
    if command == "train":
        return "interrupted by Ctrl-C before training started; no checkpoint was written"
    written = [str(path) for path, old in before.items() if stamp(path) != old]
    missing = [str(path) for path, old in before.items() if stamp(path) == old]
    if not written:
        return "interrupted by Ctrl-C; nothing was written"
    return (f"interrupted by Ctrl-C after writing {' and '.join(written)}"
            + (f"; {' and '.join(missing)} was not written" if missing else ""))


def fail(message, status):
    """Print 'error: ...' on stderr and return the exit status."""
    print(f"error: {message}", file=sys.stderr)
    return status


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
        "train", help="train a model (PixelCNN or Gated PixelCNN) on MNIST", epilog=TRAIN_EXAMPLES,
        formatter_class=formatter,
        description="Train a model of the PixelCNN family on quantised MNIST. Writes OUT/checkpoint.npz (updated after "
                    "every test evaluation and when the run ends, Ctrl-C included), OUT/metrics.json, "
                    "OUT/loss_curve.png and OUT/samples.png.")
    train.add_argument("--arch", choices=sorted(ARCHITECTURES),
                       help="the model: pixelcnn (van den Oord et al. 2016a, the seed's model; default) or "
                            "gated (the Gated PixelCNN of 2016b: no blind spot)")
    train.add_argument("--preset", choices=sorted({p for cls in ARCHITECTURES.values() for p in cls.presets}),
                       help="the architecture's size and training settings (default: its first); "
                            + "; ".join(f"{arch}: {', '.join(cls.presets)}" for arch, cls in ARCHITECTURES.items()
                                        if cls.presets))
    train.add_argument("--levels", type=int, help="intensity levels, 2 to 256 (default: 4)")
    train.add_argument("--output", choices=sorted(OUTPUTS),
                       help="the distribution of each pixel: softmax (one logit per level; default) or "
                            "logistic-mixture (PixelCNN++'s discretized mixture of logistics, 3 numbers "
                            "per component whatever the levels)")
    train.add_argument("--components", type=int, metavar="K",
                       help=f"logistics in the mixture of --output logistic-mixture (default: {DEFAULT_COMPONENTS})")
    train.add_argument("--channel-coefficients", action="store_true", default=None,
                       help="with --output logistic-mixture and colour --data: PixelCNN++'s channel "
                            "coefficients, the means of G and B moving linearly with the values of R "
                            "(and G) at their pixel (default: off)")
    train.add_argument("--classes", type=int, metavar="K",
                       help="a class-conditional model of p(x | digit), trained with MNIST's labels: 10 for "
                            "the digits (gated only; default: none, a model of p(x))")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float,
                        help="budget of training time only, in minutes (default: 15), kept by the "
                             "clock as the run goes; the test evaluations come on top")
    length.add_argument("--epochs", type=float, help="passes over the 60,000 training images")
    length.add_argument("--steps", type=int, help="number of Adam updates")
    train.add_argument("--batch-size", type=int, help="images per update (default: from the preset)")
    train.add_argument("--lr", type=float, help="peak learning rate (default: from the preset)")
    train.add_argument("--ema", type=float, metavar="DECAY",
                       help="keep a moving average of the weights with this decay (e.g. 0.9995) and "
                            "evaluate, sample and save it as the model (default: none)")
    train.add_argument("--seed", type=int, help="seeds the weights and the data order (default: 0)")
    train.add_argument("--evals", type=int, help="test-set evaluations, evenly spread, the last at the "
                                                 "end (default: 10)")
    train.add_argument("--samples", type=int, default=16, help="images to sample at the end (0: none)")
    train.add_argument("--data", choices=list(DATASETS),
                       help="the images: mnist (grey, default), colour-mnist (MNIST's digits in two colours, "
                            "made from MNIST's files) or cifar10 (32x32 photographs); colour data trains a "
                            "colour model of R, G and B sub-pixels (in_channels=3)")
    train.add_argument("--channel-order", choices=CHANNEL_ORDERS,
                       help="a colour model's sub-pixels: ordered (G reads R, B reads R and G at the same "
                            "pixel; default) or independent (the baseline without those connections); "
                            "colour --data only")
    train.add_argument("--data-dir", help="folder with the data set's files: MNIST's .gz files for mnist and "
                                          "colour-mnist (default: $NPIXELCNN_DATA or ~/.cache/npixelcnn/mnist), "
                                          "CIFAR-10's .bin files for cifar10 (default: $NPIXELCNN_CIFAR10_DATA or "
                                          "~/.cache/npixelcnn/cifar-10); downloaded if missing")
    train.add_argument("--out", help="output folder (default: runs/ARCH-PRESET-LLEVELS-TIME)")
    train.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in CHECKPOINT "
                                                              "(in its folder, or in --out)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the files of this command's outputs (checkpoint.npz, metrics.json, "
                            "loss_curve.png, samples.*) already in the output folder; without it a run "
                            "refuses a folder holding files it did not write")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    train.set_defaults(run=run_train)

    evaluate_ = commands.add_parser(
        "eval", help="test-set NLL of a checkpoint", epilog=EVAL_EXAMPLES, formatter_class=formatter,
        description="Print the NLL of a checkpoint on the 10,000 MNIST test images, in bits per "
                    "dimension and nats per image.")
    evaluate_.add_argument("--checkpoint", required=True, help="a .npz written by 'train'")
    evaluate_.add_argument("--data-dir", help="folder with the files of the data set the checkpoint "
                                              "was trained on (MNIST's .gz files for mnist and colour-mnist)")
    evaluate_.add_argument("--batch-size", type=int, default=50, help="images per forward pass (default: 50)")
    evaluate_.set_defaults(run=run_eval)

    sample_ = commands.add_parser(
        "sample", help="draw new images from a checkpoint", epilog=SAMPLE_EXAMPLES, formatter_class=formatter,
        description="Sample images pixel by pixel; writes a PNG grid and the levels as OUT with .npy.")
    add_sampling_options(sample_)
    sample_.add_argument("--n", type=int, default=64,
                         help="number of images (default: 64); with --labels, images of each class")
    sample_.add_argument("--labels", metavar="CLASSES",
                         help="a class-conditional model's classes to draw, as 3, 0-9 or 1,4,7 (required "
                              "for such a model): --n images of each, a row per class")
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
    complete_.add_argument("--labels", metavar="CLASSES",
                           help="a class-conditional model's classes, as 3, 0-9 or 1,4,7 (required for "
                                "such a model): every image completed as each of them, a row per class")
    complete_.add_argument("--data-dir", help="folder with the files of the data set the checkpoint "
                                              "was trained on (MNIST's .gz files for mnist and colour-mnist)")
    complete_.add_argument("--out", default="completions.png", help="PNG to write (default: completions.png)")
    complete_.set_defaults(run=run_complete)

    classify_ = commands.add_parser(
        "classify", help="a class-conditional checkpoint as a classifier, by Bayes' rule",
        epilog=CLASSIFY_EXAMPLES, formatter_class=formatter,
        description="Score every MNIST test image once per class, log p(x | y), and pick the class of "
                    "highest p(y | x) = p(x | y) p(y) / p(x). Prints the accuracy and the confusion matrix.")
    classify_.add_argument("--checkpoint", required=True, help="a .npz of a class-conditional model")
    classify_.add_argument("--n", type=int, help="the first N test images (default: all 10,000)")
    classify_.add_argument("--prior", choices=("uniform", "train"), default="uniform",
                           help="p(y): uniform (default) or each digit's share of the training set")
    classify_.add_argument("--rows", type=int,
                           help="classify from the top ROWS rows only: p(y | top rows) (default: whole images)")
    classify_.add_argument("--batch-size", type=int, default=50, help="images per forward pass (default: 50)")
    classify_.add_argument("--data-dir", help="folder with the files of the data set the checkpoint "
                                              "was trained on (MNIST's .gz files for mnist and colour-mnist)")
    classify_.add_argument("--out", help="also draw the confusion matrix into this PNG")
    classify_.set_defaults(run=run_classify)
    return parser


def add_sampling_options(parser):
    parser.add_argument("--checkpoint", required=True, help="a .npz written by 'train'")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same images (default: 0)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="below 1: sharper, less varied images; above 1: noisier (default: 1)")
    parser.add_argument("--method", choices=METHODS, default="cached",
                        help="cached (the fast cached sampler, default), plain-cached (the same draws by "
                             "the readable cached sampler) or naive (a full forward pass per pixel)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


if __name__ == "__main__":
    sys.exit(main())
