"""``python -m npixelcnn train``: a new run from a preset, or a resumed one, once :mod:`npixelcnn.cli`
has parsed the options.

Everything that can be checked before the work is checked before it and raises
:class:`~npixelcnn.commands.UsageError` (exit status 2); a run that started and cannot go on raises
:class:`~npixelcnn.commands.RunFailed` (exit status 1). The other commands are in :mod:`npixelcnn.commands`.
"""

import inspect
import math
import time
import warnings
from pathlib import Path

import numpy as np

from .autoregressive import ARCHITECTURES
from .checkpoint import load_checkpoint
from .commands import (DATASETS, Interrupted, RunFailed, UsageError, check_dataset_dir, dataset_of, labels_to_sample,
                       load_levels)
from .config import MAX_STEPS, TrainConfig, steps_for_epochs
from .files import claim_folder, describe_os_error, write_json_atomically, write_npy_atomically
from .run_control import AbortRequested, steps_for_minutes
from .sampling import sample
from .train import Trainer, TrainingDiverged, evaluate
from .validation import check_levels
from .viz import plot_history, save_image_grid

MAX_MINUTES = 7 * 24 * 60          # a week: beyond it a budget is a typo (the probe would still run)
MAX_EPOCHS = 10_000                # far beyond any run (the steps are bounded too: config.MAX_STEPS)
# The images sampled at the end of a run are a preview (a grid in samples.png);
# 'python -m npixelcnn sample --n N' draws more.
MAX_PREVIEW_SAMPLES = 1_000
# A new run's defaults (the preset: the architecture's first); a resume takes all of them
# from its checkpoint, and refuses them as options.
NEW_RUN_DEFAULTS = dict(arch="pixelcnn", preset=None, levels=4, seed=0, evals=10, data="mnist")
TRAINING_ONLY_OPTIONS = ("minutes", "epochs", "steps", "batch_size", "lr", "ema", "output", "components",
                         "channel_coefficients", "classes", "channel_order", *NEW_RUN_DEFAULTS)


def run_train(args):
    check_train_options(args)
    ckpt = None
    if args.resume:
        ckpt = load_checkpoint(args.resume)
        args.data = dataset_of(ckpt, args.resume)          # the data set the run was trained on
    else:
        for name, value in NEW_RUN_DEFAULTS.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
        presets = ARCHITECTURES[args.arch].presets
        if args.preset is None:
            args.preset = next(iter(presets))
        elif args.preset not in presets:
            raise UsageError(f"--arch {args.arch} has the presets {sorted(presets)}, not {args.preset!r}")
        if args.classes is not None and "classes" not in inspect.signature(ARCHITECTURES[args.arch]).parameters:
            conditional = sorted(arch for arch, cls in ARCHITECTURES.items()
                                 if "classes" in inspect.signature(cls).parameters)
            raise UsageError(f"--classes: the {args.arch} architecture has no class condition; "
                             f"the architectures that have one: {', '.join(conditional)} (--arch)")
    check_dataset_dir(args.data, args.data_dir)            # before the output folder is made
    out = output_folder(args)
    with claim_folder(out):          # one run per folder, until this one ends
        check_outputs_free(args, out)
        trainer = resume_trainer(args, ckpt) if args.resume else new_trainer(args, out)
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

    data_source = str(check_dataset_dir(args.data, args.data_dir).resolve())   # where the images came from, for messages

    def save(t):
        # The data set's name: a resume, eval, sample and complete read the same data (none recorded: MNIST).
        t.save(out / "checkpoint.npz", command=args.command_line, metrics=metrics(t), data_source=data_source,
               dataset=args.data)

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
        with trainer.weights_to_use():       # the model the checkpoint holds (a conditional one: every class in turn)
            images = sample(trainer.model, args.samples, shape=trainer.train_images.shape[1:3], seed=cfg.seed,
                            method="cached", progress=not args.no_progress,
                            labels=labels_to_sample(trainer.model, args.samples))
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
    if args.channel_order is not None and DATASETS[args.data or NEW_RUN_DEFAULTS["data"]]["channels"] == 1:
        raise UsageError(f"--channel-order orders the R, G and B sub-pixels of a colour model: give it with "
                         f"colour data (--data {' or --data '.join(n for n, d in DATASETS.items() if d['channels'] > 1)}), "
                         f"not with --data {args.data or NEW_RUN_DEFAULTS['data']}")
    if args.levels is not None:
        try:
            check_levels(args.levels, "--levels")
        except ValueError as error:
            raise UsageError(str(error)) from None
    if args.components is not None and args.output != "logistic-mixture":
        raise UsageError("--components is the number of logistics of --output logistic-mixture; "
                         "give both, or neither for the softmax")
    if args.channel_coefficients and (args.output != "logistic-mixture"
                                      or DATASETS[args.data or NEW_RUN_DEFAULTS["data"]]["channels"] == 1
                                      or args.channel_order == "independent"):
        raise UsageError("--channel-coefficients move the means of G and B with R (and G) at their pixel: "
                         "give it with --output logistic-mixture, colour --data and the ordered channels")
    if args.classes is not None and args.classes < 2:
        raise UsageError(f"--classes must be at least 2 (MNIST has 10 digits, CIFAR-10 10 classes), got {args.classes}")
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
    if args.channel_coefficients:                # PixelCNN++'s linear links between a pixel's sub-pixels
        config.model["channel_coefficients"] = True
    if args.classes is not None:                 # a model of p(x | y), trained on the data set's labels
        config.model["classes"] = args.classes
    channels = DATASETS[args.data]["channels"]
    if channels > 1:                             # a colour model of R, G and B sub-pixels
        config.model["in_channels"] = channels
        if args.channel_order is not None:       # the architecture's default otherwise ("ordered")
            config.model["channel_order"] = args.channel_order
    train_images, test_images, train_labels, test_labels = load_levels(args.data_dir, config.levels, labels=True,
                                                                       dataset=args.data)
    if args.classes is not None and args.classes < int(train_labels.max()) + 1:
        raise UsageError(f"--classes {args.classes}: {DATASETS[args.data]['title']}'s labels go up to "
                         f"{int(train_labels.max())}; give at least {int(train_labels.max()) + 1}")
    conditional = args.classes is not None
    trainer = Trainer(config, train_images, test_images, parallel=True,
                      train_labels=train_labels if conditional else None,
                      test_labels=test_labels if conditional else None)
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
    labels = None if trainer.test_labels is None else trainer.test_labels[:probe_images]
    started = time.perf_counter()
    evaluate(trainer.model, probe, parallel=trainer.parallel, labels=labels)
    return (time.perf_counter() - started) * len(trainer.test_images) / len(probe)


def resume_trainer(args, ckpt):
    train_images, test_images, train_labels, test_labels = load_levels(args.data_dir, ckpt.model.levels,
                                                                       labels=True, dataset=args.data)
    conditional = ckpt.model.classes is not None
    with warnings.catch_warnings(record=True) as caught:      # a file that does not record its data
        warnings.simplefilter("always")
        trainer = Trainer.from_checkpoint(ckpt, train_images, test_images, args.resume, parallel=True,
                                          train_labels=train_labels if conditional else None,
                                          test_labels=test_labels if conditional else None)
    for warning in caught:
        print(f"warning: {warning.message}")
    print(f"resuming {args.resume} at step {trainer.state.step} of {trainer.config.total_steps}")
    return trainer


def metrics(trainer):
    bits = trainer.state.last_test_bits
    return {"step": trainer.state.step, "train_seconds": round(trainer.state.train_seconds, 1),
            "test_bits_per_dim": bits,
            "test_nats_per_image": None if bits is None else bits * np.log(2) * trainer.test_images[0].size}
