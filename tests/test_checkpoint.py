"""Checkpoints: a model and its Adam state come back bit for bit, from plain arrays only;
anything that is not a complete npixelcnn checkpoint is refused with the reason; and an
interrupted save never destroys the previous checkpoint."""

import json
import os
import zipfile

import numpy as np
import pytest

import npixelcnn as npc
import npixelcnn.checkpoint as checkpoint_module
from conftest import meta_checksum

LEVELS = 4
ARCH = {"levels": LEVELS, "hidden": 4, "blocks": 2, "head": 8}


def tiny_model(seed=0):
    return npc.PixelCNN(**ARCH, seed=seed)


def random_batch(rng, n=2):
    """Random 4-level 8x8 images: the model input and the per-pixel targets."""
    levels = rng.integers(0, LEVELS, (n, 8, 8))
    return npc.to_model_input(levels, LEVELS), levels


def train_step(model, optimizer, x, targets):
    _, grad = npc.softmax_cross_entropy(model.forward(x), targets)
    model.backward(grad)
    optimizer.step()


def trained(steps=3, seed=0):
    """A tiny model and its Adam after a few real steps (m, v nonzero, t = steps)."""
    model = tiny_model(seed)
    optimizer = npc.Adam(model, lr=3e-3, beta1=0.8, beta2=0.99, eps=1e-7, clip_norm=0.5)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        train_step(model, optimizer, *random_batch(rng))
    return model, optimizer


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture
def saved(tmp_path):
    """(path, model, optimizer): a checkpoint of a model trained for 3 steps."""
    model, optimizer = trained()
    path = npc.save_checkpoint(model, tmp_path / "ckpt.npz", optimizer,
                               command="python -m npixelcnn train --preset tiny",
                               metrics={"test_bits": 1.25, "history": [[1, 1.9], [2, 1.7]]})
    return path, model, optimizer


def read_archive(path):
    """The archive's arrays and its meta as a dict, read without pickle."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def write_archive(path, arrays, meta=None):
    """Write an .npz at exactly ``path`` (np.savez given a name appends ".npz" if missing).
    A new ``meta`` gets the checksum it would have been written with, so an edited file
    reaches the check its test is about."""
    if meta is not None:
        arrays = {**arrays, "meta": np.array(json.dumps(meta))}
        if "meta_sha256" in arrays:
            arrays["meta_sha256"] = np.array(meta_checksum(json.dumps(meta)))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def edited(path, edit):
    """A copy of the checkpoint at ``path`` after ``edit(arrays, meta)``."""
    arrays, meta = read_archive(path)
    edit(arrays, meta)
    return write_archive(path.with_name("edited.npz"), arrays, meta)


# --- Round trip ---------------------------------------------------------------


def test_parameters_come_back_bit_identical_with_the_architecture(saved):
    path, model, _ = saved
    ckpt = npc.load_checkpoint(path)
    assert isinstance(ckpt.model, npc.PixelCNN)
    assert ckpt.model.config == model.config == ARCH
    assert ckpt.model.levels == LEVELS
    assert list(ckpt.model.params) == list(model.params)
    for name, p in model.params.items():
        assert same_bits(ckpt.model.params[name], p), name
    # The trained weights differ from a fresh model's: the comparison above is not vacuous.
    assert not np.array_equal(model.params["out.W"], tiny_model().params["out.W"])


def test_adam_state_comes_back_after_real_steps(saved):
    path, _, optimizer = saved
    loaded = npc.load_checkpoint(path).optimizer
    assert isinstance(loaded, npc.Adam)
    assert loaded.t == optimizer.t == 3
    assert (loaded.lr, loaded.beta1, loaded.beta2, loaded.eps, loaded.clip_norm) == (3e-3, 0.8, 0.99, 1e-7, 0.5)
    for name in optimizer.m:
        assert np.any(optimizer.m[name] != 0) or name.endswith(".b"), name
        assert same_bits(loaded.m[name], optimizer.m[name]), name
        assert same_bits(loaded.v[name], optimizer.v[name]), name


def test_meta_extras_come_back(saved):
    meta = npc.load_checkpoint(saved[0]).meta
    assert meta["command"] == "python -m npixelcnn train --preset tiny"
    assert meta["metrics"] == {"test_bits": 1.25, "history": [[1, 1.9], [2, 1.7]]}
    assert meta["model"] == ARCH
    assert meta["format"] == "npixelcnn-checkpoint" and meta["version"] == 3


def test_the_loaded_model_gives_the_same_logits(saved, rng):
    path, model, _ = saved
    x, _ = random_batch(rng, n=3)
    logits = npc.load_checkpoint(path).model.forward(x)
    assert logits.shape == (3, 8, 8, LEVELS)
    assert same_bits(logits, model.forward(x))


def test_resuming_continues_the_exact_same_training_trajectory(saved, rng):
    # The restored m, v and t give the same next Adam step as if training had never stopped.
    path, model, optimizer = saved
    ckpt = npc.load_checkpoint(path)
    assert ckpt.optimizer.model is ckpt.model
    x, targets = random_batch(rng)
    train_step(model, optimizer, x, targets)
    train_step(ckpt.model, ckpt.optimizer, x, targets)
    assert ckpt.optimizer.t == 4
    for name, p in model.params.items():
        assert same_bits(ckpt.model.params[name], p), name


def test_a_model_saved_without_optimizer_loads_with_optimizer_none(tmp_path):
    model, _ = trained(steps=1)
    path = npc.save_checkpoint(model, tmp_path / "model.npz")
    arrays, meta = read_archive(path)
    assert "optimizer" not in meta
    assert all(key.startswith("param/") for key in arrays if key != "meta_sha256")
    ckpt = npc.load_checkpoint(path)
    assert ckpt.optimizer is None
    assert same_bits(ckpt.model.params["input_conv.W"], model.params["input_conv.W"])


# --- The archive: plain arrays only -----------------------------------------------


def test_the_archive_holds_only_plain_arrays_and_json(saved):
    path, model, _ = saved
    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
        dtypes = {key: archive[key].dtype for key in archive.files}
        meta = archive["meta"]
    names = set(model.params)
    assert keys == ({"meta", "meta_sha256"} | {f"param/{n}" for n in names}
                    | {f"adam_m/{n}" for n in names} | {f"adam_v/{n}" for n in names})
    assert all(dtype == np.float32 for key, dtype in dtypes.items() if key not in ("meta", "meta_sha256"))
    assert meta.dtype.kind == "U" and meta.shape == ()          # one JSON string, not an object
    assert json.loads(str(meta))["model"] == ARCH
    with zipfile.ZipFile(path) as zf:
        assert all(name.endswith(".npy") for name in zf.namelist())


# --- Refused files: CheckpointError with the reason ---------------------------------


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        npc.load_checkpoint(tmp_path / "nope.npz")


def test_checkpoint_error_is_a_value_error():
    assert issubclass(npc.CheckpointError, ValueError)


@pytest.mark.parametrize("content", [
    b"step,loss\n1,1.38\n",
    np.random.default_rng(0).bytes(2000),
    b"",
], ids=["text", "random-bytes", "empty"])
def test_a_file_that_is_not_a_zip_is_refused(tmp_path, content):
    path = tmp_path / "ckpt.npz"
    path.write_bytes(content)
    with pytest.raises(npc.CheckpointError, match="not a zip archive"):
        npc.load_checkpoint(path)


def test_a_npy_array_under_the_checkpoint_name_is_recognised(tmp_path):
    path = tmp_path / "ckpt.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros((7, 7, 1, 8), np.float32))
    with pytest.raises(npc.CheckpointError, match=r"is a \.npy array, not an npixelcnn checkpoint"):
        npc.load_checkpoint(path)


@pytest.mark.parametrize("keep", [
    lambda n: n // 2, lambda n: 100, lambda n: n - 10,
], ids=["half", "first-100-bytes", "all-but-last-10"])
def test_a_truncated_checkpoint_is_refused(saved, keep):
    path = saved[0]
    data = path.read_bytes()
    path.write_bytes(data[:keep(len(data))])
    with pytest.raises(npc.CheckpointError, match=r"not a complete \.npz archive \(truncated or corrupt\?\)"):
        npc.load_checkpoint(path)


def test_every_truncation_point_gives_checkpoint_error(saved):
    path = saved[0]
    data = path.read_bytes()
    for cut in np.linspace(0, len(data) - 1, 60).astype(int):
        path.write_bytes(data[:cut])
        with pytest.raises(npc.CheckpointError):
            npc.load_checkpoint(path)


def member_data_offset(path, member):
    """Where ``member``'s bytes start in the zip: after its local header (30 bytes + name + extra)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(f.read(4), "<u2")
    return info.header_offset + 30 + int(name_len) + int(extra_len), info.compress_size


def test_a_corrupted_byte_inside_an_array_is_caught_by_the_zip_checksum(saved):
    path = saved[0]
    start, size = member_data_offset(path, "param/head2.W.npy")
    data = bytearray(path.read_bytes())
    data[start + size // 2 + 3] ^= 0x40      # one flipped bit in a float, past the .npy header
    path.write_bytes(bytes(data))
    with pytest.raises(npc.CheckpointError, match="Bad CRC-32 for file 'param/head2.W.npy'"):
        npc.load_checkpoint(path)


def test_a_corrupted_compression_field_gives_checkpoint_error(saved):
    # zipfile answers a bad method or flag field with NotImplementedError or RuntimeError.
    path = saved[0]
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")          # the last central-directory entry
    for offset, value in [(10, 0x63), (8, 0x01)]:    # compression method: AES; flags: encrypted
        corrupt = data.copy()
        corrupt[central + offset] = value
        path.write_bytes(bytes(corrupt))
        with pytest.raises(npc.CheckpointError, match="truncated or corrupt"):
            npc.load_checkpoint(path)


RAN = []


def _record_that_code_ran():
    RAN.append("unpickled")
    return {"lr": 1e-3}


class RunsCodeWhenUnpickled:
    def __reduce__(self):
        return (_record_that_code_ran, ())


def test_pickled_objects_are_refused_without_running_them(saved):
    path = saved[0]
    arrays, meta = read_archive(path)
    arrays["param/out.b"] = np.array([RunsCodeWhenUnpickled()], dtype=object)
    write_archive(path, arrays, meta)
    RAN.clear()
    with pytest.raises(npc.CheckpointError, match="holds pickled Python objects"):
        npc.load_checkpoint(path)
    assert RAN == []
    # The bait is real: loading with pickle allowed runs the code.
    with np.load(path, allow_pickle=True) as archive:
        assert archive["param/out.b"][0] == {"lr": 1e-3}
    assert RAN == ["unpickled"]


def test_a_pickled_dict_under_a_valid_looking_meta_is_refused(saved):
    path = saved[0]
    _, meta = read_archive(path)
    write_archive(path, {"optimizer_state": np.array({"m": [1, 2]}, dtype=object)}, meta)
    with pytest.raises(npc.CheckpointError, match="pickled Python objects"):
        npc.load_checkpoint(path)


def test_an_npz_without_meta_is_refused(saved):
    path = saved[0]
    arrays, _ = read_archive(path)
    write_archive(path, arrays)
    with pytest.raises(npc.CheckpointError, match="has no 'meta' entry"):
        npc.load_checkpoint(path)


@pytest.mark.parametrize("meta_text, match", [
    ("{'format': 'npixelcnn-checkpoint'}", "metadata is not valid JSON"),
    ('{"hello": 1}', "does not describe an npixelcnn checkpoint"),
    ('["npixelcnn-checkpoint"]', "does not describe an npixelcnn checkpoint"),
])
def test_meta_that_is_not_a_checkpoint_description_is_refused(saved, meta_text, match):
    path = saved[0]
    arrays, _ = read_archive(path)
    write_archive(path, {**arrays, "meta": np.array(meta_text)})
    with pytest.raises(npc.CheckpointError, match=match):
        npc.load_checkpoint(path)


@pytest.mark.parametrize("version, match", [
    (4, r"newer npixelcnn \(checkpoint version 4, this one reads up to 3\)"),
    ("1", "no integer format version"),
    (0, "no integer format version"),
    (None, "no integer format version"),
])
def test_an_unknown_format_version_is_refused(saved, version, match):
    path = edited(saved[0], lambda arrays, meta: meta.update(version=version))
    with pytest.raises(npc.CheckpointError, match=match):
        npc.load_checkpoint(path)


@pytest.mark.parametrize("claimed, match", [
    ({"hidden": 8}, r"param/input_conv\.W has shape \(7, 7, 1, 8\), but the architecture .* needs \(7, 7, 1, 16\)"),
    ({"levels": 5}, r"param/out\.W has shape \(1, 1, 8, 4\), but .* needs \(1, 1, 8, 5\)"),
    ({"blocks": 3}, r"missing \['blocks\.2\.conv1\.W', .*\]\.\.\., unexpected \[\]"),
    ({"blocks": 1}, r"missing \[\], unexpected \['blocks\.1\.conv1\.W', .*\]"),
    ({"levels": 1}, r"invalid model settings .*levels must be at least 2"),
    ({"depth": 3}, r"invalid model settings .*unexpected keyword argument 'depth'"),
])
def test_meta_claiming_another_architecture_is_refused(saved, claimed, match):
    path = edited(saved[0], lambda arrays, meta: meta["model"].update(claimed))
    with pytest.raises(npc.CheckpointError, match=match):
        npc.load_checkpoint(path)


def test_adam_moments_that_do_not_match_are_refused(saved):
    path = edited(saved[0], lambda arrays, meta: arrays.pop("adam_v/out.b"))
    with pytest.raises(npc.CheckpointError, match=r"its adam_v arrays do not match .* missing \['out\.b'\]"):
        npc.load_checkpoint(path)


@pytest.mark.parametrize("change, match", [
    (lambda o: o.pop("t"), "invalid optimizer settings .*KeyError"),
    (lambda o: o.update(t=-1), r"step count t must be an int >= 0, got -1"),
    (lambda o: o.update(lr=-1.0), "lr must be a finite number > 0"),
    (lambda o: o.update(momentum=0.9), "unexpected keyword argument 'momentum'"),
])
def test_invalid_optimizer_settings_are_refused(saved, change, match):
    path = edited(saved[0], lambda arrays, meta: change(meta["optimizer"]))
    with pytest.raises(npc.CheckpointError, match=match):
        npc.load_checkpoint(path)


@pytest.mark.parametrize("layer, tap, mask", [
    ("input_conv", (3, 3), "A"),          # the centre: mask A hides the pixel itself
    ("blocks.1.conv2", (2, 2), "B"),      # below-right: no mask sees the future
])
def test_nonzero_weights_behind_a_mask_are_refused(saved, layer, tap, mask):
    path, model, _ = saved
    assert np.all(model.params[f"{layer}.W"][tap] == 0)      # training keeps them exactly zero

    def leak(arrays, meta):
        arrays[f"param/{layer}.W"][tap][0, 0] = 0.25
    path = edited(path, leak)
    with pytest.raises(npc.CheckpointError, match=rf"{layer}\.W has nonzero weights where mask {mask} hides"):
        npc.load_checkpoint(path)


@pytest.mark.parametrize("key, value", [
    ("param/head1.b", np.nan),
    ("param/blocks.0.conv3.W", np.inf),
    ("adam_v/out.W", np.nan),
])
def test_non_finite_values_are_refused(saved, key, value):
    def poison(arrays, meta):
        arrays[key].flat[1] = value
    path = edited(saved[0], poison)
    with pytest.raises(npc.CheckpointError, match=rf"{key} is not a finite floating-point array"):
        npc.load_checkpoint(path)


def test_integer_parameters_are_refused(saved):
    path = edited(saved[0], lambda arrays, meta: arrays.update({"param/out.b": np.arange(LEVELS)}))
    with pytest.raises(npc.CheckpointError, match=r"param/out\.b is not a finite floating-point array"):
        npc.load_checkpoint(path)


def test_a_zip_member_that_is_not_an_npy_array_is_refused(saved, tmp_path):
    # np.load returns a member without the .npy magic as raw bytes, not as an array.
    path = saved[0]
    forged = tmp_path / "forged.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(forged, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, b"\0" * 16 if name == "param/out.b.npy" else src.read(name))
    with pytest.raises(npc.CheckpointError, match=r"param/out\.b is not a \.npy array"):
        npc.load_checkpoint(forged)


# --- Atomic writes ------------------------------------------------------------------


def fail_while_writing(monkeypatch, exception):
    """Make checkpoint.py's np.savez write half an archive and then raise ``exception``."""
    calls = []

    def broken_savez(f, **arrays):
        calls.append(sorted(arrays))
        f.write(b"PK\x03\x04" + b"\0" * 1000)
        raise exception

    monkeypatch.setattr(checkpoint_module.np, "savez", broken_savez)
    return calls


@pytest.mark.parametrize("exception", [KeyboardInterrupt(), OSError("disk full")],
                         ids=["ctrl-c", "disk-full"])
def test_an_interrupted_overwrite_keeps_the_previous_checkpoint(tmp_path, monkeypatch, exception):
    path = tmp_path / "ckpt.npz"
    model_a, model_b = tiny_model(seed=0), tiny_model(seed=1)
    npc.save_checkpoint(model_a, path, step=100)
    bytes_a = path.read_bytes()

    calls = fail_while_writing(monkeypatch, exception)
    with pytest.raises(type(exception)):
        npc.save_checkpoint(model_b, path, step=200)
    monkeypatch.undo()

    assert calls and "meta" in calls[0]                   # the write did start
    assert path.read_bytes() == bytes_a
    ckpt = npc.load_checkpoint(path)
    assert ckpt.meta["step"] == 100
    for name, p in model_a.params.items():
        assert same_bits(ckpt.model.params[name], p), name
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]   # no temporary file left behind


def test_a_successful_overwrite_replaces_the_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    model_a, model_b = tiny_model(seed=0), tiny_model(seed=1)
    npc.save_checkpoint(model_a, path, step=100)
    npc.save_checkpoint(model_b, path, step=200)
    ckpt = npc.load_checkpoint(path)
    assert ckpt.meta["step"] == 200
    assert same_bits(ckpt.model.params["out.W"], model_b.params["out.W"])
    assert not np.array_equal(ckpt.model.params["out.W"], model_a.params["out.W"])
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


# --- What save_checkpoint refuses ---------------------------------------------------------


@pytest.mark.parametrize("model, name", [
    (npc.MaskedConv2D(1, 2, 3, "A", rng=0), "MaskedConv2D"),
    ({"out.W": np.zeros(3)}, "dict"),
])
def test_only_a_model_can_be_saved(tmp_path, model, name):
    with pytest.raises(TypeError, match=f"save_checkpoint expects a PixelCNN or another .*, got {name}"):
        npc.save_checkpoint(model, tmp_path / "ckpt.npz")
    assert list(tmp_path.iterdir()) == []


def test_only_adam_state_can_be_saved(tmp_path):
    model = tiny_model()
    with pytest.raises(TypeError, match="only Adam's state can be saved, got SGD"):
        npc.save_checkpoint(model, tmp_path / "ckpt.npz", npc.SGD(model, lr=0.1))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("meta", [
    {"step": np.int64(3)},            # NumPy integers are not JSON: use int(step)
    {"metrics": {"bits": np.float32(1.5)}},
    {"command": object()},
])
def test_meta_must_be_json_serialisable(tmp_path, meta):
    with pytest.raises(TypeError, match="checkpoint metadata must be JSON-serialisable"):
        npc.save_checkpoint(tiny_model(), tmp_path / "ckpt.npz", **meta)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("meta", [{"version": 2}, {"format": "mine"}])
def test_meta_cannot_overwrite_the_header(tmp_path, meta):
    # Otherwise save_checkpoint(..., version="v2") would write a file load_checkpoint refuses.
    with pytest.raises(TypeError, match=rf"reserved names \['{next(iter(meta))}'\]"):
        npc.save_checkpoint(tiny_model(), tmp_path / "ckpt.npz", **meta)
    assert list(tmp_path.iterdir()) == []


def test_save_creates_missing_parent_folders(tmp_path):
    path = tmp_path / "runs" / "tiny" / "ckpt.npz"
    assert npc.save_checkpoint(tiny_model(), str(path)) == path
    assert path.is_file()
    assert npc.load_checkpoint(path).model.config == ARCH
