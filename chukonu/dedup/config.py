"""MinHashConfig: every parameter of the dedup pipeline, in one frozen dataclass.

Each step (signatures, buckets, components, verification) is configured
by the same object, so a run is described, and reproduced, by it alone.
``bands`` x ``rows`` default to the split that minimises the equal-weight
sum of false-positive and false-negative probability at ``threshold`` (the
rule datasketch uses); the permutations come from ``seed``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


def _integrate(f, lo: float, hi: float, n: int = 1001) -> float:  # type: ignore[no-untyped-def]
    x = np.linspace(lo, hi, n)
    y = f(x)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


@functools.lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimising weighted FP + FN probability."""
    best: tuple[float, int, int] | None = None
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = _integrate(lambda s: 1 - (1 - s ** r) ** b, 0.0, threshold)
            fn = _integrate(lambda s: (1 - s ** r) ** b, threshold, 1.0)
            err = fp_weight * fp + fn_weight * fn
            if best is None or err < best[0]:
                best = (err, b, r)
    assert best is not None
    return best[1], best[2]


TOKENIZERS = {"bytes", "nonword"}


@dataclass(frozen=True)
class MinHashConfig:
    column: str = "text"
    threshold: float = 0.7
    num_perm: int = 256
    ngram: int = 5
    seed: int = 42
    bands: int | None = None
    rows: int | None = None
    verify: bool = False          # check candidate pairs' exact Jaccard before joining them
    max_bucket: int = 64          # with verify, all pairs of buckets up to this size; star edges past it
    id_column: str = "__cid"
    # "bytes" (default): words are runs of [0-9A-Za-z_] or bytes >= 0x80, ASCII-lowercased (fast, in numba);
    # "nonword": the text lowercased and split on non-word characters (Unicode \W, as Python's re.split(r"\W")
    # in text-dedup-style references: punctuation outside ASCII separates words, empty pieces are words too)
    tokenizer: str = "bytes"

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {sorted(TOKENIZERS)}, got {self.tokenizer!r}")
        if self.num_perm < 1 or self.ngram < 1:
            raise ValueError("num_perm and ngram must be positive")
        b, r = self.band_rows
        if b * r > self.num_perm:
            raise ValueError(f"bands * rows = {b * r} exceeds num_perm = {self.num_perm}")

    @property
    def band_rows(self) -> tuple[int, int]:
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        if self.bands is not None:
            return self.bands, self.num_perm // self.bands
        if self.rows is not None:
            return self.num_perm // self.rows, self.rows
        return optimal_bands(self.threshold, self.num_perm)

    def permutations(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) of the multiply-shift permutations: a odd, both uint64, drawn from ``seed``."""
        rng = np.random.default_rng(self.seed)
        a = rng.integers(0, 2 ** 63, size=self.num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        b = rng.integers(0, 2 ** 63, size=self.num_perm, dtype=np.uint64) * np.uint64(2) + \
            rng.integers(0, 2, size=self.num_perm, dtype=np.uint64)
        return a, b
