"""Colour data. Coloured MNIST is MNIST's digits drawn by a seeded recipe, the same images
whatever the subset, its colours still distinct at 4 levels. CIFAR-10 is read from its binary
archive: checked, unpacked safely, cached, and a failed download says what it tried and what
to do offline. The CIFAR-10 tests build a small archive in the real layout and serve it from
127.0.0.1; nothing touches the network or the user's cache."""

import hashlib
import http.server
import io
import os
import re
import shutil
import socket
import tarfile
import threading
from types import SimpleNamespace

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn import cifar10, coloured_mnist, download
from npixelcnn.cifar10 import CIFAR10DownloadError, load_cifar10
from npixelcnn.coloured_mnist import PALETTE, coloured_mnist_colours, load_coloured_mnist

RECORDS = 3            # records per .bin file in the tests' archive (the real files hold 10,000)
ARCHIVE = "cifar-10-binary.tar.gz"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """HOME is a temporary folder and the data variables are unset, so no test reads or
    writes the user's cache; the CIFAR-10 loader expects files of RECORDS records."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for variable in ("NPIXELCNN_DATA", "NPIXELCNN_CIFAR10_DATA"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(cifar10, "RECORDS_PER_FILE", RECORDS)


# ================================================================ coloured MNIST


@pytest.fixture(scope="module")
def grey(mnist_dir):
    return {split: npc.load_mnist(split, data_dir=mnist_dir, mirrors=[]) for split in ("train", "test")}


@pytest.fixture(scope="module")
def coloured(mnist_dir):
    return {split: load_coloured_mnist(split, data_dir=mnist_dir, mirrors=[], progress=False)
            for split in ("train", "test")}


def two_colours(foreground, background, grey):
    """The recipe pixel by pixel: fg where grey >= 128, else bg; (n, 3), (n, 3), (n, H, W) -> (n, H, W, 3)."""
    out = np.empty(grey.shape + (3,), np.uint8)
    for i, j, k in np.ndindex(grey.shape):
        out[i, j, k] = foreground[i] if grey[i, j, k] >= 128 else background[i]
    return out


def colour_codes(levels):
    """(..., 3) levels in 0..3 -> (...) one number per colour, 16 r + 4 g + b in 0..63."""
    return levels.astype(np.int64) @ np.array([16, 4, 1])


@pytest.mark.parametrize("split, count", [("train", 2000), ("test", 1000)])
def test_coloured_mnist_is_rgb_with_mnist_labels(coloured, grey, split, count):
    images, labels = coloured[split]
    assert images.shape == (count, 28, 28, 3) and images.dtype == np.uint8
    assert images.flags.c_contiguous and images.flags.writeable
    assert labels.shape == (count,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, grey[split][1])


def test_the_recipe_draws_colours_for_the_full_splits():
    for split, full in [("train", 60_000), ("test", 10_000)]:
        foreground, background = coloured_mnist_colours(split)
        assert foreground.shape == background.shape == (full, 3)
        assert foreground.dtype == background.dtype == np.uint8


# The recipe pinned: its first colours and a digest of them all. Another palette, seed or
# draw makes another data set, so a change here must be a deliberate one.
FIRST_COLOURS = {
    "train": ([[170, 170, 170], [0, 85, 0], [85, 0, 255]], [[255, 85, 85], [0, 0, 255], [170, 170, 0]]),
    "test": ([[85, 0, 0], [170, 85, 85], [255, 0, 255]], [[255, 85, 255], [85, 0, 255], [85, 85, 255]]),
}
COLOURS_SHA256 = {
    "train": "eaa1c71d2be8385cb0bce29b5a2d671ccfee67fa5438d53956d5ea8495988c8c",
    "test": "ae1cb7d818143246bcc75e2797182a4e4f080a1c8da6ebf1d560517c0b48224f",
}


@pytest.mark.parametrize("split", ["train", "test"])
def test_the_recipe_is_deterministic_and_pinned(split):
    foreground, background = coloured_mnist_colours(split)
    again = coloured_mnist_colours(split)
    np.testing.assert_array_equal(again[0], foreground)
    np.testing.assert_array_equal(again[1], background)
    assert (foreground[:3].tolist(), background[:3].tolist()) == FIRST_COLOURS[split]
    assert hashlib.sha256(foreground.tobytes() + background.tobytes()).hexdigest() == COLOURS_SHA256[split]


def test_two_loads_give_the_same_images(coloured, mnist_dir):
    images, labels = load_coloured_mnist("test", data_dir=mnist_dir, mirrors=[], progress=False)
    np.testing.assert_array_equal(images, coloured["test"][0])
    np.testing.assert_array_equal(labels, coloured["test"][1])


def test_the_splits_have_their_own_colours():
    train, test = coloured_mnist_colours("train")[0][:10_000], coloured_mnist_colours("test")[0]
    assert np.mean(np.all(train == test, axis=1)) < 0.05       # 1/64 by chance


@pytest.mark.parametrize("split", ["train", "test"])
def test_foreground_and_background_differ_and_come_from_the_palette(split):
    foreground, background = coloured_mnist_colours(split)
    assert np.any(foreground != background, axis=1).all()
    for colours in (foreground, background):
        assert set(np.unique(colours).tolist()) <= {0, 85, 170, 255}
        np.testing.assert_array_equal(PALETTE[colour_codes(colours // 85)], colours)


def test_every_colour_and_every_pairing_is_about_equally_likely():
    foreground, background = (colour_codes(c // 85) for c in coloured_mnist_colours("train"))
    for counts in (np.bincount(foreground, minlength=64), np.bincount(background, minlength=64)):
        assert len(counts) == 64 and 800 <= counts.min() and counts.max() <= 1080   # 937.5 each, sd 30
    steps = np.bincount((background - foreground) % 64, minlength=64)
    assert steps[0] == 0 and 800 <= steps[1:].min() and steps[1:].max() <= 1110     # 952 each, sd 30


def test_each_pixel_is_its_images_ink_or_paper_colour(coloured, grey):
    """The subset's coloured images are exactly the first images of the full recipe."""
    for split in ("train", "test"):
        images, greys = coloured[split][0], grey[split][0]
        foreground, background = coloured_mnist_colours(split)
        n = 200 if split == "train" else len(images)                   # the pixel loop is slow
        np.testing.assert_array_equal(images[:n], two_colours(foreground[:n], background[:n], greys[:n]))
        # Grey 127 is paper, 128 ink: the threshold is where the recipe says.
        edge = np.nonzero(greys == 127), np.nonzero(greys == 128)
        assert len(edge[0][0]) and len(edge[1][0])
        np.testing.assert_array_equal(images[edge[0]], background[edge[0][0]])
        np.testing.assert_array_equal(images[edge[1]], foreground[edge[1][0]])


def test_an_images_colours_do_not_depend_on_how_many_images_are_loaded(coloured, grey, monkeypatch):
    images, labels = grey["train"]
    monkeypatch.setattr(coloured_mnist, "load_mnist", lambda *args, **kwargs: (images[:37], labels[:37]))
    few, _ = load_coloured_mnist("train")
    np.testing.assert_array_equal(few, coloured["train"][0][:37])


def test_the_colours_stay_distinct_at_4_levels_and_each_image_holds_only_its_own(coloured):
    assert len(np.unique(npc.quantize(PALETTE, 4), axis=0)) == 64
    np.testing.assert_array_equal(npc.quantize(PALETTE, 4), PALETTE // 85)
    images = coloured["test"][0]
    n, rows = len(images), np.arange(len(images))[:, None]
    foreground, background = (c[:n] for c in coloured_mnist_colours("test"))
    # At 4 levels image i holds exactly two colours: its ink and its paper, each a level per channel.
    used = np.zeros((n, 64), bool)
    used[rows, colour_codes(npc.quantize(images, 4)).reshape(n, -1)] = True
    assert (used.sum(axis=1) == 2).all()
    assert used[rows[:, 0], colour_codes(foreground // 85)].all()
    assert used[rows[:, 0], colour_codes(background // 85)].all()


def test_coloured_mnist_refuses_a_bad_split(mnist_dir):
    with pytest.raises(ValueError, match=r"split must be one of \['test', 'train'\], got 'val'"):
        load_coloured_mnist("val", data_dir=mnist_dir, mirrors=[])
    with pytest.raises(ValueError, match=r"got 'Train'"):
        coloured_mnist_colours("Train")


# ================================================================ CIFAR-10: a small archive


def pack(images, labels):
    """Records as the CIFAR-10 binary files hold them: a label byte, then the red, green
    and blue 32x32 planes, each row by row."""
    return b"".join(bytes([label]) + b"".join(image[:, :, c].tobytes() for c in range(3))
                    for image, label in zip(images, labels))


def tar_gz(members):
    """A tar.gz as bytes: members are (name, bytes) for a file, (name, "target") for a symbolic link."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in members:
            info = tarfile.TarInfo(name)
            if isinstance(body, str):
                info.type, info.linkname = tarfile.SYMTYPE, body
                tar.addfile(info)
            else:
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def md5(raw):
    return hashlib.md5(raw).hexdigest()


@pytest.fixture(scope="module")
def packed():
    """What the tests' archive holds: {file name: (images (3, 32, 32, 3) uint8, labels (3,) uint8)}."""
    rng = np.random.default_rng(0)
    packed = {name: (rng.integers(0, 256, (RECORDS, 32, 32, 3), dtype=np.uint8),
                     rng.integers(0, 10, RECORDS, dtype=np.uint8)) for name in cifar10.FILES}
    # One record easy to read: label 7; red counts 0, 1, 2, ... along the rows; green 100; blue 200.
    images, labels = packed["test_batch.bin"]
    images[0] = np.stack([np.arange(1024).reshape(32, 32) % 256, np.full((32, 32), 100),
                          np.full((32, 32), 200)], axis=-1)
    labels[0] = 7
    return packed


def members(packed):
    """The six files as the archive holds them: [(path in the archive, bytes)]."""
    return [(f"cifar-10-batches-bin/{name}", pack(*packed[name])) for name in cifar10.FILES]


@pytest.fixture(scope="module")
def archives(packed):
    """The archives the server offers, by name: as bytes."""
    good = members(packed)
    extras = [("cifar-10-batches-bin/batches.meta.txt", b"airplane\n"), ("cifar-10-batches-bin/readme.html", b"<html>")]
    return {
        "good": tar_gz(extras[:1] + good + extras[1:]),
        # Names that would escape the folder, and a data_batch_1.bin outside cifar-10-batches-bin/.
        "escaping": tar_gz([("../escaped.bin", b"x"), ("cifar-10-batches-bin/../../escaped2.bin", b"x"),
                            ("data_batch_1.bin", b"not this one")] + good),
        "link": tar_gz([("cifar-10-batches-bin/data_batch_1.bin", "../../escaped.bin")] + good[1:]),
        "incomplete": tar_gz(good[:-1]),
        "short_member": tar_gz(good[:1] + [(good[1][0], good[1][1][:-1])] + good[2:]),
    }


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves /<archive name>/cifar-10-binary.tar.gz; /cut/ announces the good archive's length
    and sends half of it; any other path is a 404. Counts requests."""

    def log_message(self, format, *args):      # keep the test output quiet
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        kind = self.path.strip("/").split("/")[0]
        body = self.server.archives.get("good" if kind == "cut" else kind)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if kind == "cut" else body)


@pytest.fixture(scope="module")
def server(archives):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.requests, httpd.archives = [], archives
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    with socket.socket() as sock:              # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{httpd.server_port}"
    url = {kind: f"{base}/{kind}/{ARCHIVE}" for kind in list(archives) + ["cut", "missing"]}
    url["unreachable"] = f"http://127.0.0.1:{closed_port}/{ARCHIVE}"
    yield SimpleNamespace(url=url, requests=httpd.requests)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def expect(monkeypatch, archives):
    """expect(kind): make the loader's published MD5 that of the test archive ``kind``."""
    return lambda kind: monkeypatch.setattr(cifar10, "ARCHIVE_MD5", md5(archives[kind]))


def expected_split(packed, split):
    names = cifar10.SPLITS[split]
    return np.concatenate([packed[n][0] for n in names]), np.concatenate([packed[n][1] for n in names])


@pytest.fixture
def cached(server, expect, tmp_path):
    """A folder into which the good archive has been downloaded and unpacked."""
    expect("good")
    load_cifar10("test", data_dir=tmp_path, urls=[server.url["good"]], progress=False)
    return tmp_path


def files_in(folder):
    return sorted(os.listdir(folder))


# ---------------------------------------------------------------- reading what was packed


def test_a_download_is_unpacked_into_the_default_cache_as_packed(server, expect, packed, tmp_path, capsys):
    expect("good")
    server.requests.clear()
    images, labels = load_cifar10("train", urls=[server.url["good"]])
    assert server.requests == [f"/good/{ARCHIVE}"]
    assert ARCHIVE in capsys.readouterr().err                   # the progress bar
    assert images.shape == (5 * RECORDS, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (5 * RECORDS,) and labels.dtype == np.uint8
    assert images.flags.c_contiguous and images.flags.writeable
    train_images, train_labels = expected_split(packed, "train")   # data_batch_1 ... 5, in order
    np.testing.assert_array_equal(images, train_images)
    np.testing.assert_array_equal(labels, train_labels)
    # All six files were unpacked, into the default folder, and nothing else is left there.
    cache = tmp_path / "home" / ".cache" / "npixelcnn" / "cifar-10"
    assert files_in(cache) == sorted(cifar10.FILES)
    test_images, test_labels = load_cifar10("test", urls=[server.url["good"]])
    assert len(server.requests) == 1                           # the test split came from the cache
    np.testing.assert_array_equal(test_images, expected_split(packed, "test")[0])
    np.testing.assert_array_equal(test_labels, expected_split(packed, "test")[1])


def test_a_record_is_a_label_then_red_green_and_blue_planes_row_by_row(cached, packed):
    record = pack(*packed["test_batch.bin"])[: 1 + 3072]
    assert record[:4] == bytes([7, 0, 1, 2]) and record[1 + 1024: 1 + 1026] == bytes([100, 100])
    images, labels = load_cifar10("test", data_dir=cached, urls=[])
    assert labels[0] == 7
    assert images[0, 0, 0].tolist() == [0, 100, 200]
    assert images[0, 0, 1].tolist() == [1, 100, 200]           # along the first row
    assert images[0, 1, 0].tolist() == [32, 100, 200]          # the second row starts at byte 32
    assert images[0, 31, 31].tolist() == [1023 % 256, 100, 200]


def test_a_second_load_reads_the_cache_and_fetches_nothing(cached, packed, monkeypatch):
    def no_fetch(*args):
        raise AssertionError("the cache should have been used")
    monkeypatch.setattr(download, "fetch", no_fetch)
    for split in ("train", "test"):
        images, labels = load_cifar10(split, data_dir=cached, urls=["http://127.0.0.1:9/nothing"])
        np.testing.assert_array_equal(images, expected_split(packed, split)[0])
        np.testing.assert_array_equal(labels, expected_split(packed, split)[1])


def test_the_folder_is_data_dir_then_the_variable_then_the_home_cache(server, expect, tmp_path, monkeypatch):
    expect("good")
    named = tmp_path / "named"
    named.mkdir()
    monkeypatch.setenv("NPIXELCNN_CIFAR10_DATA", str(named))
    load_cifar10("test", urls=[server.url["good"]], progress=False)
    assert files_in(named) == sorted(cifar10.FILES)
    assert not (tmp_path / "home").exists()
    typo = tmp_path / "nmaed"
    with pytest.raises(FileNotFoundError, match=rf"data_dir {typo} does not exist"):
        load_cifar10("test", data_dir=typo, urls=[server.url["good"]])
    assert not typo.exists()


# ---------------------------------------------------------------- failed downloads


def test_a_wrong_checksum_is_refused_and_leaves_nothing(server, archives, tmp_path):
    url = server.url["good"]                   # the real MD5 is expected: the test archive is not it
    with pytest.raises(CIFAR10DownloadError) as info:
        load_cifar10("test", data_dir=tmp_path, urls=[url], progress=False)
    message = str(info.value)
    assert f"\n  {url}: received file: MD5 is {md5(archives['good'])}, expected " \
           f"c32a1d4ab5d03f1284b67883e8d87530 (the published MD5 of {ARCHIVE})" in message
    assert files_in(tmp_path) == []


BAD_URLS = {
    "cut": r"received \d+ bytes, the server announced \d+",
    "missing": r"HTTP 404 Not Found",
    "unreachable": r"cannot connect \(.*Connection refused\)",
}


@pytest.mark.parametrize("bad", BAD_URLS)
def test_a_bad_url_gives_a_download_error_that_names_it_and_says_what_to_do(server, expect, tmp_path, bad):
    expect("good")
    url = server.url[bad]
    with pytest.raises(CIFAR10DownloadError) as info:
        load_cifar10("train", data_dir=tmp_path, urls=[url], progress=False)
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert message.startswith(f"could not download {ARCHIVE} into {tmp_path}. Tried:\n")
    assert re.search(rf"\n  {re.escape(url)}: {BAD_URLS[bad]}\n", message), message
    assert f"download {cifar10.URLS[0]} elsewhere and put it in that folder" in message
    assert "test_batch.bin" in message and "NPIXELCNN_CIFAR10_DATA" in message and "data_dir=" in message
    assert files_in(tmp_path) == []                           # no partial or temporary file


def test_the_urls_are_tried_in_turn(server, expect, packed, tmp_path):
    expect("good")
    server.requests.clear()
    images, _ = load_cifar10("test", data_dir=tmp_path, urls=[server.url["missing"], server.url["good"]],
                             progress=False)
    assert server.requests == [f"/missing/{ARCHIVE}", f"/good/{ARCHIVE}"]
    np.testing.assert_array_equal(images, expected_split(packed, "test")[0])


def test_no_urls_and_a_string_of_urls_are_explained(tmp_path):
    with pytest.raises(CIFAR10DownloadError, match=r"the list of URLs was empty"):
        load_cifar10("test", data_dir=tmp_path, urls=[])
    with pytest.raises(TypeError, match="wrap it in a list"):
        load_cifar10("test", data_dir=tmp_path, urls="http://127.0.0.1:9/x.tar.gz")


def test_an_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(url, out, name, progress):
        out.write(b"half an archive")
        raise KeyboardInterrupt
    monkeypatch.setattr(download, "fetch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_cifar10("test", data_dir=tmp_path, urls=["http://127.0.0.1:9/x"], progress=False)
    assert files_in(tmp_path) == []


def test_an_interrupted_unpacking_leaves_only_complete_files(server, expect, tmp_path, monkeypatch):
    expect("good")
    copied, copy = [], shutil.copyfileobj

    def interrupted_at_the_third(source, target, length=0):
        copied.append(source)
        if len(copied) == 3:
            target.write(source.read(100))
            raise KeyboardInterrupt
        copy(source, target, length)
    monkeypatch.setattr(shutil, "copyfileobj", interrupted_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        load_cifar10("test", data_dir=tmp_path, urls=[server.url["good"]], progress=False)
    assert files_in(tmp_path) == ["data_batch_1.bin", "data_batch_2.bin"]
    assert all((tmp_path / name).stat().st_size == RECORDS * 3073 for name in files_in(tmp_path))


def test_a_download_killed_earlier_is_cleaned_up(server, expect, tmp_path):
    expect("good")
    stale = tmp_path / f".{ARCHIVE}.999999999-0badf00d.tmp"    # no such process
    stale.write_bytes(b"a part of an archive")
    load_cifar10("test", data_dir=tmp_path, urls=[server.url["good"]], progress=False)
    assert files_in(tmp_path) == sorted(cifar10.FILES)


# ---------------------------------------------------------------- unpacking safely


def test_only_the_six_files_are_unpacked_and_never_outside_the_folder(server, expect, packed, tmp_path):
    expect("escaping")
    folder = tmp_path / "deep" / "cache"
    folder.mkdir(parents=True)
    images, _ = load_cifar10("train", data_dir=folder, urls=[server.url["escaping"]], progress=False)
    np.testing.assert_array_equal(images, expected_split(packed, "train")[0])   # not the top-level copy
    assert files_in(folder) == sorted(cifar10.FILES)
    assert list(tmp_path.rglob("escaped*")) == []


def test_a_link_in_place_of_a_file_is_refused(server, expect, tmp_path):
    expect("link")
    with pytest.raises(CIFAR10DownloadError, match=r"cifar-10-batches-bin/data_batch_1.bin is not a regular file"):
        load_cifar10("test", data_dir=tmp_path, urls=[server.url["link"]], progress=False)
    assert files_in(tmp_path) == [] and list(tmp_path.parent.rglob("escaped*")) == []


@pytest.mark.parametrize("kind, reason", [
    ("incomplete", r"received file: no test_batch.bin in its cifar-10-batches-bin/ folder"),
    ("short_member", r"received file: cifar-10-batches-bin/data_batch_2.bin holds 9,218 bytes, expected 9,219"),
])
def test_an_archive_without_the_expected_files_is_refused(server, expect, tmp_path, kind, reason):
    expect(kind)
    with pytest.raises(CIFAR10DownloadError, match=reason):
        load_cifar10("test", data_dir=tmp_path, urls=[server.url[kind]], progress=False)
    assert not any(name.startswith(".") for name in files_in(tmp_path))


def test_an_archive_put_in_the_folder_by_hand_is_checked_and_unpacked(archives, expect, packed, tmp_path):
    expect("good")
    archive = tmp_path / ARCHIVE
    archive.write_bytes(archives["good"])
    images, labels = load_cifar10("test", data_dir=tmp_path, urls=[])         # no download possible
    np.testing.assert_array_equal(images, expected_split(packed, "test")[0])
    np.testing.assert_array_equal(labels, expected_split(packed, "test")[1])
    assert files_in(tmp_path) == sorted(cifar10.FILES + [ARCHIVE])            # the user's archive is kept


def test_a_damaged_archive_put_by_hand_is_named(archives, expect, tmp_path):
    expect("good")
    archive = tmp_path / ARCHIVE
    archive.write_bytes(archives["good"][:-100])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(archive))}: MD5 is [0-9a-f]{{32}}, expected .*"
                                         rf"delete {re.escape(str(archive))}, or replace it"):
        load_cifar10("test", data_dir=tmp_path, urls=[])
    assert files_in(tmp_path) == [ARCHIVE]


# ---------------------------------------------------------------- a damaged cache


@pytest.mark.parametrize("damage, problem", [
    (lambda raw: raw[:-1], r"9,218 bytes, expected 9,219 \(3 records of 1 label byte and 3,072 pixel bytes\)"),
    (lambda raw: raw + b"\x00", r"9,220 bytes, expected 9,219"),
    (lambda raw: raw[:2 * 3073] + bytes([10]) + raw[2 * 3073 + 1:], r"record 2 has label 10, outside 0..9"),
])
def test_a_damaged_cached_file_is_named_with_what_is_wrong(cached, packed, damage, problem):
    path = cached / "data_batch_3.bin"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError) as info:
        load_cifar10("train", data_dir=cached, urls=[])
    message = str(info.value)
    assert message.startswith(f"{path}: ") and re.search(problem, message), message
    assert message.endswith(f"delete {path} and load again to unpack a fresh copy")
    images, _ = load_cifar10("test", data_dir=cached, urls=[])        # the other split still loads
    np.testing.assert_array_equal(images, expected_split(packed, "test")[0])


@pytest.mark.parametrize("split", ["val", "Train", "training", "data_batch_1"])
def test_cifar10_refuses_a_bad_split_before_anything_else(tmp_path, split):
    folder = tmp_path / "missing"
    with pytest.raises(ValueError, match=rf"split must be one of \['test', 'train'\], got '{split}'"):
        load_cifar10(split, data_dir=folder, urls=["http://127.0.0.1:9/x"])
    assert not folder.exists()


def test_the_package_exports_the_colour_loaders():
    assert npc.load_cifar10 is load_cifar10 and npc.CIFAR10DownloadError is CIFAR10DownloadError
    assert npc.load_coloured_mnist is load_coloured_mnist and npc.coloured_mnist_colours is coloured_mnist_colours
    assert {"load_cifar10", "CIFAR10DownloadError", "load_coloured_mnist", "coloured_mnist_colours"} <= set(npc.__all__)
    # The MD5 published beside the link on https://www.cs.toronto.edu/~kriz/cifar.html (tests replace it: expect).
    assert cifar10.ARCHIVE_MD5 == "c32a1d4ab5d03f1284b67883e8d87530"
    assert cifar10.URLS == ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]
