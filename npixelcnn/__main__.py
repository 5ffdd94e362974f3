"""``python -m npixelcnn``: see :mod:`npixelcnn.cli`."""

import sys

import npixelcnn  # noqa: F401  (first: it sets the BLAS thread timeout before NumPy loads)
from npixelcnn.cli import main

sys.exit(main())
