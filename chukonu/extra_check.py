"""Imported first by every part of chukonu that needs its extra (pyarrow, pandas, numba, cloudpickle).

Without them, importing chukonu.sql, .engine, .dedup, .io or .native raises
one ModuleNotFoundError that says ``pip install 'superfs[chukonu]'``
(superfs.extras), instead of a traceback about pyarrow. ``import chukonu``
and ``chukonu --help`` work without them.
"""
from __future__ import annotations

from superfs.extras import require

require("chukonu", "chukonu")
