"""CIFAR-10 (Krizhevsky 2009): 60,000 colour photographs, 32x32 RGB, in 10 classes.

The binary version of the data set, cifar-10-binary.tar.gz from
https://www.cs.toronto.edu/~kriz/cifar.html, is read, not the Python version:
its batches are pickles, and unpickling a downloaded file can run any code.
The archive's folder cifar-10-batches-bin/ holds data_batch_1.bin ...
data_batch_5.bin (the 50,000 training images) and test_batch.bin (10,000),
each 10,000 records of 3,073 bytes:

    label   1 byte, 0..9 (the classes of :data:`CLASSES`)
    red     1,024 bytes: the 32x32 plane, row by row
    green   1,024 bytes
    blue    1,024 bytes

so a record's pixels are channels first, (3, 32, 32); the loader returns NHWC.

The six .bin files live in a folder (``data_dir``, else $NPIXELCNN_CIFAR10_DATA,
else ~/.cache/npixelcnn/cifar-10). When one the split needs is missing, all six
are unpacked from cifar-10-binary.tar.gz: the copy in that folder if a user put
one there, else a download streamed into a temporary file beside them. The
archive's MD5 must be the published one (:data:`ARCHIVE_MD5`) before anything
is unpacked; only the six files are unpacked, each under its own name (a path
inside the archive never decides where a file is written), and each is written
atomically (:func:`npixelcnn.files.write_atomically`). A downloaded archive is
removed once unpacked, also on an error or Ctrl-C: the folder holds complete
.bin files and nothing else.
"""

import gzip
import hashlib
import shutil
import tarfile
import zlib

import numpy as np

from .data import Dataset, check_data_dir
from .download import DownloadError, describe, download_first
from .files import write_atomically

ENV_VAR = "NPIXELCNN_CIFAR10_DATA"
URLS = ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]   # tried in turn
ARCHIVE = "cifar-10-binary.tar.gz"
# Published beside the link on https://www.cs.toronto.edu/~kriz/cifar.html.
# A module constant, so that a test can serve a small archive of its own.
ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
MEMBER_FOLDER = "cifar-10-batches-bin"

SPLITS = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
FILES = SPLITS["train"] + SPLITS["test"]
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SIDE, CHANNELS = 32, 3
RECORD_BYTES = 1 + CHANNELS * SIDE * SIDE      # 3,073: the label, then R, G and B planes
RECORDS_PER_FILE = 10_000                      # so every .bin file is 30,730,000 bytes


class CIFAR10DownloadError(DownloadError):
    """No URL delivered a good copy of cifar-10-binary.tar.gz."""


# Where the files live, as data.py describes a data set: check_data_dir reads the
# name, variable and cache folder. (URLS are whole URLs, not MNIST-style base URLs.)
CIFAR10 = Dataset("CIFAR-10", ENV_VAR, "cifar-10", URLS, {}, {}, CIFAR10DownloadError, "load_cifar10")


def load_cifar10(split="train", data_dir=None, urls=None, progress=True):
    """Load one CIFAR-10 split, downloading and unpacking the archive if the folder lacks its files.

    Args:
        split: "train" (50,000 images) or "test" (10,000 images).
        data_dir: folder of the .bin files; else $NPIXELCNN_CIFAR10_DATA, else
            ~/.cache/npixelcnn/cifar-10. A folder named here or in the variable
            must exist; the default one is created.
        urls: URLs of cifar-10-binary.tar.gz, tried in order; default :data:`URLS`.
        progress: show a progress bar while downloading.

    Returns:
        (images, labels): images (N, 32, 32, 3) uint8 RGB (NHWC), labels (N,) uint8
        in [0, 9], the classes of :data:`CLASSES`; in the files' order.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if isinstance(urls, str):
        raise TypeError(f"urls must be a list of URLs, got the string {urls!r}; wrap it in a list")
    folder = check_data_dir(data_dir, dataset=CIFAR10)
    names = SPLITS[split]
    if not all((folder / name).exists() for name in names):
        _obtain(folder, URLS if urls is None else list(urls), progress)
    batches = [_read_batch(folder / name) for name in names]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _read_batch(path):
    """One .bin file, checked: (images (n, 32, 32, 3) uint8, labels (n,) uint8)."""
    raw = path.read_bytes()
    fix = f"; delete {path} and load again to unpack a fresh copy"
    expected = RECORDS_PER_FILE * RECORD_BYTES
    if len(raw) != expected:
        raise ValueError(f"{path}: {len(raw):,} bytes, expected {expected:,} ({RECORDS_PER_FILE:,} records "
                         f"of 1 label byte and {RECORD_BYTES - 1:,} pixel bytes){fix}")
    records = np.frombuffer(raw, np.uint8).reshape(RECORDS_PER_FILE, RECORD_BYTES)
    labels = records[:, 0].copy()
    bad = np.flatnonzero(labels >= len(CLASSES))
    if bad.size:
        raise ValueError(f"{path}: record {bad[0]} has label {labels[bad[0]]}, outside 0..9 "
                         f"(a damaged file, or not a CIFAR-10 batch){fix}")
    # Each record's pixels are three planes, R then G then B; the package is NHWC, so the
    # channel axis moves last (and the copy makes the array writable and contiguous).
    planes = records[:, 1:].reshape(RECORDS_PER_FILE, CHANNELS, SIDE, SIDE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), labels


def _obtain(folder, urls, progress):
    """Put the six .bin files into ``folder``: from an archive a user put there, else from a download."""
    archive = folder / ARCHIVE
    if not archive.exists():
        return _download(folder, urls, progress)
    try:
        _check_md5(archive, str(archive))
        _unpack(archive, folder, str(archive))
    except (ValueError, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ValueError(f"{describe(error)}; delete {archive}, or replace it with a good copy "
                         f"from {URLS[0]}") from None


def _download(folder, urls, progress):
    """Download the archive from the first URL that delivers a good copy, unpack it, remove it.

    :func:`npixelcnn.download.download_first` streams each attempt into a temporary file
    in ``folder``, which it removes in every case, so that the 162 MB never stay behind
    (and a later load removes those a download stopped with kill -9 left).
    """
    def accept(tmp):
        _check_md5(tmp, "received file")
        _unpack(tmp, folder, "received file")

    download_first(urls, folder / ARCHIVE, accept, progress, error=CIFAR10DownloadError, advice=(
        f"Without internet, download {URLS[0]} elsewhere and put it in that folder (it is checked and "
        f"unpacked on the next load), or put there the six .bin files of its {MEMBER_FOLDER}/ folder "
        f"({', '.join(FILES)}); or point load_cifar10(data_dir=...) or the {ENV_VAR} environment variable "
        f"at a folder that holds them."))


def _check_md5(path, source):
    """ValueError unless the file at ``path`` has the published MD5 (``source`` names it in the message)."""
    digest = hashlib.md5(usedforsecurity=False)     # a checksum, not security: allowed on FIPS systems too
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != ARCHIVE_MD5:
        raise ValueError(f"{source}: MD5 is {digest.hexdigest()}, expected {ARCHIVE_MD5} "
                         f"(the published MD5 of {ARCHIVE})")


def _unpack(archive, folder, source):
    """Write the six .bin files of the tar.gz ``archive`` into ``folder``, each atomically.

    Only regular files named exactly cifar-10-batches-bin/<one of FILES> are read,
    and each is written as folder/<its name>: no name or link in the archive can
    make it write anywhere else. Every other member is skipped.
    """
    wanted = {f"{MEMBER_FOLDER}/{name}": name for name in FILES}
    size = RECORDS_PER_FILE * RECORD_BYTES
    found = set()
    with tarfile.open(archive, "r|gz") as tar:     # a stream: the 162 MB are read once, front to back
        for member in tar:
            name = wanted.get(member.name)
            if name is None:
                continue               # readme.html, batches.meta.txt
            if not member.isfile():
                raise ValueError(f"{source}: {member.name} is not a regular file (a link or a folder)")
            if member.size != size:
                raise ValueError(f"{source}: {member.name} holds {member.size:,} bytes, expected {size:,}")
            contents = tar.extractfile(member)
            write_atomically(folder / name, lambda f: shutil.copyfileobj(contents, f, 1 << 20))
            found.add(name)
    missing = [name for name in FILES if name not in found]
    if missing:
        raise ValueError(f"{source}: no {', '.join(missing)} in its {MEMBER_FOLDER}/ folder")
