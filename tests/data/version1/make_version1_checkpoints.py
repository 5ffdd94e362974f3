"""Make the version-1 checkpoints that tests/test_checkpoint_meta.py resumes.

They were written by npixelcnn at commit b85a36b, the last version whose checkpoints
hold one flat dict of training settings (format version 1), by running this script
with that version first on the path:

    git archive b85a36b | tar -x -C /tmp/v1
    cd /tmp/v1 && PYTHONPATH=/tmp/v1 python /path/to/tests/data/version1/make_version1_checkpoints.py OUT

For each architecture it trains a tiny model on 48 images from the committed MNIST
subset for 8 steps, saving after step 4 (``<arch>_step4.npz``, the run to resume)
and at the end (``<arch>_step8.npz``, what the resumed run must reach). The runs use
the plain operations on the whole batch, so a resume by a later version, in its
default mode, can be compared bit for bit. The gated run keeps a weight average.
"""

import sys
from pathlib import Path

import npixelcnn as npc

RUNS = {
    "pixelcnn": dict(arch="pixelcnn", hidden=4, blocks=2, head=8),
    "gated": dict(arch="gated", hidden=4, layers=3, kernel_size=3, head=8, ema=0.9),
}


def main(out):
    out = Path(out)
    images, _ = npc.load_mnist("train", Path(__file__).resolve().parents[1] / "mnist")
    levels = npc.quantize(images[:48, ::2, ::2], 4)            # 14 x 14: tiny and quick
    for name, settings in RUNS.items():
        config = npc.TrainConfig(levels=4, batch_size=8, lr=1e-2, warmup_steps=2, total_steps=8,
                                 evals=2, seed=3, **settings)
        with npc.ops.plain(), npc.ops.whole_batches():
            trainer = npc.Trainer(config, levels, levels[:8])
            trainer.run(max_steps=4, progress=False)
            trainer.save(out / f"{name}_step4.npz", command="make_version1_checkpoints.py")
            trainer.run(progress=False)
            trainer.save(out / f"{name}_step8.npz", command="make_version1_checkpoints.py")
        print(name, trainer.state.last_test_bits)


if __name__ == "__main__":
    main(sys.argv[1])
