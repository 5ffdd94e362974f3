"""Write the MNIST subset the tests use: the first 2,000 training and 1,000 test images.

    python tests/data/make_mnist_subset.py PATH/TO/FULL/MNIST

The four files are the real MNIST files cut short: the same IDX headers with
the count changed, then the first images (or labels), gzip-compressed without
a timestamp so the same input always gives the same bytes. They are committed
with the repository, so the tests and the lessons' fast mode need no download.
npixelcnn.data knows the SHA-256 of their decompressed payloads
(SUBSET_SHA256), so load_mnist accepts them as it accepts the full files.
"""

import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np

import npixelcnn as npc

COUNTS = {"train": 2000, "test": 1000}
OUT = Path(__file__).resolve().parent / "mnist"


def idx_bytes(array, magic):
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return magic.to_bytes(4, "big") + dims + array.astype(np.uint8).tobytes()


def main(full_dir):
    write_subset(lambda split: npc.load_mnist(split, full_dir, mirrors=[]), COUNTS, OUT)   # checks the full files' SHA-256


def write_subset(load, counts, out):
    """Write the first ``counts[split]`` images and labels of ``load(split)`` into ``out`` as
    gzip-compressed IDX files, with SHA256SUMS.uncompressed beside them."""
    out.mkdir(exist_ok=True)
    sums = []
    for split, count in counts.items():
        images, labels = load(split)
        prefix = npc.data.SPLITS[split]
        for kind, array, magic in (("images-idx3", images[:count], 0x803), ("labels-idx1", labels[:count], 0x801)):
            name = f"{prefix}-{kind}-ubyte"
            payload = idx_bytes(array, magic)
            (out / f"{name}.gz").write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
            sums.append(f"{hashlib.sha256(payload).hexdigest()}  {name}")
            print(f"{name}.gz: {len(array)} items, labels {np.bincount(labels[:count], minlength=10).tolist()}"
                  if kind.startswith("labels") else f"{name}.gz: {len(array)} items")
    (out / "SHA256SUMS.uncompressed").write_text("\n".join(sums) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/mnist")
