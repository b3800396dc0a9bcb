"""Sets of chunk indices as sorted, disjoint ``[start, end)`` ranges: which chunks were written.

A chunked file's shard record says which of its chunks hold bytes (issue 13,
item 8), so that a reader can tell a hole (zeros, no data-server call) from a
chunk every replica lost (EIO). Files are written mostly in order, so the set
is a handful of ranges; one written at many scattered places is coarsened to
at most :data:`MAX_RANGES` ranges by filling the smallest gaps, and is then a
superset (the caller marks it so: a chunk inside that no replica has may be a
hole). Pure functions over tuples: the shard and the client use the same.
"""
from __future__ import annotations

import bisect
from typing import Iterable

Range = tuple[int, int]
Ranges = tuple[Range, ...]

MAX_RANGES = 64


def of_bytes(offset: int, length: int, chunk_size: int) -> Range:
    """The chunks a write of ``length`` > 0 bytes at ``offset`` touches."""
    return offset // chunk_size, (offset + length - 1) // chunk_size + 1


def chunks_below(size: int, chunk_size: int) -> int:
    """How many chunks hold the first ``size`` bytes."""
    return -(-size // chunk_size)


def normalize(ranges: Iterable[Range]) -> Ranges:
    """Sorted, merged (touching ranges joined), empty ones dropped."""
    out: list[list[int]] = []
    for start, end in sorted(r for r in ranges if r[0] < r[1]):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return tuple((a, b) for a, b in out)


def add(ranges: Ranges, new: Iterable[Range], limit: int = MAX_RANGES) -> tuple[Ranges, bool]:
    """``ranges`` united with ``new``; and whether gaps had to be filled to stay within ``limit``."""
    merged = list(normalize((*ranges, *new)))
    coarsened = False
    while len(merged) > limit:
        # fill the smallest gap: the fewest hole chunks become "maybe written"
        i = min(range(len(merged) - 1), key=lambda k: merged[k + 1][0] - merged[k][1])
        merged[i:i + 2] = [(merged[i][0], merged[i + 1][1])]
        coarsened = True
    return tuple(merged), coarsened


def cut(ranges: Ranges, end: int) -> Ranges:
    """The part of ``ranges`` below chunk index ``end`` (a shrink)."""
    return tuple((a, min(b, end)) for a, b in ranges if a < end)


def subtract(ranges: Ranges, gone: Range) -> Ranges:
    """``ranges`` without the chunks of ``gone``."""
    a, b = gone
    out: list[Range] = []
    for start, end in ranges:
        if start < a:
            out.append((start, min(end, a)))
        if end > b:
            out.append((max(start, b), end))
    return tuple(out)


def covers(ranges: Ranges, index: int) -> bool:
    i = bisect.bisect_right(ranges, (index, float("inf"))) - 1
    return i >= 0 and ranges[i][0] <= index < ranges[i][1]
