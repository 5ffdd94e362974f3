"""MNIST in, quantized levels out: the loader checks every byte it reads, downloads
atomically, and quantization bins 256 grey values into L equal-width levels."""

import functools
import gzip
import hashlib
import http.server
import os
import re
import shutil
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from npixelcnn import data, download
from npixelcnn.data import MNISTDownloadError, dequantize, load_mnist, quantize, to_model_input

TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
GOOD_FILES = sorted([f"{TEST_IMAGES}.gz", f"{TEST_LABELS}.gz"])

# Of the tests' subset (the first 2,000 / 1,000 images), computed with np.bincount
# from the full files when the subset was made (test: 8 has 89 images).
LABEL_COUNTS = {
    "train": [191, 220, 198, 191, 214, 180, 200, 224, 172, 210],
    "test": [85, 126, 116, 107, 110, 87, 87, 99, 89, 94],
}
FIRST_LABELS = {"train": [5, 0, 4, 1, 9], "test": [7, 2, 1, 0, 4]}


@pytest.fixture(scope="module")
def splits(mnist_dir):
    return {split: load_mnist(split, data_dir=mnist_dir, mirrors=[]) for split in ("train", "test")}


def payload(mnist_dir, name):
    return gzip.decompress((mnist_dir / f"{name}.gz").read_bytes())


def idx(magic, dims, body):
    """An IDX payload: big-endian magic, dims, then the body bytes."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + bytes(body)


def flip_last_byte(raw):
    return raw[:-1] + bytes([raw[-1] ^ 1])


# ---------------------------------------------------------------- reading the files


@pytest.mark.parametrize("split, count", [("train", 2000), ("test", 1000)])
def test_splits_have_mnist_shapes_dtypes_and_ranges(splits, split, count):
    images, labels = splits[split]
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    assert images.flags.writeable


@pytest.mark.parametrize("split", ["train", "test"])
def test_label_counts_and_first_labels_match_mnist(splits, split):
    _, labels = splits[split]
    assert np.bincount(labels, minlength=10).tolist() == LABEL_COUNTS[split]
    # The header is 8 bytes; an off-by-one offset would shift these.
    assert labels[:5].tolist() == FIRST_LABELS[split]


def test_images_start_after_the_16_byte_header(splits, mnist_dir):
    images, _ = splits["test"]
    raw = payload(mnist_dir, TEST_IMAGES)
    assert images[0].tobytes() == raw[16:16 + 784]
    assert images[-1].tobytes() == raw[-784:]


def test_a_named_folder_that_does_not_exist_is_refused_not_created(tmp_path, monkeypatch):
    typo = tmp_path / "mnsit"
    with pytest.raises(FileNotFoundError, match=rf"data_dir {typo} does not exist; create it"):
        load_mnist("test", data_dir=typo, mirrors=["http://127.0.0.1:9/"])
    monkeypatch.setenv("NPIXELCNN_DATA", str(typo))
    with pytest.raises(FileNotFoundError, match=rf"\$NPIXELCNN_DATA {typo} does not exist"):
        load_mnist("test", mirrors=["http://127.0.0.1:9/"])
    assert not typo.exists()


def test_a_named_folder_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match=rf"data_dir {path} is a file, not a folder"):
        load_mnist("test", data_dir=path, mirrors=[])


def test_the_full_files_and_the_subset_are_known_by_their_checksums():
    for name in data.SHA256:
        assert data.SHA256[name] != data.SUBSET_SHA256[name]
        assert re.fullmatch("[0-9a-f]{64}", data.SUBSET_SHA256[name])
    listed = (Path(__file__).parent / "data" / "mnist" / "SHA256SUMS.uncompressed").read_text().split()
    assert dict(zip(listed[1::2], listed[0::2])) == data.SUBSET_SHA256


def test_unknown_split_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"split must be one of \['test', 'train'\], got 'val'"):
        load_mnist("val", mirrors=[])


def test_folder_is_data_dir_then_env_var_then_home_cache(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NPIXELCNN_DATA", raising=False)
    assert data.resolve_data_dir() == tmp_path / ".cache" / "npixelcnn" / "mnist"
    monkeypatch.setenv("NPIXELCNN_DATA", "")          # empty counts as unset
    assert data.resolve_data_dir() == tmp_path / ".cache" / "npixelcnn" / "mnist"

    monkeypatch.setenv("NPIXELCNN_DATA", str(mnist_dir))
    images, _ = load_mnist("test", mirrors=[], progress=False)   # mirrors=[]: must not download
    assert images.shape == (1000, 28, 28)

    # data_dir wins over the variable: an empty folder with no mirrors cannot load.
    with pytest.raises(MNISTDownloadError, match=str(tmp_path)):
        load_mnist("test", data_dir=tmp_path, mirrors=[])
    assert data.resolve_data_dir(str(mnist_dir)) == mnist_dir


@pytest.fixture
def local_copy(mnist_dir, tmp_path):
    """A folder holding copies of the test split, for tampering with."""
    for name in GOOD_FILES:
        shutil.copy(mnist_dir / name, tmp_path / name)
    return tmp_path


def load_error(folder):
    with pytest.raises(ValueError) as info:
        load_mnist("test", data_dir=folder, mirrors=[])
    return str(info.value)


def test_a_changed_byte_fails_the_checksum(mnist_dir, local_copy):
    path = local_copy / f"{TEST_LABELS}.gz"
    path.write_bytes(gzip.compress(flip_last_byte(payload(mnist_dir, TEST_LABELS))))
    message = load_error(local_copy)
    assert str(path) in message and "SHA-256" in message and data.SHA256[TEST_LABELS] in message
    assert f"delete {path}" in message


def test_an_unmodified_copy_loads(splits, local_copy):
    images, labels = load_mnist("test", data_dir=local_copy, mirrors=[])
    np.testing.assert_array_equal(images, splits["test"][0])
    np.testing.assert_array_equal(labels, splits["test"][1])


@pytest.mark.parametrize("name, contents, expected", [
    (TEST_LABELS, idx(0x803, [10, 28, 28], b""), r"magic number 0x00000803 \(type 0x08, rank 3\); expected 0x00000801"),
    (TEST_IMAGES, idx(0x801, [10], bytes(10)), r"magic number 0x00000801 .*expected 0x00000803 .* image file"),
    (TEST_IMAGES, b"<html>Not Found</html>", r"magic number 0x3C68746D"),   # an error page saved as data
    (TEST_IMAGES, b"\x00\x00", r"no IDX header"),
    (TEST_IMAGES, idx(0x803, [1, 28], b""), r"too short for a rank-3 IDX header of 16 bytes"),
    (TEST_IMAGES, idx(0x803, [2, 27, 28], bytes(2 * 27 * 28)), r"images are 27x28, expected MNIST's 28x28"),
    (TEST_IMAGES, idx(0x803, [2, 28, 28], bytes(784)), r"promises \(2, 28, 28\) = 1568 bytes .* but 784 follow"),
    (TEST_LABELS, idx(0x801, [3], bytes(4)), r"promises \(3,\) = 3 bytes .* but 4 follow"),
])
def test_malformed_headers_are_named_and_explained(local_copy, name, contents, expected):
    path = local_copy / f"{name}.gz"
    path.write_bytes(gzip.compress(contents))
    message = load_error(local_copy)
    assert message.startswith(f"{path}: ")
    assert re.search(expected, message), message
    assert f"delete {path}" in message


@pytest.mark.parametrize("damage", [lambda raw: gzip.decompress(raw), lambda raw: raw[: len(raw) // 2]],
                         ids=["not-gzipped", "cut-short"])
def test_a_broken_gzip_file_is_reported(local_copy, damage):
    path = local_copy / f"{TEST_LABELS}.gz"
    path.write_bytes(damage(path.read_bytes()))
    message = load_error(local_copy)
    assert message.startswith(f"{path}: not a valid gzip file") and f"delete {path}" in message


def test_image_and_label_counts_must_agree(tmp_path, monkeypatch):
    # Two well-formed files whose counts differ; only their checksums are unknown,
    # so register them in place of the real ones.
    files = {TEST_IMAGES: idx(0x803, [3, 28, 28], bytes(3 * 784)), TEST_LABELS: idx(0x801, [2], bytes(2))}
    for name, contents in files.items():
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(contents))
        monkeypatch.setitem(data.SHA256, name, hashlib.sha256(contents).hexdigest())
    with pytest.raises(ValueError, match=r"holds 3 images but .* holds 2 labels"):
        load_mnist("test", data_dir=tmp_path, mirrors=[])


# ---------------------------------------------------------------- downloading


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the mirror folder, counts requests, and under /short/ announces the
    full length of a good file but sends only half of it."""

    def log_message(self, format, *args):      # keep the test output quiet
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path.startswith("/short/"):
            body = (Path(self.directory) / "good" / Path(self.path).name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            return
        super().do_GET()


@pytest.fixture(scope="module")
def server(mnist_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("mirrors")
    for folder in ("good", "corrupt", "truncated", "missing"):
        (root / folder).mkdir()
    for name in (TEST_IMAGES, TEST_LABELS):
        raw = (mnist_dir / f"{name}.gz").read_bytes()
        (root / "good" / f"{name}.gz").write_bytes(raw)
        (root / "corrupt" / f"{name}.gz").write_bytes(gzip.compress(flip_last_byte(gzip.decompress(raw)), compresslevel=1))
        (root / "truncated" / f"{name}.gz").write_bytes(raw[: len(raw) // 2])
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    with socket.socket() as sock:              # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{httpd.server_port}"
    urls = {name: f"{base}/{name}/" for name in ("good", "corrupt", "truncated", "missing", "short")}
    urls["unreachable"] = f"http://127.0.0.1:{closed_port}/"
    yield SimpleNamespace(url=urls, requests=httpd.requests)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_download_is_verified_cached_and_not_fetched_again(server, splits, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NPIXELCNN_DATA", raising=False)
    cache = tmp_path / ".cache" / "npixelcnn" / "mnist"   # the default folder: it and its parents are created
    server.requests.clear()
    images, labels = load_mnist("test", mirrors=[server.url["good"]], progress=True)
    assert server.requests == [f"/good/{TEST_IMAGES}.gz", f"/good/{TEST_LABELS}.gz"]
    assert f"{TEST_IMAGES}.gz" in capsys.readouterr().err          # the progress bar
    np.testing.assert_array_equal(images, splits["test"][0])
    np.testing.assert_array_equal(labels, splits["test"][1])
    assert sorted(os.listdir(cache)) == GOOD_FILES
    for name in (TEST_IMAGES, TEST_LABELS):
        assert hashlib.sha256(payload(cache, name)).hexdigest() == data.SUBSET_SHA256[name]

    again = load_mnist("test", data_dir=cache, mirrors=[server.url["good"]])
    assert len(server.requests) == 2                                 # served from the cache
    np.testing.assert_array_equal(again[0], images)


BAD_MIRRORS = {
    "corrupt": r"received file: SHA-256 of the decompressed data is [0-9a-f]{64}, expected",
    "truncated": r"EOFError: Compressed file ended before the end-of-stream marker",
    "missing": r"HTTP 404 File not found",
    "short": r"received \d+ bytes, the server announced \d+",
    "unreachable": r"cannot connect \(.*Connection refused\)",
}


@pytest.mark.parametrize("bad", BAD_MIRRORS)
def test_a_bad_mirror_alone_gives_a_clear_error_and_leaves_nothing(server, tmp_path, bad):
    url = server.url[bad]
    with pytest.raises(MNISTDownloadError) as info:
        load_mnist("test", data_dir=tmp_path, mirrors=[url], progress=False)
    message = str(info.value)
    assert f"could not download {TEST_IMAGES}.gz into {tmp_path}" in message
    assert re.search(rf"\n  {url}{TEST_IMAGES}\.gz: {BAD_MIRRORS[bad]}", message), message
    assert "NPIXELCNN_DATA" in message and "data_dir=" in message
    assert os.listdir(tmp_path) == []                                # no partial or temporary file


@pytest.mark.parametrize("bad", BAD_MIRRORS)
def test_a_bad_mirror_falls_through_to_the_next(server, splits, tmp_path, capsys, bad):
    server.requests.clear()
    good = server.url["good"].rstrip("/")          # a base without the trailing slash works too
    images, labels = load_mnist("test", data_dir=tmp_path, mirrors=[server.url[bad], good], progress=False)
    np.testing.assert_array_equal(images, splits["test"][0])
    np.testing.assert_array_equal(labels, splits["test"][1])
    assert sorted(os.listdir(tmp_path)) == GOOD_FILES
    tried = [] if bad == "unreachable" else [f"/{bad}/{TEST_IMAGES}.gz"]
    assert server.requests[:len(tried) + 1] == tried + [f"/good/{TEST_IMAGES}.gz"]
    assert capsys.readouterr().err == ""                             # progress=False is silent


def test_every_mirror_tried_is_listed_in_order(server, tmp_path):
    mirrors = [server.url["missing"], server.url["unreachable"], server.url["corrupt"]]
    with pytest.raises(MNISTDownloadError) as info:
        load_mnist("test", data_dir=tmp_path, mirrors=mirrors, progress=False)
    lines = [line for line in str(info.value).splitlines() if line.startswith("  ")]
    assert [line.split(f"{TEST_IMAGES}.gz: ")[0].strip() for line in lines] == mirrors
    assert os.listdir(tmp_path) == []


def test_an_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(url, out, name, progress):
        out.write(b"half a file")
        raise KeyboardInterrupt
    monkeypatch.setattr(download, "fetch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_mnist("test", data_dir=tmp_path, mirrors=["http://127.0.0.1:9/"], progress=False)
    assert os.listdir(tmp_path) == []


def test_no_mirrors_and_a_string_of_mirrors_are_explained(tmp_path):
    with pytest.raises(MNISTDownloadError, match="the list of mirrors was empty"):
        load_mnist("test", data_dir=tmp_path, mirrors=[])
    with pytest.raises(TypeError, match="wrap it in a list"):
        load_mnist("test", data_dir=tmp_path, mirrors="http://127.0.0.1:9/")


# ---------------------------------------------------------------- quantization

GREYS = np.arange(256, dtype=np.uint8)


@pytest.mark.parametrize("levels, expected", [
    (2, [0] * 128 + [1] * 128),
    (3, [0] * 86 + [1] * 85 + [2] * 85),        # floor(p * 3 / 256): 85 -> 0, 86 -> 1, 171 -> 2
    (4, [0] * 64 + [1] * 64 + [2] * 64 + [3] * 64),
    (256, list(range(256))),                    # 256 levels: the identity
])
def test_quantize_exact_values(levels, expected):
    out = quantize(GREYS, levels)
    assert out.dtype == np.uint8
    assert out.tolist() == expected


def test_every_level_count_uses_all_levels_in_equal_width_bins():
    for levels in range(2, 257):
        out = quantize(GREYS, levels)
        assert out.tolist() == [p * levels // 256 for p in range(256)], levels   # exact, in Python ints
        counts = np.bincount(out, minlength=levels)
        assert len(counts) == levels and counts.min() >= 1, levels              # 0..levels-1, all used
        assert counts.max() - counts.min() <= 1, levels                         # equal-width bins


def test_quantize_keeps_shape_and_accepts_wide_integers():
    images = np.array([[[0, 63], [64, 255]]], dtype=np.int64)
    out = quantize(images, 4)
    assert out.shape == (1, 2, 2) and out.dtype == np.uint8
    assert out.tolist() == [[[0, 0], [1, 3]]]


@pytest.mark.parametrize("levels", [2, 3, 4, 7, 16, 255, 256])
def test_dequantize_maps_the_ends_to_black_and_white(levels):
    out = dequantize(np.arange(levels), levels)
    assert out.dtype == np.uint8
    assert out[0] == 0 and out[-1] == 255
    assert np.all(np.diff(out.astype(int)) > 0)                         # distinct greys, in order
    np.testing.assert_array_equal(out, np.floor(np.arange(levels) * 255 / (levels - 1) + 0.5))


def test_dequantize_values():
    assert dequantize(np.arange(4), 4).tolist() == [0, 85, 170, 255]
    assert dequantize(np.arange(3), 3).tolist() == [0, 128, 255]       # 127.5 rounds up
    np.testing.assert_array_equal(dequantize(quantize(GREYS, 256), 256), GREYS)


def test_to_model_input_is_nhwc_float32_in_unit_range():
    levels_images = np.array([[[0, 1], [2, 3]], [[3, 3], [0, 0]]], dtype=np.uint8)
    x = to_model_input(levels_images, 4)
    assert x.shape == (2, 2, 2, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0], levels_images / 3, rtol=1e-7)
    assert x.min() == 0.0 and x.max() == 1.0


def test_real_digits_quantize_to_model_inputs(splits):
    images = splits["test"][0][:8]
    x = to_model_input(quantize(images, 4), 4)
    assert x.shape == (8, 28, 28, 1)
    np.testing.assert_array_equal(np.unique(x), np.arange(4, dtype=np.float32) / np.float32(3))


FUNCTIONS = [quantize, dequantize, to_model_input]


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("levels, error, match", [
    (1, ValueError, "levels must be at least 2, got 1"),
    (257, ValueError, "levels must be at most 256"),
    (2.5, TypeError, "levels must be an int, got float"),
    (True, TypeError, "levels must be an int, got bool"),
])
def test_bad_levels_are_rejected(function, levels, error, match):
    with pytest.raises(error, match=match):
        function(np.zeros((1, 2, 2), dtype=np.uint8), levels)


@pytest.mark.parametrize("images, error, match", [
    (np.full((1, 2, 2), 0.5), TypeError, "be an integer NumPy array, got float64"),
    (np.zeros((1, 2, 2), dtype=bool), TypeError, "be an integer NumPy array, got bool"),
    ([[0, 255]], TypeError, "be an integer NumPy array, got list"),
    (np.array([[0, 256]]), ValueError, r"hold values in \[0, 255\], got values from 0 to 256"),
    (np.array([[-1, 3]]), ValueError, r"hold values in \[0, 255\], got values from -1 to 3"),
])
def test_bad_images_are_rejected(images, error, match):
    with pytest.raises(error, match=f"quantize: images must {match}"):
        quantize(images, 4)


@pytest.mark.parametrize("function", [dequantize, to_model_input])
def test_levels_out_of_range_are_rejected(function):
    with pytest.raises(ValueError, match=rf"{function.__name__}: levels_images must hold values in \[0, 3\], got values from 0 to 4"):
        function(np.array([[[0, 4]]]), 4)
    with pytest.raises(TypeError, match="integer NumPy array, got float32"):
        function(np.zeros((1, 2, 2), dtype=np.float32), 4)


def test_to_model_input_wants_n_h_w_or_n_h_w_c():
    for shape in [(1, 2, 2, 1), (2, 2), (1, 1, 2, 2, 3)]:
        with pytest.raises(ValueError, match=r"expected \(N, H, W\) grey or \(N, H, W, C\) colour levels \(C > 1\), "
                                             rf"got shape {re.escape(str(shape))}"):
            to_model_input(np.zeros(shape, dtype=np.uint8), 4)
    grey = np.array([[[0, 3]]], dtype=np.uint8)                                  # (1, 1, 2)
    np.testing.assert_array_equal(to_model_input(grey, 4), [[[[0.0], [1.0]]]])   # (1, 1, 2, 1)
    colour = np.array([[[[0, 1, 3]]]], dtype=np.uint8)                          # (1, 1, 1, 3): R, G, B
    np.testing.assert_allclose(to_model_input(colour, 4), [[[[0.0, 1 / 3, 1.0]]]], rtol=1e-6)
