"""Checkpoints written by earlier versions still load, resume and evaluate to the same figures.

tests/data/version1 holds real checkpoints of format version 1 (one flat dict of training
settings with every architecture's fields; the Gated PixelCNN's width called ``hidden``),
written by npixelcnn at commit b85a36b (see make_version1_checkpoints.py there): each run
saved after 4 of its 8 steps and at the end. This version resumes the first and must
reach the second, bit for bit.
"""

import warnings
from pathlib import Path

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn.checkpoint_meta import training_config

VERSION1 = Path(__file__).resolve().parent / "data" / "version1"


def subset_levels():
    images, _ = npc.load_mnist("train", Path(__file__).resolve().parent / "data" / "mnist")
    levels = npc.quantize(images[:48, ::2, ::2], 4)        # what the version-1 runs trained on
    return levels, levels[:8]


@pytest.mark.parametrize("arch", ["pixelcnn", "gated"])
def test_a_version_1_checkpoint_resumes_to_the_same_weights_and_figure(arch):
    halfway = npc.load_checkpoint(VERSION1 / f"{arch}_step4.npz")
    finished = npc.load_checkpoint(VERSION1 / f"{arch}_step8.npz")
    assert halfway.meta["version"] == 1 and halfway.model.arch == arch
    with pytest.warns(UserWarning, match="does not record the data"):      # version 1 did not
        trainer = npc.Trainer.from_checkpoint(halfway, *subset_levels())
    assert trainer.state.step == 4
    trainer.run(progress=False)
    assert trainer.state.step == 8
    for name, p in finished.trained_params.items() if finished.trained_params else ():
        np.testing.assert_array_equal(trainer.model.params[name], p, err_msg=name)    # the trained weights
    with trainer.weights_to_use():                                 # and the model to use (gated: the average)
        for name, p in finished.model.params.items():
            np.testing.assert_array_equal(trainer.model.params[name], p, err_msg=name)
    # The last test figure of the earlier version's run, and this version's evaluation of its file.
    assert trainer.state.last_test_bits == finished.meta["history"][-1]["test_bits"]
    assert npc.nats_to_bits(npc.evaluate(finished.model, subset_levels()[1])) == pytest.approx(
        finished.meta["history"][-1]["test_bits"], rel=1e-6)


def test_a_version_1_run_keeps_only_its_own_architectures_settings_under_todays_names():
    gated = training_config(npc.load_checkpoint(VERSION1 / "gated_step4.npz").meta, "gated")
    assert gated.model == {"channels": 4, "layers": 3, "kernel_size": 3, "head": 8}     # no "blocks"
    pixelcnn = training_config(npc.load_checkpoint(VERSION1 / "pixelcnn_step4.npz").meta, "pixelcnn")
    assert pixelcnn.model == {"hidden": 4, "blocks": 2, "head": 8}                    # no "layers", "kernel_size"
    assert npc.load_checkpoint(VERSION1 / "gated_step4.npz").model.config["channels"] == 4


def test_a_resumed_version_1_run_saves_in_todays_format(tmp_path):
    with pytest.warns(UserWarning, match="does not record the data"):
        trainer = npc.Trainer.resume(VERSION1 / "gated_step4.npz", *subset_levels())
    trainer.run(max_steps=1, progress=False)
    path = trainer.save(tmp_path / "now.npz")
    ckpt = npc.load_checkpoint(path)
    assert ckpt.meta["version"] == 3
    assert ckpt.meta["train"]["model"] == {"channels": 4, "layers": 3, "kernel_size": 3, "head": 8}
    assert ckpt.meta["model"] == {"levels": 4, "channels": 4, "layers": 3, "kernel_size": 3, "head": 8}
    assert ckpt.meta["data"]["train"]["images"] == len(subset_levels()[0])       # today's files record it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert npc.Trainer.from_checkpoint(ckpt, *subset_levels()).state.step == 5
