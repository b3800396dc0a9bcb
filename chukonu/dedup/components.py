"""Step 3: candidate pairs -> ids to drop (all but the smallest id of each connected component).

Pairs are few next to documents (only near-duplicates meet in a bucket),
so they are gathered on the driver and joined with a compiled union-find.
Keeping the smallest id keeps the first document in input order, whatever
the partitioning.
"""
from __future__ import annotations

import numpy as np

from chukonu.native.unionfind import components, duplicates_to_drop


def unique_pairs(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each unordered pair once, as (smaller, larger)."""
    if len(src) == 0:
        return src, dst
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    pairs = np.unique(np.stack([lo, hi], axis=1), axis=0)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


__all__ = ["components", "duplicates_to_drop", "unique_pairs"]
