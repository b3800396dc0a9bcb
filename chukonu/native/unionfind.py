"""Connected components of an edge list, labelled by their smallest member.

Vectorised numpy (no compiler in the driver, where this runs): every round
hooks each edge's larger root under its smaller one, then jumps pointers
until each node points at a root; it stops when both ends of every edge
share a root. The root of a component is its minimum, so "keep one
document per component" keeps the same document whatever the order of the
edges, and results do not depend on how the input was partitioned.
"""
from __future__ import annotations

import numpy as np


def _labels(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    label = np.arange(n, dtype=np.int64)
    while True:
        lu, lv = label[left], label[right]
        low = np.minimum(lu, lv)
        np.minimum.at(label, lu, low)
        np.minimum.at(label, lv, low)
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
        if np.array_equal(label[left], label[right]):
            return label


def components(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(node ids, smallest id of each node's component) for the nodes that appear in an edge."""
    if len(left) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    nodes, inverse = np.unique(np.concatenate([left, right]), return_inverse=True)
    m = len(left)
    roots = _labels(len(nodes), inverse[:m].astype(np.int64), inverse[m:].astype(np.int64))
    return nodes, nodes[roots]


def duplicates_to_drop(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sorted ids that are not the smallest of their component."""
    nodes, roots = components(left, right)
    return np.sort(nodes[nodes != roots])
