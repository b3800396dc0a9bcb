"""Boxes: axis-aligned blocks of a global array, and the checks that a set of them tiles it.

A saved piece and a load target are both boxes (offsets, shape) in the
global index space; resharding is nothing more than intersecting them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True, order=True)
class Box:
    offsets: tuple[int, ...]
    shape: tuple[int, ...]

    @staticmethod
    def full(shape: Sequence[int]) -> "Box":
        return Box(tuple(0 for _ in shape), tuple(int(n) for n in shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def end(self) -> tuple[int, ...]:
        return tuple(o + n for o, n in zip(self.offsets, self.shape))

    @property
    def volume(self) -> int:
        return math.prod(self.shape)

    def intersect(self, other: "Box") -> "Box | None":
        """The common block, or None when they share no element."""
        lo = tuple(max(a, b) for a, b in zip(self.offsets, other.offsets))
        hi = tuple(min(a, b) for a, b in zip(self.end, other.end))
        if any(h <= l for l, h in zip(lo, hi)) and self.ndim:
            return None
        return Box(lo, tuple(h - l for l, h in zip(lo, hi)))

    def relative_to(self, outer: "Box") -> tuple[slice, ...]:
        """Slices selecting this box inside an array holding ``outer``."""
        return tuple(slice(o - oo, o - oo + n) for o, oo, n in zip(self.offsets, outer.offsets, self.shape))

    def fits_in(self, global_shape: Sequence[int]) -> bool:
        return len(global_shape) == self.ndim and all(
            o >= 0 and o + n <= g for o, n, g in zip(self.offsets, self.shape, global_shape))

    def __str__(self) -> str:
        return "[" + ", ".join(f"{o}:{o + n}" for o, n in zip(self.offsets, self.shape)) + "]"


def tiling_problem(boxes: Sequence[Box], global_shape: Sequence[int]) -> str | None:
    """Why ``boxes`` do not tile ``global_shape`` exactly (None when they do).

    Exact tiling = every box inside, no two overlapping, volumes summing to
    the whole. Overlaps are found by a sweep along the dimension with the
    most distinct starts, so row- or column-sharding of thousands of
    ranks stays near linear.
    """
    total = math.prod(global_shape)
    for b in boxes:
        if not b.fits_in(global_shape):
            return f"block {b} lies outside the global shape {tuple(global_shape)}"
    live = [b for b in boxes if b.volume]
    if live and live[0].ndim:
        dim = max(range(live[0].ndim), key=lambda d: len({b.offsets[d] for b in live}))
        live.sort(key=lambda b: b.offsets[dim])
        active: list[Box] = []
        for b in live:
            active = [a for a in active if a.end[dim] > b.offsets[dim]]
            for a in active:
                if a.intersect(b) is not None:
                    return f"blocks {a} and {b} overlap"
            active.append(b)
    elif len(live) > 1:
        return "a scalar (0-d) array was given by more than one distinct block"
    covered = sum(b.volume for b in live)
    if covered != total:
        return f"the blocks cover {covered} of {total} elements"
    return None
