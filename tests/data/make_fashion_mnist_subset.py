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

import sys
from pathlib import Path

import npixelcnn as npc
from make_mnist_subset import write_subset

COUNTS = {"train": 1000, "test": 500}   # 650 KB: clothes compress worse than digits
OUT = Path(__file__).resolve().parent / "fashion_mnist"


def main(full_dir):
    write_subset(lambda split: npc.data.load_fashion_mnist(split, full_dir, mirrors=[]), COUNTS, OUT)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/work/fashion-mnist")
