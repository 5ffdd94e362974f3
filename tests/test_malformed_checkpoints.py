"""Every malformed checkpoint gets one line (issue 33).

A file whose metadata has the wrong types, is nested deeper than JSON can read, claims
sizes it does not hold, or was edited after it was written is refused with a
CheckpointError that starts with the path and says what is wrong, before anything large is
allocated; and save_checkpoint never writes a NaN or an infinity over a good file.

The helpers that build edited files (``rewrite_meta``, ``edit_by_hand``) are in conftest.py.
"""

import io
import json
import re
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import npixelcnn as npc
import npixelcnn.checkpoint as checkpoint_module
from npixelcnn import cli

from conftest import edit_by_hand, members, meta_checksum, rewrite_meta, write_members

LEVELS = 4
VERSION1 = Path(__file__).resolve().parent / "data" / "version1"


# ------------------------------------------------------------------ helpers


def replace_member(path, name, data):
    """A copy of the archive at ``path`` (forged.npz beside it) with member ``name``'s bytes replaced."""
    forged = path.with_name("forged.npz")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(forged, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, data if info.filename == name else src.read(info.filename))
    return forged


def npy_claiming(shape, dtype="<f4"):
    """The bytes of a .npy file whose header describes ``shape`` but which holds only 16 bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\0" * 16


def random_levels(n, seed=0):
    return np.random.default_rng(seed).integers(0, LEVELS, (n, 8, 8))


@pytest.fixture
def saved_run(tmp_path):
    """(path, train images, test images): a tiny PixelCNN run saved after 2 of its 6 steps."""
    images = random_levels(32)
    config = npc.TrainConfig(levels=LEVELS, model=dict(hidden=4, blocks=2, head=8), batch_size=8,
                             total_steps=6, evals=2)
    trainer = npc.Trainer(config, images, images[:8])
    trainer.run(max_steps=2, progress=False)
    return trainer.save(tmp_path / "run.npz"), images, images[:8]


@pytest.fixture
def saved_model(tmp_path):
    """The path of a checkpoint of a tiny PixelCNN (no optimizer)."""
    model = npc.PixelCNN(levels=LEVELS, hidden=4, blocks=2, head=8, seed=0)
    return npc.save_checkpoint(model, tmp_path / "model.npz", command="python -m npixelcnn train",
                               metrics={"test_bits_per_dim": 1.5})


def resume(saved_run):
    path, train_images, test_images = saved_run
    return npc.Trainer.resume(path, train_images, test_images)


# ------------------------------------------------------------ 1. an architecture that is not a name


@pytest.mark.parametrize("arch", [["pixelcnn"], {"a": 1}, 3], ids=["list", "dict", "int"])
def test_an_architecture_that_is_not_a_name_is_refused_on_load(saved_model, arch):
    rewrite_meta(saved_model, lambda m: m.update(arch=arch))
    with pytest.raises(npc.CheckpointError, match=rf"^{saved_model} holds a model of architecture .*which this "
                                                  r"npixelcnn does not know"):
        npc.load_checkpoint(saved_model)


@pytest.mark.parametrize("arch", [["pixelcnn"], {"a": 1}], ids=["list", "dict"])
def test_a_training_architecture_that_is_not_a_name_is_refused_on_resume(saved_run, arch):
    rewrite_meta(saved_run[0], lambda m: m["train"].update(arch=arch))
    with pytest.raises(npc.CheckpointError, match=rf"^{saved_run[0]}: .*unknown architecture"):
        resume(saved_run)


# ------------------------------------------------------------ 2. metadata nested too deep for JSON


def test_metadata_nested_100000_deep_is_refused(saved_model):
    arrays = members(saved_model)
    meta = json.loads(str(arrays["meta"]))
    deep = "[" * 100_000 + "]" * 100_000
    text = json.dumps({**meta, "command": "DEEP"}).replace('"DEEP"', deep)
    arrays["meta"], arrays["meta_sha256"] = np.array(text), np.array(meta_checksum(text))
    write_members(saved_model, arrays)
    with pytest.raises(npc.CheckpointError, match=rf"^{saved_model}: its metadata is nested too deep"):
        npc.load_checkpoint(saved_model)


def test_metadata_nested_deeper_than_a_checkpoint_may_is_refused(saved_model):
    # Readable as JSON, but every later walk of it (a repr in an error, json.dumps when a
    # resumed run saves) would come close to Python's recursion limit.
    rewrite_meta(saved_model, lambda m: m.update(notes=json.loads("[" * 40 + "]" * 40)))
    with pytest.raises(npc.CheckpointError, match=rf"^{saved_model}: its metadata is nested too deep \(41 lists or "
                                                  r"dicts; a checkpoint's nest at most 32\)"):
        npc.load_checkpoint(saved_model)


def test_save_refuses_metadata_nested_deeper_than_load_reads(tmp_path):
    model = npc.PixelCNN(levels=LEVELS, hidden=2, blocks=1, head=4, seed=0)
    with pytest.raises(ValueError, match="checkpoint metadata nests 41 lists or dicts deep; .* at most 32"):
        npc.save_checkpoint(model, tmp_path / "ckpt.npz", notes=json.loads("[" * 40 + "]" * 40))
    assert list(tmp_path.iterdir()) == []


def test_an_integer_too_long_for_python_to_read_is_refused(saved_model):
    arrays = members(saved_model)
    text = str(arrays["meta"])[:-1] + ', "notes": ' + "9" * 5000 + "}"
    arrays["meta"], arrays["meta_sha256"] = np.array(text), np.array(meta_checksum(text))
    write_members(saved_model, arrays)
    with pytest.raises(npc.CheckpointError, match=rf"^{saved_model}: its metadata is not valid JSON: Exceeds"):
        npc.load_checkpoint(saved_model)


# ------------------------------------------------------------ 3. wrong types in the metadata


@pytest.mark.parametrize("change, match", [
    (lambda o: o.update(lr="0.001"), "lr must be a number, got str"),
    (lambda o: o.update(t=2.0), r"step count t must be an int >= 0, got 2\.0"),
    (lambda o: o.update(t=True), r"step count t must be an int >= 0, got True"),
    (lambda o: o.update(beta1=None), "beta1 must be a number, got NoneType"),
    (lambda o: o.update(name="SGD"), r"name must be 'Adam', got 'SGD'"),
], ids=["lr-text", "t-float", "t-bool", "beta1-null", "name-SGD"])
def test_optimizer_settings_of_the_wrong_type_are_refused(saved_run, change, match):
    rewrite_meta(saved_run[0], lambda m: change(m["optimizer"]))
    with pytest.raises(npc.CheckpointError, match=rf"^{saved_run[0]}: invalid optimizer settings .*{match}"):
        npc.load_checkpoint(saved_run[0])


def test_optimizer_settings_that_are_not_a_dict_are_refused(saved_run):
    rewrite_meta(saved_run[0], lambda m: m.update(optimizer=[[k, v] for k, v in m["optimizer"].items()]))
    with pytest.raises(npc.CheckpointError, match="optimizer settings must be a dict, got list"):
        npc.load_checkpoint(saved_run[0])


@pytest.mark.parametrize("seconds", [1e308, 10 ** 400, 4e8, True, "60"],
                         ids=["1e308", "400-digit-int", "12-years", "bool", "text"])
def test_an_implausible_training_time_is_refused(saved_run, seconds):
    rewrite_meta(saved_run[0], lambda m: m["state"].update(train_seconds=seconds))
    with pytest.raises(npc.CheckpointError, match=r"state\.train_seconds must be a number of seconds from 0 to "
                                                  r"315,576,000 \(10 years\)"):
        resume(saved_run)


HISTORY_EDITS = {
    "no test_bits": (lambda h: h.pop("test_bits"), r" lacks 'test_bits'"),
    "test_bits text": (lambda h: h.update(test_bits="1.2"), r"\['test_bits'\] must be a finite number >= 0 or "
                                                             r"null .*, got '1\.2'"),
    "train_bits inf": (lambda h: h.update(train_bits=float("inf")), r"\['train_bits'\] must be .*, got inf"),
    "test_bits negative": (lambda h: h.update(test_bits=-1.0), r"\['test_bits'\] must be .*, got -1\.0"),
    "step negative": (lambda h: h.update(step=-1), r"\['step'\] must be an int >= 0, got -1"),
    "step bool": (lambda h: h.update(step=True), r"\['step'\] must be an int >= 0, got True"),
    "time NaN": (lambda h: h.update(time=float("nan")), r"\['time'\] must be a number of seconds .*, got nan"),
    "time negative": (lambda h: h.update(time=-3), r"\['time'\] must be a number of seconds .*, got -3"),
    "lr text": (lambda h: h.update(lr="fast"), r"\['lr'\] must be a finite number, got 'fast'"),
}


@pytest.mark.parametrize("edit", HISTORY_EDITS)
def test_a_history_record_of_the_wrong_type_is_refused_on_resume(saved_run, edit):
    change, match = HISTORY_EDITS[edit]
    rewrite_meta(saved_run[0], lambda m: change(m["history"][0]))
    with pytest.raises(npc.CheckpointError, match=rf"^{saved_run[0]}: its history\[0\]{match}"):
        resume(saved_run)


@pytest.mark.parametrize("history, match", [
    ([[2, 0.1, 1.9]], r"history\[0\] must be a dict"),
    ({"step": 2}, "history must be a list of records"),
])
def test_a_history_that_is_not_a_list_of_records_is_refused(saved_run, history, match):
    rewrite_meta(saved_run[0], lambda m: m.update(history=history))
    with pytest.raises(npc.CheckpointError, match=match):
        resume(saved_run)


@pytest.mark.parametrize("extra, match", [
    ({"metrics": [1.5, 1.2]}, "its metrics must be a dict, got list"),
    ({"metrics": "1.5 bits"}, "its metrics must be a dict, got str"),
    ({"command": 42}, "its command must be a str, got int"),
    ({"command": ["python", "-m", "npixelcnn"]}, "its command must be a str, got list"),
])
def test_metrics_and_command_of_the_wrong_type_are_refused(saved_model, extra, match):
    rewrite_meta(saved_model, lambda m: m.update(extra))
    with pytest.raises(npc.CheckpointError, match=rf"^{saved_model}: {match}"):
        npc.load_checkpoint(saved_model)


@pytest.mark.parametrize("extra", [{"metrics": [1.5]}, {"command": 42}])
def test_save_refuses_metrics_and_command_that_load_would_refuse(tmp_path, extra):
    model = npc.PixelCNN(levels=LEVELS, hidden=2, blocks=1, head=4, seed=0)
    with pytest.raises(TypeError, match=f"checkpoint metadata: {next(iter(extra))} must be a"):
        npc.save_checkpoint(model, tmp_path / "ckpt.npz", **extra)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ 4. implausible sizes, refused before allocating


@pytest.mark.parametrize("shape", [(10 ** 9,), (10 ** 12,), (2 ** 62, 4)], ids=["4GB", "4TB", "overflow"])
@pytest.mark.parametrize("member", ["param/out.b.npy", "meta.npy"])
def test_an_npy_header_claiming_a_huge_array_is_refused_before_it_is_allocated(saved_model, shape, member):
    forged = replace_member(saved_model, member, npy_claiming(shape))
    message = (rf"^{forged}: {member[:-4]}'s \.npy header claims an array "
               rf"of shape {re.escape(str(shape))}.* the archive holds 16 bytes")
    assert peak_bytes_of_a_refused_load(forged, message) < 50e6


def implausible_model_file(tmp_path, arch, setting):
    """A checkpoint of a tiny model whose model settings were then changed to ``setting``."""
    model = (npc.PixelCNN(levels=LEVELS, hidden=4, blocks=2, head=8, seed=0) if arch == "pixelcnn"
             else npc.GatedPixelCNN(levels=LEVELS, channels=4, layers=2, head=8, seed=0))
    path = npc.save_checkpoint(model, tmp_path / f"{arch}.npz")
    return rewrite_meta(path, lambda m: m["model"].update(setting))


@pytest.mark.parametrize("arch, setting", [
    ("pixelcnn", {"hidden": 100_000}),
    ("pixelcnn", {"head": 10 ** 400}),
    ("pixelcnn", {"blocks": 10 ** 9}),         # small layers, but a billion of them
    ("gated", {"channels": 100_000}),
    ("gated", {"layers": 10 ** 9}),
])
def test_model_settings_far_larger_than_the_file_are_refused_before_the_model_is_built(tmp_path, arch, setting):
    path = implausible_model_file(tmp_path, arch, setting)
    message = (rf"^{path} describes an implausibly large model: its model settings .* need more than "
               rf"[\d,]+ parameters, but the file holds [\d,]+")
    assert peak_bytes_of_a_refused_load(path, message) < 200e6


def peak_bytes_of_a_refused_load(path, message):
    """Load ``path``, expecting a CheckpointError matching ``message``; returns the peak bytes allocated."""
    tracemalloc.start()
    try:
        with pytest.raises(npc.CheckpointError, match=message):
            npc.load_checkpoint(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_billion_levels_is_refused_without_allocating(tmp_path):
    # The constructors refuse levels > 256; the limit would refuse it anyway.
    path = implausible_model_file(tmp_path, "pixelcnn", {"levels": 10 ** 9})
    with pytest.raises(npc.CheckpointError, match=rf"^{path}.*(levels must be at most 256|implausibly large)"):
        npc.load_checkpoint(path)


def test_a_small_mismatch_still_names_the_array_that_does_not_fit(tmp_path):
    path = implausible_model_file(tmp_path, "pixelcnn", {"hidden": 8})
    with pytest.raises(npc.CheckpointError, match=r"param/input_conv\.W has shape \(7, 7, 1, 8\), but .* needs "
                                                  r"\(7, 7, 1, 16\)"):
        npc.load_checkpoint(path)


def test_layers_built_under_a_parameter_limit_stop_before_allocating_past_it():
    from npixelcnn.layers import ParameterLimitExceeded, parameter_limit
    with parameter_limit(1000):
        small = npc.Conv2D(10, 10, 3)                 # 910 parameters
        with pytest.raises(ParameterLimitExceeded, match=r"Conv2D\(10, 10, kernel_size=1\) would bring the "
                                                         r"parameters built to 1,020, past the limit of 1,000"):
            npc.Conv2D(10, 10, 1)
    assert small.num_params() == 910
    assert npc.Conv2D(100, 100, 3).num_params() == 90_100       # no limit outside the block


def test_running_out_of_memory_while_loading_is_a_checkpoint_error(saved_run, monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.6 TiB for an array")
    monkeypatch.setattr(checkpoint_module, "Adam", no_memory)
    with pytest.raises(npc.CheckpointError, match=rf"^{saved_run[0]} describes an implausibly large model: loading "
                                                  r"it ran out of memory \(Unable to allocate 3\.6 TiB"):
        npc.load_checkpoint(saved_run[0])


def test_the_cli_calls_an_implausible_model_what_it_is(tmp_path, capsys):
    path = implausible_model_file(tmp_path, "pixelcnn", {"hidden": 100_000})
    status = cli.main(["sample", "--checkpoint", str(path), "--n", "1", "--no-progress",
                       "--out", str(tmp_path / "s.png")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "describes an implausibly large model" in err and "fewer images" not in err


# ------------------------------------------------------------ 5. metadata edited after it was written


def test_a_checkpoint_stores_the_checksum_of_its_metadata(saved_model):
    arrays = members(saved_model)
    assert json.loads(str(arrays["meta"]))["version"] == 3
    assert str(arrays["meta_sha256"]) == meta_checksum(str(arrays["meta"]))


@pytest.mark.parametrize("change", [
    lambda m: m["train"].update(seed=m["train"]["seed"] + 1),
    lambda m: m["state"].update(train_seconds=3600.0),
], ids=["train.seed", "state.train_seconds"])
def test_metadata_edited_after_it_was_written_is_refused(saved_run, change):
    path = edit_by_hand(saved_run[0], change)
    message = rf"^{path}: its metadata was edited after it was written \(checksum mismatch\)$"
    with pytest.raises(npc.CheckpointError, match=message):
        npc.load_checkpoint(path)
    with pytest.raises(npc.CheckpointError, match=message):
        resume(saved_run)


def test_a_version_3_file_without_its_checksum_is_refused(saved_model):
    arrays = members(saved_model)
    del arrays["meta_sha256"]
    write_members(saved_model, arrays)
    with pytest.raises(npc.CheckpointError, match=rf"^{saved_model}: its metadata has no checksum \(meta_sha256\)"):
        npc.load_checkpoint(saved_model)


@pytest.mark.parametrize("checksum", [np.zeros(32, np.uint8), np.array(["0" * 64, "1" * 64])], ids=["bytes", "two"])
def test_a_checksum_that_is_not_one_hex_string_is_refused(saved_model, checksum):
    arrays = members(saved_model)
    arrays["meta_sha256"] = checksum
    write_members(saved_model, arrays)
    with pytest.raises(npc.CheckpointError, match=r"checksum mismatch"):
        npc.load_checkpoint(saved_model)


def test_a_version_lowered_to_skip_the_checksum_is_refused(saved_model):
    edit_by_hand(saved_model, lambda m: m.update(version=2))
    with pytest.raises(npc.CheckpointError, match=rf"^{saved_model}: its metadata says format version 2, which has "
                                                  r"no checksum, but the file holds one"):
        npc.load_checkpoint(saved_model)


def test_files_of_versions_1_and_2_load_without_a_checksum(saved_run):
    for path in sorted(VERSION1.glob("*.npz")):
        assert "meta_sha256" not in members(path)
        assert npc.load_checkpoint(path).meta["version"] == 1
    path = saved_run[0]
    arrays = members(path)
    del arrays["meta_sha256"]
    write_members(path, arrays)
    rewrite_meta(path, lambda m: m.update(version=2))
    assert npc.load_checkpoint(path).meta["version"] == 2
    assert resume(saved_run).state.step == 2


# ------------------------------------------------------------ 6. save never writes NaN or infinity


def trained_pieces():
    """A tiny model, its Adam after one step, and a copy of its weights as trained_params."""
    model = npc.PixelCNN(levels=LEVELS, hidden=2, blocks=1, head=4, seed=0)
    optimizer = npc.Adam(model, lr=1e-3)
    levels = random_levels(2)
    _, grad = npc.softmax_cross_entropy(model.forward(npc.to_model_input(levels, LEVELS)), levels)
    model.backward(grad)
    optimizer.step()
    return model, optimizer, {name: p.copy() for name, p in model.params.items()}


@pytest.mark.parametrize("where, value", [
    ("param/out.W", np.nan),
    ("param/blocks.0.conv2.b", np.inf),
    ("adam_m/head1.W", np.nan),
    ("adam_v/out.b", -np.inf),
    ("trained/input_conv.b", np.nan),
])
def test_save_refuses_non_finite_arrays_and_keeps_the_good_file(tmp_path, where, value):
    model, optimizer, trained = trained_pieces()
    path = npc.save_checkpoint(model, tmp_path / "ckpt.npz", optimizer, trained_params=trained)
    good = path.read_bytes()
    kind, name = where.split("/")
    arrays = {"param": model.params, "adam_m": optimizer.m, "adam_v": optimizer.v, "trained": trained}[kind]
    arrays[name].flat[0] = value
    with pytest.raises(ValueError, match=rf"^save_checkpoint: {where} holds NaN or infinite values"):
        npc.save_checkpoint(model, path, optimizer, trained_params=trained)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]
