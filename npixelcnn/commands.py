"""What each command of ``python -m npixelcnn`` does, once :mod:`npixelcnn.cli` has parsed it.

``run_train``, ``run_eval``, ``run_sample`` and ``run_complete`` take the
parsed options. Everything that can be checked before the work is checked
before it, and raises :class:`UsageError` (exit status 2); a run that started
and cannot go on raises :class:`RunFailed` (exit status 1).
"""

import math
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .autoregressive import ARCHITECTURES
from .checkpoint import load_checkpoint
from .config import MAX_STEPS, TrainConfig, steps_for_epochs
from .data import check_data_dir, load_mnist, quantize
from .files import check_writable_folder, claim_folder, describe_os_error, write_json_atomically, write_npy_atomically
from .losses import nats_per_image, nats_to_bits
from .sampling import complete, sample
from .run_control import AbortRequested, steps_for_minutes
from .train import Trainer, TrainingDiverged, evaluate
from .validation import check_levels
from .viz import plot_completions, plot_history, save_image_grid


class UsageError(Exception):
    """A problem with the user's options or files: printed as one line, exit status 2."""


class RunFailed(Exception):
    """A run that started could not go on (e.g. its folder could no longer be written): exit status 1."""


class Interrupted(Exception):
    """A second Ctrl-C aborted a training run without saving; the message names the checkpoint kept.
    Exit status 130, as for any command stopped by Ctrl-C."""


MAX_MINUTES = 7 * 24 * 60          # a week: beyond it a budget is a typo (the probe would still run)
MAX_EPOCHS = 10_000                # far beyond any run (the steps are bounded too: config.MAX_STEPS)
# The images sampled at the end of a run are a preview (a grid in samples.png);
# 'python -m npixelcnn sample --n N' draws more.
MAX_PREVIEW_SAMPLES = 1_000
# A new run's defaults (the preset: the architecture's first); a resume takes all of them
# from its checkpoint, and refuses them as options.
NEW_RUN_DEFAULTS = dict(arch="pixelcnn", preset=None, levels=4, seed=0, evals=10)
TRAINING_ONLY_OPTIONS = ("minutes", "epochs", "steps", "batch_size", "lr", "ema", "output", "components",
                         *NEW_RUN_DEFAULTS)



# -- train ------------------------------------------------------------------
def run_train(args):
    check_train_options(args)
    if not args.resume:
        for name, value in NEW_RUN_DEFAULTS.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
        presets = ARCHITECTURES[args.arch].presets
        if args.preset is None:
            args.preset = next(iter(presets))
        elif args.preset not in presets:
            raise UsageError(f"--arch {args.arch} has the presets {sorted(presets)}, not {args.preset!r}")
    out = output_folder(args)
    with claim_folder(out):          # one run per folder, until this one ends
        check_outputs_free(args, out)
        trainer = resume_trainer(args, out) if args.resume else new_trainer(args, out)
        try:
            return train_and_report(args, trainer, out)
        except KeyboardInterrupt as err:
            # In the loop the first Ctrl-C only asks for a save: a second one aborts it
            # (AbortRequested). Outside it, while saving or sampling, any Ctrl-C stops at once.
            checkpoint = out / "checkpoint.npz"
            kept = (f"the last checkpoint written is kept: {checkpoint}" if checkpoint.exists()
                    else "no checkpoint had been written")
            how = (f"aborted by {err} without saving" if isinstance(err, AbortRequested)
                   else "interrupted by Ctrl-C")
            raise Interrupted(f"{how}; {kept}") from None
        except OSError as err:
            checkpoint = out / "checkpoint.npz"
            kept = (f"The last checkpoint written is kept: {checkpoint}" if checkpoint.exists()
                    else "No checkpoint could be written")
            raise RunFailed(f"could not write to {out}: {describe_os_error(err)}. {kept}") from None


def train_and_report(args, trainer, out):
    cfg = trainer.config
    print(f"model: {trainer.model}")
    print(f"data: {len(trainer.train_images):,} training and {len(trainer.test_images):,} test images")
    print(f"training: {cfg.total_steps} steps of batch {cfg.batch_size}, lr {cfg.lr:g}, "
          f"{cfg.levels} levels; writing to {out}/")

    data_source = str(check_data_dir(args.data_dir).resolve())      # where the images came from, for messages

    def save(t):
        t.save(out / "checkpoint.npz", command=args.command_line, metrics=metrics(t), data_source=data_source)

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
        how = "Ctrl-C (SIGINT)" if trainer.stopped_by == "SIGINT" else trainer.stopped_by
        print(f"stopped by {how} at step {state.step}; resume with: "
              f"python -m npixelcnn train --resume {out / 'checkpoint.npz'}")
        return 0
    if args.samples > 0:
        with trainer.weights_to_use():       # the model the checkpoint holds
            images = sample(trainer.model, args.samples, shape=trainer.train_images.shape[1:], seed=cfg.seed,
                            method="cached", progress=not args.no_progress)
        write_npy_atomically(out / "samples.npy", images)
        save_image_grid(images, cfg.levels, out / "samples.png")
    bits = state.last_test_bits
    print(f"done: step {state.step}, {state.train_seconds / 60:.1f} min of training "
          f"({wall / 60:.1f} min with evaluations); test {bits:.4f} bits/dim")
    uniform = math.log2(cfg.levels)
    if bits >= uniform:
        print(f"warning: {bits:.4f} bits/dim is no better than a uniform guess ({uniform:g} bits/dim): "
              f"the model has not learnt; try another --lr or a longer run")
    print(f"wrote {out}/checkpoint.npz, metrics.json, loss_curve.png"
          + (", samples.png" if args.samples > 0 else ""))
    return 0


def check_train_options(args):
    """Every option that can be checked before any work, checked (UsageError otherwise)."""
    if args.resume:
        given = [name for name in TRAINING_ONLY_OPTIONS if getattr(args, name) is not None]
        if given:
            raise UsageError(f"--resume continues the saved run exactly; it cannot change "
                             f"{', '.join('--' + n.replace('_', '-') for n in given)}")
    if args.resume and not Path(args.resume).is_file():
        raise UsageError(f"no checkpoint at {args.resume}")
    check_data_dir(args.data_dir, "--data-dir")        # before the output folder is made
    if args.levels is not None:
        try:
            check_levels(args.levels, "--levels")
        except ValueError as error:
            raise UsageError(str(error)) from None
    if args.components is not None and args.output != "logistic-mixture":
        raise UsageError("--components is the number of logistics of --output logistic-mixture; "
                         "give both, or neither for the softmax")
    if args.components is not None and args.components < 1:
        raise UsageError(f"--components must be at least 1, got {args.components}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be positive and finite, got {args.lr}")
    if args.ema is not None and not 0 < args.ema < 1:
        raise UsageError(f"--ema is the weight average's decay, a number between 0 and 1 such as "
                         f"0.9995, got {args.ema}")
    if args.minutes is not None and not 0 < args.minutes <= MAX_MINUTES:
        raise UsageError(f"--minutes must be a number of minutes between 0 and {MAX_MINUTES} (a week), "
                         f"got {args.minutes}")
    if args.epochs is not None and not 0 < args.epochs <= MAX_EPOCHS:
        raise UsageError(f"--epochs must be a number of passes between 0 and {MAX_EPOCHS:,}, got {args.epochs}")
    if args.steps is not None and not 1 <= args.steps <= MAX_STEPS:
        raise UsageError(f"--steps must be between 1 and {MAX_STEPS:,} (days of training even for the "
                         f"smallest model), got {args.steps}")
    if args.evals is not None and args.evals < 1:
        raise UsageError(f"--evals must be at least 1, got {args.evals}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, got {args.seed}")
    if not 0 <= args.samples <= MAX_PREVIEW_SAMPLES:
        raise UsageError(f"--samples (images sampled at the end of the run) must be between 0 and "
                         f"{MAX_PREVIEW_SAMPLES:,}, got {args.samples}; to draw more, use "
                         f"'python -m npixelcnn sample --n N' on the checkpoint")


# What a run writes in its folder (samples.* only when it samples at the end).
RUN_OUTPUTS = ("checkpoint.npz", "metrics.json", "loss_curve.png")
SAMPLE_OUTPUTS = ("samples.png", "samples.npy")


def check_outputs_free(args, out):
    """A run replaces only its own files: a new run (or a resume into another folder) is refused
    when ``out`` already holds any file it would write, unless ``--overwrite`` says to replace them."""
    if args.overwrite:
        return
    if args.resume and _same_folder(Path(args.resume).parent, out):
        return                                   # the resumed run's own folder: its own files
    names = RUN_OUTPUTS + (SAMPLE_OUTPUTS if args.samples > 0 else ())
    present = [name for name in names if (out / name).exists()]
    if not present:
        return
    checkpoint = out / "checkpoint.npz"
    if args.resume and checkpoint.exists():
        raise UsageError(f"{out} already holds another run's checkpoint ({checkpoint}); resuming "
                         f"{args.resume} there would replace it. Choose another --out, or add --overwrite")
    if checkpoint.exists():
        raise UsageError(f"{checkpoint} already exists: use --resume {checkpoint}, another --out, "
                         f"or --overwrite to start a new run over it")
    raise UsageError(f"{out} already holds {', '.join(present)}, which this run would replace; "
                     f"choose another --out, or add --overwrite to replace them")


def _same_folder(a, b):
    try:
        return a.samefile(b)
    except OSError:             # one of them does not exist
        return False


def output_folder(args):
    """The run's folder: --out, else the resumed checkpoint's folder, else runs/ARCH-PRESET-LLEVELS-TIME."""
    if args.out:
        return Path(args.out)
    if args.resume:
        return Path(args.resume).parent
    return Path(f"runs/{args.arch}-{args.preset}-L{args.levels}-{time.strftime('%Y%m%d-%H%M%S')}")


def new_trainer(args, out):
    chosen = {name: getattr(args, name) for name in ("batch_size", "lr", "ema") if getattr(args, name) is not None}
    config = TrainConfig.from_preset(args.arch, args.preset, levels=args.levels, seed=args.seed,
                                     evals=args.evals, **chosen)
    if args.output is not None:                  # the preset's output otherwise (the softmax)
        config.model["output"] = args.output
    if args.components is not None:
        config.model["components"] = args.components
    train_images, test_images = load_levels(args.data_dir, config.levels)
    trainer = Trainer(config, train_images, test_images, parallel=True)
    if args.steps is not None:
        config.total_steps = args.steps
    elif args.epochs is not None:
        config.total_steps = steps_for_epochs(args.epochs, len(train_images), config.batch_size)
        if config.total_steps < 1:
            raise UsageError(f"--epochs {args.epochs:g} gives no full batch of {config.batch_size} "
                             f"from {len(train_images):,} images; ask for more epochs or use --steps")
        if config.total_steps > MAX_STEPS:
            raise UsageError(f"--epochs {args.epochs:g} is {config.total_steps:,} steps of batch "
                             f"{config.batch_size}, more than {MAX_STEPS:,}; ask for fewer epochs")
    else:
        minutes = 15.0 if args.minutes is None else args.minutes
        config.total_steps, per_step = steps_for_minutes(trainer, minutes)
        config.minutes = minutes
        evaluation = seconds_per_evaluation(trainer)
        total = minutes + config.evals * evaluation / 60
        print(f"time budget {minutes:g} min of training time only, at {per_step * 1000:.0f} ms/step: "
              f"about {config.total_steps} steps (checked against the clock as the run goes); the "
              f"{config.evals} test evaluations come on top (about {evaluation:.0f} s each): "
              f"about {total:.0f} min in all")
    return trainer


def seconds_per_evaluation(trainer, probe_images=100):
    """Estimated seconds for one test-set evaluation, from timing a few test images."""
    probe = trainer.test_images[:probe_images]
    started = time.perf_counter()
    evaluate(trainer.model, probe, parallel=trainer.parallel)
    return (time.perf_counter() - started) * len(trainer.test_images) / len(probe)


def resume_trainer(args, out):
    ckpt = load_checkpoint(args.resume)
    train_images, test_images = load_levels(args.data_dir, ckpt.model.levels)
    with warnings.catch_warnings(record=True) as caught:      # a file that does not record its data
        warnings.simplefilter("always")
        trainer = Trainer.from_checkpoint(ckpt, train_images, test_images, args.resume, parallel=True)
    for warning in caught:
        print(f"warning: {warning.message}")
    print(f"resuming {args.resume} at step {trainer.state.step} of {trainer.config.total_steps}")
    return trainer


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
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    check_data_dir(args.data_dir, "--data-dir")
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model
    test_images, _ = load_mnist("test", args.data_dir)
    levels_images = quantize(test_images, model.levels)
    started = time.perf_counter()
    nats = evaluate(model, levels_images, batch_size=args.batch_size, progress=True, parallel=True)
    seconds = time.perf_counter() - started
    print(f"checkpoint: {args.checkpoint} ({model})")
    print(f"test set: {len(levels_images)} images, {model.levels} levels")
    print(f"test NLL: {nats_to_bits(nats):.4f} bits/dim = {nats:.4f} nats/dim "
          f"= {nats_per_image(nats):.2f} nats/image  ({seconds:.1f} s)")
    return 0


# -- sample and complete -----------------------------------------------------
def run_sample(args):
    check_sampling_options(args)
    model = load_checkpoint(args.checkpoint).model
    out = png_path(args.out)
    started = time.perf_counter()
    images = sample(model, args.n, temperature=args.temperature, seed=args.seed, method=args.method,
                    progress=not args.no_progress)
    seconds = time.perf_counter() - started
    with failing_write(out):
        write_npy_atomically(out.with_suffix(".npy"), images)
        save_image_grid(images, model.levels, out)
    print(f"sampled {args.n} images in {seconds:.1f} s ({args.method}); wrote {out} and "
          f"{out.with_suffix('.npy')}")
    return 0


def run_complete(args):
    check_sampling_options(args)
    if args.samples < 1:
        raise UsageError(f"--samples (completions per image) must be at least 1, got {args.samples}")
    if args.rows < 0:
        raise UsageError(f"--rows must be 0 or more, got {args.rows}")
    check_data_dir(args.data_dir, "--data-dir")
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
    visible = np.zeros(originals.shape[1:], dtype=bool)
    visible[:args.rows] = True
    with failing_write(out):
        write_npy_atomically(out.with_suffix(".npy"), completions)
        plot_completions(originals, visible, completions, model.levels, path=out)
    print(f"completed {args.n} test images x {args.samples} from their top {args.rows} rows in "
          f"{seconds:.1f} s ({args.method}); wrote {out} and {out.with_suffix('.npy')}")
    return 0


@contextmanager
def failing_write(out):
    """The work is done and only its files are left to write: an OSError now (a full disk) is a run
    that failed (exit status 1), not an option to fix."""
    try:
        yield
    except OSError as err:
        raise RunFailed(f"could not write {out} and {out.with_suffix('.npy')}: {describe_os_error(err)}") from None


def check_sampling_options(args):
    """The options 'sample' and 'complete' share, checked before the checkpoint is read."""
    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, got {args.seed}")
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        raise UsageError(f"--temperature must be a finite number > 0, got {args.temperature}")


def png_path(out):
    """--out checked before the sampling: a .png name, not a folder, in a folder that can be written."""
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; name a .png file, e.g. {out / 'samples.png'}")
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must be a .png file, got {out}")
    check_writable_folder(out.parent)
    return out
