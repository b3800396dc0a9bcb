"""Native kernels: XXH64, MinHash signatures and bands (numba); union-find (numpy).

Python loops here are compiled to machine code on first use and cached on
disk next to the sources, so worker processes pay the compile once. Each
kernel works on plain numpy arrays (Arrow buffers viewed without copying).
"""
from __future__ import annotations

import chukonu.extra_check  # noqa: F401 - first: without the extra, one line naming it
