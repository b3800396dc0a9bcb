"""``python -m kvserve``: see kvserve/cli.py."""
from __future__ import annotations

import os
import sys

# Before numpy loads BLAS: the Attend kernel runs many small matrix products on its own
# threads, and BLAS threads inside each of them only contend for the same cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from kvserve.cli import main  # noqa: E402

sys.exit(main())
