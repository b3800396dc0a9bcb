"""Connected components of an edge list, by union-find with path halving.

Components are labelled by their smallest member, so "keep one document
per component" keeps the same document whatever order edges arrive in:
results do not depend on how the input was partitioned.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True)
def _components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    parent = np.arange(n)
    for e in range(left.shape[0]):
        a = _find(parent, left[e])
        b = _find(parent, right[e])
        if a != b:
            # the smaller index becomes the root: the root is the minimum
            if a < b:
                parent[b] = a
            else:
                parent[a] = b
    for x in range(n):
        parent[x] = _find(parent, x)
    return parent


def components(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(node ids, smallest id of each node's component) for the nodes that appear in an edge."""
    if len(left) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    nodes, inverse = np.unique(np.concatenate([left, right]), return_inverse=True)
    m = len(left)
    roots = _components(len(nodes), inverse[:m].astype(np.int64), inverse[m:].astype(np.int64))
    return nodes, nodes[roots]


def duplicates_to_drop(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sorted ids that are not the smallest of their component."""
    nodes, roots = components(left, right)
    return np.sort(nodes[nodes != roots])
