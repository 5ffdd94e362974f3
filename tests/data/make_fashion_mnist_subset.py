"""Write the Fashion-MNIST subset the tests and the lessons' fast mode use: the first
1,000 training and 500 test images (fewer than MNIST's 2,000 and 1,000: clothes
compress about three times worse than digits).

    python tests/data/make_fashion_mnist_subset.py PATH/TO/FULL/FASHION-MNIST

As tests/data/make_mnist_subset.py does for MNIST: the real files cut short (the
same IDX headers with the count changed, then the first images or labels),
gzip-compressed without a timestamp so the same input always gives the same
bytes. npixelcnn.data knows the SHA-256 of their decompressed payloads
(FASHION_SUBSET_SHA256), so load_fashion_mnist accepts them as it accepts the
full files.
"""

import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np

import npixelcnn as npc

COUNTS = {"train": 1000, "test": 500}   # 650 KB: clothes compress worse than digits
OUT = Path(__file__).resolve().parent / "fashion_mnist"


def idx_bytes(array, magic):
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return magic.to_bytes(4, "big") + dims + array.astype(np.uint8).tobytes()


def main(full_dir):
    OUT.mkdir(exist_ok=True)
    sums = []
    for split, count in COUNTS.items():
        images, labels = npc.data.load_fashion_mnist(split, full_dir, mirrors=[])   # checks the full files' SHA-256
        prefix = npc.data.SPLITS[split]
        for kind, array, magic in (("images-idx3", images[:count], 0x803), ("labels-idx1", labels[:count], 0x801)):
            name = f"{prefix}-{kind}-ubyte"
            payload = idx_bytes(array, magic)
            (OUT / f"{name}.gz").write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
            sums.append(f"{hashlib.sha256(payload).hexdigest()}  {name}")
            print(f"{name}.gz: {len(array)} items, labels {np.bincount(labels[:count], minlength=10).tolist()}"
                  if kind.startswith("labels") else f"{name}.gz: {len(array)} items")
    (OUT / "SHA256SUMS.uncompressed").write_text("\n".join(sums) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/work/fashion-mnist")
