"""Compare training configurations at an equal time budget (how the `small` preset was chosen).

Each configuration trains for --minutes on this machine with its own warmup and cosine
schedule and a budget kept by the clock (as `train --minutes` does: a first estimate from
timing 20 steps, then the end moves with the run's own speed), then is scored on the first
--test-images test images.

    python benchmarks/equal_time_sweep.py --minutes 3 32,5,64,16,6e-3 32,5,64,32,3e-3
    python benchmarks/equal_time_sweep.py --minutes 3 pixelcnn:32,5,64,16,6e-3 gated:32,6,64,16,6e-3
    python benchmarks/equal_time_sweep.py --minutes 12 gated:32,10,64,16,4e-3,5

Each configuration is [ARCH:]width,depth,head,batch,lr[,kernel]: width is a PixelCNN's hidden
(the default ARCH) or a Gated PixelCNN's channels ("gated"), depth its residual blocks or its
gated layers, and
kernel the gated layers' kernel size (3 if left out; the PixelCNN's are fixed).

Or a preset with settings changed, [ARCH:]PRESET[,NAME=VALUE...], where NAME is a model
setting of the architecture (output, components, dilations as 1/2/4, ...) or a training
setting of TrainConfig (batch_size, lr, warmup_steps, ema):

    python benchmarks/equal_time_sweep.py --minutes 15 --levels 256 --test-images 10000 \
        pixelcnn:small pixelcnn:small,output=logistic-mixture,components=5,lr=2e-3

A configuration with classes=K (gated only) trains a class-conditional model on MNIST's labels
and is scored given the true labels, -log p(x | y):

    python benchmarks/equal_time_sweep.py --minutes 30 --test-images 10000 gated:medium-k5 gated:medium-k5,classes=10

Prints one JSON line per configuration.
"""

import argparse
import json
import os

# Before NumPy loads: OpenBLAS's threads stop spinning soon after each product,
# which frees the cores for npixelcnn's threaded element-wise work (docs/results.md, "Where the time goes").
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import npixelcnn as npc  # noqa: E402
from npixelcnn.config import TrainConfig  # noqa: E402
from npixelcnn.run_control import steps_for_minutes  # noqa: E402
from npixelcnn.train import Trainer  # noqa: E402


TRAINING_SETTINGS = {"batch_size": int, "lr": float, "warmup_steps": int, "ema": float}


def parse_value(text):
    """A setting's value from its text: an int, a float, a list of ints ("1/2/4") or a string."""
    if "/" in text:
        return [int(part) for part in text.split("/")]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_preset_config(arch, preset, changes, levels):
    """A TrainConfig from a preset's name and NAME=VALUE changes; ValueError if malformed."""
    config = TrainConfig.from_preset(arch, preset, levels=levels, evals=1)
    for change in changes:
        name, equals, text = change.partition("=")
        if not equals:
            raise ValueError(f"expected NAME=VALUE after the preset, got {change!r}")
        if name in TRAINING_SETTINGS:
            setattr(config, name, TRAINING_SETTINGS[name](text))
        else:
            config.model[name] = parse_value(text)
    npc.build_model(config.arch, config.model_settings())     # a bad setting is refused now
    return config


def parse_config(spec, levels):
    """A TrainConfig from "[ARCH:]hidden,depth,head,batch,lr[,kernel]" or
    "[ARCH:]PRESET[,NAME=VALUE...]"; ValueError if malformed."""
    arch, _, numbers = spec.rpartition(":")
    first, *changes = numbers.split(",")
    if first in npc.ARCHITECTURES[arch or "pixelcnn"].presets:
        return parse_preset_config(arch or "pixelcnn", first, changes, levels)
    fields = numbers.split(",")
    if len(fields) not in (5, 6):
        raise ValueError(f"expected hidden,depth,head,batch,lr[,kernel], got {len(fields)} fields")
    hidden, depth, head, batch, lr, *kernel = fields
    model = {"channels" if arch == "gated" else "hidden": int(hidden), "head": int(head),
             "layers" if arch == "gated" else "blocks": int(depth)}
    if kernel:                                      # else TrainConfig's default kernel size
        if arch != "gated":
            raise ValueError("only a gated configuration takes a kernel size")
        model["kernel_size"] = int(kernel[0])
    return TrainConfig(levels=levels, arch=arch or "pixelcnn", model=model,
                       batch_size=int(batch), lr=float(lr), warmup_steps=100, evals=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", help="[pixelcnn:|gated:]hidden,depth,head,batch,lr[,kernel] "
                                                   "or [pixelcnn:|gated:]PRESET[,NAME=VALUE...]")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--save-dir", default=None,
                        help="save each trained model there, as CONFIG.npz (the configuration with / and : replaced)")
    args = parser.parse_args()
    npc.ops.use_fast(True)                          # as the CLI trains
    configs = []  # every configuration checked before any trains: a typo in the last one costs nothing
    for spec in args.configs:
        try:
            configs.append((spec, parse_config(spec, args.levels)))
        except ValueError as error:
            parser.error(f"{spec}: {error}")
    train_images, train_labels = npc.load_mnist("train", args.data_dir)
    test_images, test_labels = npc.load_mnist("test", args.data_dir)
    train_images = npc.quantize(train_images, args.levels)
    test_images, test_labels = npc.quantize(test_images, args.levels)[:args.test_images], test_labels[:args.test_images]
    for spec, config in configs:
        conditional = config.model.get("classes") is not None          # then p(x | y), given the labels
        trainer = Trainer(config, train_images, test_images, parallel=True,     # as the CLI trains
                          train_labels=train_labels if conditional else None,
                          test_labels=test_labels if conditional else None)
        config.total_steps, _ = steps_for_minutes(trainer, args.minutes)     # the first estimate
        config.minutes = args.minutes
        trainer.run(progress=False)
        if args.save_dir:
            os.makedirs(args.save_dir, exist_ok=True)
            trainer.save(os.path.join(args.save_dir, spec.replace("/", "-").replace(":", "_") + ".npz"))
        print(json.dumps({"config": spec, "steps": trainer.state.step,
                          "ms_per_step": round(1000 * trainer.state.train_seconds / trainer.state.step),
                          "train_minutes": round(trainer.state.train_seconds / 60, 2),
                          "test_bits": round(trainer.state.last_test_bits, 4)}), flush=True)


if __name__ == "__main__":
    main()
