"""Fashion-MNIST is read by the same loader as MNIST, with its own mirrors, checksums,
folder and variable: the committed subset loads offline, the files of one data set are
never taken for the other's, and a missing file without internet says what to do."""

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

import numpy as np
import pytest

from npixelcnn import data
from npixelcnn.data import (FASHION_CLASSES, FashionMNISTDownloadError, MNISTDownloadError,
                            load_fashion_mnist, load_mnist)

SUBSET = Path(__file__).resolve().parent / "data" / "fashion_mnist"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
TEST_FILES = sorted([f"{TEST_IMAGES}.gz", f"{TEST_LABELS}.gz"])

# Of the subset (the first 1,000 / 500 images), computed with np.bincount from the
# full files when the subset was made (tests/data/make_fashion_mnist_subset.py).
LABEL_COUNTS = {
    "train": [107, 104, 86, 92, 95, 100, 100, 115, 102, 99],
    "test": [55, 52, 65, 46, 57, 39, 47, 47, 44, 48],
}
FIRST_LABELS = {"train": [9, 0, 0, 3, 0], "test": [9, 2, 1, 1, 6]}   # ankle boot, T-shirt, ...


@pytest.fixture(scope="module")
def splits():
    return {split: load_fashion_mnist(split, data_dir=SUBSET, mirrors=[]) for split in ("train", "test")}


def payload(folder, name):
    return gzip.decompress((folder / f"{name}.gz").read_bytes())


# ---------------------------------------------------------------- the checksums


def test_the_full_files_and_the_subset_are_known_by_their_checksums():
    for name in data.FASHION_SHA256:
        assert re.fullmatch("[0-9a-f]{64}", data.FASHION_SHA256[name])
        assert re.fullmatch("[0-9a-f]{64}", data.FASHION_SUBSET_SHA256[name])
        assert data.FASHION_SHA256[name] != data.FASHION_SUBSET_SHA256[name]
        # Not MNIST's: a file of one data set can never pass for the other's.
        assert {data.FASHION_SHA256[name], data.FASHION_SUBSET_SHA256[name]}.isdisjoint(
            {data.SHA256[name], data.SUBSET_SHA256[name]})
    listed = (SUBSET / "SHA256SUMS.uncompressed").read_text().split()
    assert dict(zip(listed[1::2], listed[0::2])) == data.FASHION_SUBSET_SHA256
    for name, digest in data.FASHION_SUBSET_SHA256.items():
        assert hashlib.sha256(payload(SUBSET, name)).hexdigest() == digest


def test_the_subset_is_small():
    assert sum(path.stat().st_size for path in SUBSET.iterdir()) < 700_000


def test_the_default_mirrors_are_the_official_ones():
    assert data.FASHION_MIRRORS == [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ]
    assert data.FASHION_MNIST.mirrors is data.FASHION_MIRRORS


# ---------------------------------------------------------------- the subset, offline


@pytest.mark.parametrize("split, count", [("train", 1000), ("test", 500)])
def test_the_subset_loads_offline_with_fashion_mnist_shapes(splits, split, count):
    images, labels = splits[split]
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    assert np.bincount(labels, minlength=10).tolist() == LABEL_COUNTS[split]
    assert labels[:5].tolist() == FIRST_LABELS[split]
    assert images[0].tobytes() == payload(SUBSET, f"{data.SPLITS[split]}-images-idx3-ubyte")[16:16 + 784]


def test_ten_named_classes():
    assert len(FASHION_CLASSES) == 10 and FASHION_CLASSES[9] == "Ankle boot"


def test_clothes_are_not_digits(splits, mnist_dir):
    """What lesson 8 builds on: the two data sets look different. A garment lights up
    far more of the image than a pen stroke does."""
    fashion = splits["test"][0]
    digits = load_mnist("test", data_dir=mnist_dir, mirrors=[])[0][:len(fashion)]
    assert (fashion > 0).mean() > 1.5 * (digits > 0).mean()


@pytest.mark.skipif(not os.environ.get("NPIXELCNN_FASHION_DATA", "").strip(),
                    reason="set NPIXELCNN_FASHION_DATA to a folder of the full Fashion-MNIST files")
def test_the_full_files_load_from_the_variable():
    train, test = load_fashion_mnist("train", mirrors=[]), load_fashion_mnist("test", mirrors=[])
    assert train[0].shape == (60_000, 28, 28) and test[0].shape == (10_000, 28, 28)
    assert np.array_equal(test[0][:500], load_fashion_mnist("test", SUBSET, mirrors=[])[0])
    assert np.bincount(train[1]).tolist() == [6000] * 10


# ---------------------------------------------------------------- its own folder


def test_folder_is_data_dir_then_its_own_variable_then_its_own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NPIXELCNN_FASHION_DATA", raising=False)
    monkeypatch.setenv("NPIXELCNN_DATA", str(tmp_path / "mnist"))     # MNIST's variable is not Fashion's
    cache = tmp_path / ".cache" / "npixelcnn" / "fashion-mnist"
    assert data.resolve_data_dir(dataset=data.FASHION_MNIST) == cache
    assert data.default_data_dir(data.FASHION_MNIST) == cache
    monkeypatch.setenv("NPIXELCNN_FASHION_DATA", "")                  # empty counts as unset
    assert data.resolve_data_dir(dataset=data.FASHION_MNIST) == cache

    monkeypatch.setenv("NPIXELCNN_FASHION_DATA", str(SUBSET))
    images, _ = load_fashion_mnist("test", mirrors=[], progress=False)  # mirrors=[]: must not download
    assert images.shape == (500, 28, 28)
    with pytest.raises(FashionMNISTDownloadError, match=str(tmp_path)):  # data_dir wins over the variable
        load_fashion_mnist("test", data_dir=tmp_path, mirrors=[])
    # ... and MNIST still reads its own variable.
    assert data.resolve_data_dir() == tmp_path / "mnist"


def test_a_named_folder_that_does_not_exist_is_refused_not_created(tmp_path, monkeypatch):
    typo = tmp_path / "fashion-mnsit"
    with pytest.raises(FileNotFoundError, match=rf"data_dir {typo} does not exist; create it \(Fashion-MNIST is"):
        load_fashion_mnist("test", data_dir=typo, mirrors=["http://127.0.0.1:9/"])
    monkeypatch.setenv("NPIXELCNN_FASHION_DATA", str(typo))
    with pytest.raises(FileNotFoundError, match=rf"\$NPIXELCNN_FASHION_DATA {typo} does not exist"):
        load_fashion_mnist("test", mirrors=["http://127.0.0.1:9/"])
    assert not typo.exists()


def test_a_folder_without_the_files_and_no_mirrors_says_what_to_do(tmp_path):
    with pytest.raises(FashionMNISTDownloadError) as info:
        load_fashion_mnist("test", data_dir=tmp_path, mirrors=[])
    message = str(info.value)
    assert f"could not download {TEST_IMAGES}.gz into {tmp_path}" in message
    assert "the list of mirrors was empty" in message
    assert "copy the four Fashion-MNIST .gz files" in message
    assert "load_fashion_mnist(data_dir=...)" in message and "NPIXELCNN_FASHION_DATA" in message
    assert isinstance(info.value, MNISTDownloadError)         # code that catches MNIST's error catches this
    assert os.listdir(tmp_path) == []


def test_one_missing_file_is_named(tmp_path):
    shutil.copy(SUBSET / f"{TEST_IMAGES}.gz", tmp_path)        # the images, not the labels
    with pytest.raises(FashionMNISTDownloadError, match=f"could not download {TEST_LABELS}.gz into {tmp_path}"):
        load_fashion_mnist("test", data_dir=tmp_path, mirrors=[])


def test_no_network_gives_a_clear_error_and_leaves_nothing(tmp_path):
    with socket.socket() as sock:              # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    with pytest.raises(FashionMNISTDownloadError) as info:
        load_fashion_mnist("test", data_dir=tmp_path, mirrors=[closed], progress=False)
    assert re.search(rf"\n  {closed}{TEST_IMAGES}\.gz: cannot connect \(", str(info.value))
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- one data set is not the other


def test_mnist_files_in_a_fashion_folder_are_refused_by_their_checksum(mnist_dir, tmp_path):
    for name in TEST_FILES:
        shutil.copy(mnist_dir / name, tmp_path / name)
    with pytest.raises(ValueError) as info:
        load_fashion_mnist("test", data_dir=tmp_path, mirrors=[])
    message = str(info.value)
    assert "SHA-256 of the decompressed data" in message and "of Fashion-MNIST" in message
    assert data.FASHION_SHA256[TEST_IMAGES] in message and f"delete {tmp_path / TEST_IMAGES}.gz" in message


def test_fashion_files_in_an_mnist_folder_are_refused_by_their_checksum(tmp_path):
    for name in TEST_FILES:
        shutil.copy(SUBSET / name, tmp_path / name)
    with pytest.raises(ValueError, match=r"SHA-256 of the decompressed data .* of MNIST"):
        load_mnist("test", data_dir=tmp_path, mirrors=[])


def test_a_malformed_header_names_fashion_mnist(tmp_path):
    for name in TEST_FILES:
        shutil.copy(SUBSET / name, tmp_path / name)
    (tmp_path / f"{TEST_IMAGES}.gz").write_bytes(gzip.compress((0x801).to_bytes(4, "big") + bytes(8)))
    with pytest.raises(ValueError, match=r"expected 0x00000803 \(unsigned bytes, rank 3\) of a Fashion-MNIST image file"):
        load_fashion_mnist("test", data_dir=tmp_path, mirrors=[])


# ---------------------------------------------------------------- downloading, from a local server


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):      # keep the test output quiet
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def mirror(tmp_path_factory, mnist_dir):
    """A local mirror: /fashion/ serves the subset's test files, /mnist/ MNIST's under the same names."""
    root = tmp_path_factory.mktemp("mirror")
    for folder, source in (("fashion", SUBSET), ("mnist", mnist_dir)):
        (root / folder).mkdir()
        for name in TEST_FILES:
            shutil.copy(source / name, root / folder / name)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_port}"
    yield {"fashion": f"{base}/fashion/", "mnist": f"{base}/mnist/", "requests": httpd.requests}
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_download_into_its_own_cache_is_verified_and_not_fetched_again(mirror, splits, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NPIXELCNN_FASHION_DATA", raising=False)
    cache = tmp_path / ".cache" / "npixelcnn" / "fashion-mnist"
    images, labels = load_fashion_mnist("test", mirrors=[mirror["fashion"]], progress=False)
    assert mirror["requests"] == [f"/fashion/{TEST_IMAGES}.gz", f"/fashion/{TEST_LABELS}.gz"]
    np.testing.assert_array_equal(images, splits["test"][0])
    np.testing.assert_array_equal(labels, splits["test"][1])
    assert sorted(os.listdir(cache)) == TEST_FILES
    assert not (tmp_path / ".cache" / "npixelcnn" / "mnist").exists()
    load_fashion_mnist("test", mirrors=[mirror["fashion"]], progress=False)
    assert len(mirror["requests"]) == 2                              # served from the cache


def test_a_mirror_serving_mnist_is_refused_and_the_next_one_used(mirror, splits, tmp_path):
    images, _ = load_fashion_mnist("test", data_dir=tmp_path, mirrors=[mirror["mnist"], mirror["fashion"]],
                                   progress=False)
    np.testing.assert_array_equal(images, splits["test"][0])
    assert mirror["requests"][:2] == [f"/mnist/{TEST_IMAGES}.gz", f"/fashion/{TEST_IMAGES}.gz"]
    assert sorted(os.listdir(tmp_path)) == TEST_FILES                # no MNIST file was kept

    alone = tmp_path / "alone"
    alone.mkdir()
    with pytest.raises(FashionMNISTDownloadError, match=r"received file: SHA-256 .* of Fashion-MNIST"):
        load_fashion_mnist("test", data_dir=alone, mirrors=[mirror["mnist"]], progress=False)
    assert os.listdir(alone) == []
