"""MNIST (and Fashion-MNIST) in, quantized levels out.

MNIST is four gzip-compressed IDX files. An IDX file is a big-endian header
followed by raw bytes in row-major order:

    magic   4 bytes   0x00 0x00, a type code (0x08 = unsigned byte), the rank
    dims    4 bytes each, one per axis (images: count, 28, 28; labels: count)
    data    prod(dims) bytes

Files are looked for in a folder and downloaded into it when missing
(:mod:`npixelcnn.download`). Every file is checked twice: its header must
describe exactly the bytes that follow, and the SHA-256 of the decompressed
bytes must match the canonical data (the .gz wrappers differ between mirrors,
the payload does not) or the small subset of it that the tests ship (see
:data:`SUBSET_SHA256`).

Fashion-MNIST (Xiao et al. 2017: photographs of clothes, shoes and bags, 28x28
grey) was made as MNIST's drop-in replacement, with the same four file names,
formats and sizes, so the same code reads both (:func:`load_fashion_mnist`).
Each data set has its own mirrors, checksums, folder and environment variable:
a :class:`Dataset`.

A PixelCNN predicts each pixel as one of L levels, so the 256 grey values are
binned into L equal-width bins: level = floor(pixel * L / 256).
"""

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import DownloadError, download_first
from .validation import check_levels

ENV_VAR = "NPIXELCNN_DATA"

# Base URLs tried in turn; a file is fetched from <base><name>.gz.
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

# SHA-256 of the decompressed IDX files, the same for every mirror's copy.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# SHA-256 of the decompressed files of a subset: the first 2,000 training and
# 1,000 test images (and labels) of the same files, committed in tests/data/mnist
# (made by tests/data/make_mnist_subset.py). The tests and the lessons' fast
# mode load it like the full data, so a fresh clone needs no download.
SUBSET_SHA256 = {
    "train-images-idx3-ubyte": "729d340c0177402770b27c04f817dfb40ed8844459b35a9f11ae21067b05cf19",
    "train-labels-idx1-ubyte": "90795ea2219655a7281c0d6756d0ae8a33bebac7ec84bac89bbdcc5e3baa9f8c",
    "t10k-images-idx3-ubyte": "de7c252b04f05e1f8309634180ccdf286dc6dbac8c579b74e76e02ae0331ca52",
    "t10k-labels-idx1-ubyte": "832c0d20f0dc42e575488c75a83a970787d4c8d4d05831b2ef03701b4a478a90",
}

# Fashion-MNIST: the official repository's S3 website, then the repository on GitHub.
FASHION_ENV_VAR = "NPIXELCNN_FASHION_DATA"
FASHION_MIRRORS = [
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
]

# SHA-256 of the decompressed Fashion-MNIST files. (The official README lists
# MD5s of its .gz wrappers; a recompressed copy, e.g. Debian's dataset-fashion-mnist,
# has other wrappers and the same payload.)
FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

# The first 1,000 training and 500 test images of Fashion-MNIST, committed in
# tests/data/fashion_mnist (made by tests/data/make_fashion_mnist_subset.py).
FASHION_SUBSET_SHA256 = {
    "train-images-idx3-ubyte": "e40edda7e9d8af05f5b762673ec21bbef87429a0c217d9e7953c711409749e45",
    "train-labels-idx1-ubyte": "78ada934314bea75dcf5d086dfaad6ca75d2ed2801b6e35392fdb406a6338c12",
    "t10k-images-idx3-ubyte": "c9bd0ed7148856eb2287d902861921296d6c36d95a5113341a35554343e84123",
    "t10k-labels-idx1-ubyte": "9f5f7b9143df7bffff73a8bf7d8a53545dbf787f86e5e195c64401d2c6f8f372",
}

# What the labels 0..9 of Fashion-MNIST name.
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

SPLITS = {"train": "train", "test": "t10k"}  # split -> file name prefix
IMAGES_MAGIC, LABELS_MAGIC = 0x803, 0x801    # unsigned bytes, rank 3 / rank 1


class MNISTDownloadError(DownloadError):
    """No mirror delivered a good copy of an MNIST file."""


class FashionMNISTDownloadError(MNISTDownloadError):
    """No mirror delivered a good copy of a Fashion-MNIST file (an MNISTDownloadError too)."""


@dataclass(frozen=True)
class Dataset:
    """Where one MNIST-format data set comes from and how its files are recognised.

    name: in messages ("MNIST"); env_var: the variable naming its folder; cache:
    its folder under ~/.cache/npixelcnn; mirrors: base URLs, tried in turn;
    sha256 / subset_sha256: file name -> SHA-256 of the decompressed full file /
    of the tests' subset; error: what a failed download raises; loader: the
    function that loads it, named in that error.
    """
    name: str
    env_var: str
    cache: str
    mirrors: list
    sha256: dict
    subset_sha256: dict
    error: type
    loader: str


MNIST = Dataset("MNIST", ENV_VAR, "mnist", MIRRORS, SHA256, SUBSET_SHA256, MNISTDownloadError, "load_mnist")
FASHION_MNIST = Dataset("Fashion-MNIST", FASHION_ENV_VAR, "fashion-mnist", FASHION_MIRRORS, FASHION_SHA256,
                        FASHION_SUBSET_SHA256, FashionMNISTDownloadError, "load_fashion_mnist")


def resolve_data_dir(data_dir=None, dataset=MNIST):
    """The data set's folder: ``data_dir``, else its variable ($NPIXELCNN_DATA for
    MNIST, $NPIXELCNN_FASHION_DATA for Fashion-MNIST), else its folder in ~/.cache/npixelcnn."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(dataset.env_var, "").strip():      # set but empty counts as unset
        return Path(os.environ[dataset.env_var]).expanduser()
    return default_data_dir(dataset)


def default_data_dir(dataset=MNIST):
    """~/.cache/npixelcnn/mnist (or /fashion-mnist): the one folder the loader creates when it is missing."""
    return Path.home() / ".cache" / "npixelcnn" / dataset.cache


def check_data_dir(data_dir=None, option="data_dir", dataset=MNIST):
    """The data set's folder (see :func:`resolve_data_dir`), checked before anything is loaded.

    A folder the user named (``data_dir`` or the data set's variable) must exist
    and be a folder: a typo should not start a download into a new folder. Only
    the default cache is created on first use. ``option`` names ``data_dir`` in
    the message (the CLI says "--data-dir"). Returns the folder as a Path.
    """
    name, variable, default = dataset.name, dataset.env_var, default_data_dir(dataset)
    if data_dir is not None and not str(data_dir).strip():
        # Path("") is the current folder, where a download would then land.
        raise ValueError(f"{option} is empty; name the folder of the {name} .gz files, or leave it out "
                         f"to use ${variable} or {default}")
    folder = resolve_data_dir(data_dir, dataset)
    named = option if data_dir is not None else f"${variable}"
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{named} {folder} is a file, not a folder of {name} .gz files")
    if not folder.exists() and folder != default:
        raise FileNotFoundError(
            f"{named} {folder} does not exist; create it ({name} is downloaded into it) "
            f"or leave {named} unset to use {default}"
        )
    return folder


def load_mnist(split="train", data_dir=None, mirrors=None, progress=True):
    """Load one MNIST split, downloading its files if the folder lacks them.

    Args:
        split: "train" (60,000 images) or "test" (10,000 images).
        data_dir: folder of the .gz files; see :func:`resolve_data_dir`. A
            folder named here or in $NPIXELCNN_DATA must exist; the default
            cache folder is created.
        mirrors: base URLs to download from, in order; default :data:`MIRRORS`.
        progress: show a progress bar while downloading.

    Returns:
        (images, labels): images (N, 28, 28) uint8 grey values in [0, 255],
        labels (N,) uint8 digits in [0, 9]. N is 60,000 / 10,000, or 2,000 /
        1,000 for the tests' subset.
    """
    return _load(MNIST, split, data_dir, mirrors, progress)


def load_fashion_mnist(split="train", data_dir=None, mirrors=None, progress=True):
    """Load one Fashion-MNIST split, downloading its files if the folder lacks them.

    As :func:`load_mnist`, for Fashion-MNIST: the folder is ``data_dir``, else
    $NPIXELCNN_FASHION_DATA, else ~/.cache/npixelcnn/fashion-mnist (created on
    first use); ``mirrors`` default to :data:`FASHION_MIRRORS`; a failed
    download raises :class:`FashionMNISTDownloadError`.

    Returns:
        (images, labels): images (N, 28, 28) uint8 in [0, 255], labels (N,) uint8
        in [0, 9], the classes of :data:`FASHION_CLASSES`. N is 60,000 / 10,000,
        or 1,000 / 500 for the tests' subset (tests/data/fashion_mnist).
    """
    return _load(FASHION_MNIST, split, data_dir, mirrors, progress)


def _load(dataset, split, data_dir, mirrors, progress):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if isinstance(mirrors, str):
        raise TypeError(f"mirrors must be a list of base URLs, got the string {mirrors!r}; wrap it in a list")
    folder = check_data_dir(data_dir, dataset=dataset)
    mirrors = dataset.mirrors if mirrors is None else list(mirrors)
    prefix = SPLITS[split]
    images_name, labels_name = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
    images = _load_file(dataset, images_name, IMAGES_MAGIC, folder, mirrors, progress)
    labels = _load_file(dataset, labels_name, LABELS_MAGIC, folder, mirrors, progress)
    if len(images) != len(labels):
        raise ValueError(
            f"{folder}: {images_name}.gz holds {len(images)} images but {labels_name}.gz "
            f"holds {len(labels)} labels; they must match"
        )
    return images, labels


def _load_file(dataset, name, magic, folder, mirrors, progress):
    path = folder / f"{name}.gz"
    if not path.exists():
        return _download(dataset, name, magic, folder, mirrors, progress)
    raw = path.read_bytes()   # outside the try: a permission error is not a corrupt file
    try:
        return _decode(dataset, gzip.decompress(raw), name, magic, path)
    except (OSError, EOFError, zlib.error) as error:     # not gzip, or cut short
        problem = f"{path}: not a valid gzip file ({type(error).__name__}: {error})"
    except ValueError as error:
        problem = str(error)
    raise ValueError(f"{problem}; delete {path} and load again to download a fresh copy")


def _decode(dataset, payload, name, magic, source):
    """Check one decompressed IDX payload (bytes) and return it as a uint8 array.

    The header is checked first, for the more specific message; the checksum then
    catches any change to the data itself.
    """
    rank = magic & 0xFF                        # the magic's last byte is the rank
    found = int.from_bytes(payload[:4], "big") if len(payload) >= 4 else None
    if found != magic:
        got = "no IDX header (under 4 bytes)" if found is None else (
            f"magic number 0x{found:08X} (type 0x{found >> 8 & 0xFF:02X}, rank {found & 0xFF})")
        kind = "image" if rank == 3 else "label"
        raise ValueError(
            f"{source}: {got}; expected 0x{magic:08X} (unsigned bytes, rank {rank}) of {_a(dataset.name)} {kind} file"
        )
    header = 4 + 4 * rank
    if len(payload) < header:
        raise ValueError(f"{source}: {len(payload)} bytes, too short for a rank-{rank} IDX header of {header} bytes")
    dims = tuple(int.from_bytes(payload[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank))
    if dims[1:] not in [(), (28, 28)]:
        raise ValueError(f"{source}: images are {dims[1]}x{dims[2]}, expected {dataset.name}'s 28x28")
    size = int(np.prod(dims))
    if len(payload) - header != size:
        raise ValueError(
            f"{source}: the header promises {dims} = {size} bytes of data, but "
            f"{len(payload) - header} follow it (truncated or padded file)"
        )
    digest = hashlib.sha256(payload).hexdigest()
    full, subset = dataset.sha256[name], dataset.subset_sha256[name]
    if digest not in (full, subset):
        raise ValueError(f"{source}: SHA-256 of the decompressed data is {digest}, expected {full} "
                         f"(or {subset} for the tests' subset) of {dataset.name}")
    # Copy: frombuffer over bytes is read-only, which would surprise a caller who edits images.
    return np.frombuffer(payload, np.uint8, offset=header).reshape(dims).copy()


def _a(name):
    """The article for a data set's name: "an MNIST", "a Fashion-MNIST"."""
    return f"an {name}" if name.startswith("MNIST") else f"a {name}"


def _download(dataset, name, magic, folder, mirrors, progress):
    """Fetch <mirror><name>.gz into ``folder`` and return it decoded, as :func:`_decode` does.

    :func:`npixelcnn.download.download_first` tries the mirrors in turn; a copy is renamed
    into place only after it has passed every check, so the folder never holds a partial
    or unverified file.
    """
    target = folder / f"{name}.gz"

    def accept(tmp):
        array = _decode(dataset, gzip.decompress(tmp.read_bytes()), name, magic, "received file")
        os.replace(tmp, target)
        return array

    urls = [base.rstrip("/") + f"/{name}.gz" for base in mirrors]
    return download_first(urls, target, accept, progress, error=dataset.error, sources="mirrors", advice=(
        f"Without internet, copy the four {dataset.name} .gz files into that folder, or point "
        f"{dataset.loader}(data_dir=...) or the {dataset.env_var} environment variable at a folder that holds them."))


def quantize(images, levels):
    """Bin grey values into ``levels`` equal-width levels: floor(pixel * levels / 256).

    Args:
        images: integer array of any shape, e.g. (N, 28, 28), values in [0, 255].
        levels: int in [2, 256]; 256 returns the images unchanged.

    Returns:
        uint8 array of the same shape, values in [0, levels - 1].
    """
    check_levels(levels)
    _check_integer_array(images, 255, "images", "quantize")
    # 255 * 256 = 65280 fits uint16 but not uint8; uint16 halves the memory of uint32.
    return ((images.astype(np.uint16) * levels) >> 8).astype(np.uint8)


def dequantize(levels_images, levels):
    """Levels back to grey values for display: round(level * 255 / (levels - 1)).

    Args:
        levels_images: integer array of any shape, values in [0, levels - 1].
        levels: int in [2, 256].

    Returns:
        uint8 array of the same shape; level 0 is 0 (black), level levels-1 is 255 (white).
    """
    check_levels(levels)
    _check_integer_array(levels_images, levels - 1, "levels_images", "dequantize")
    # Integer round-half-up, floor((2 * 255 * k + (L - 1)) / (2 * (L - 1))), so no
    # float error can move a value that sits exactly on .5.
    k = levels_images.astype(np.int32)
    return ((2 * 255 * k + (levels - 1)) // (2 * (levels - 1))).astype(np.uint8)


def to_model_input(levels_images, levels):
    """Integer levels -> the model's float input, level / (levels - 1) in [0, 1].

    Args:
        levels_images: (N, H, W) grey or (N, H, W, C) colour integer levels in [0, levels - 1].
        levels: int in [2, 256].

    Returns:
        (N, H, W, 1) float32 for grey images, (N, H, W, C) for colour: NHWC.
    """
    check_levels(levels)
    _check_integer_array(levels_images, levels - 1, "levels_images", "to_model_input")
    if not (levels_images.ndim == 3 or levels_images.ndim == 4 and levels_images.shape[-1] > 1):
        raise ValueError(f"to_model_input: expected (N, H, W) grey or (N, H, W, C) colour levels (C > 1), "
                         f"got shape {levels_images.shape}")
    x = levels_images.astype(np.float32) / np.float32(levels - 1)
    return x[..., None] if x.ndim == 3 else x


def _check_integer_array(x, maximum, name, where):
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.integer):
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{where}: {name} must be an integer NumPy array, got {got}")
    if x.size and (x.min() < 0 or x.max() > maximum):
        raise ValueError(f"{where}: {name} must hold values in [0, {maximum}], got values from {x.min()} to {x.max()}")
