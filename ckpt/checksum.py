"""Block checksums: xxh3-64 of each fixed-size block of a piece, so any byte range can be verified.

Checksumming whole pieces would force a resharding load to read every
byte of every piece it touches; per-block sums let it read just the
blocks around the rows it needs and still verify everything it uses.
"""
from __future__ import annotations

from typing import Any

import xxhash

DEFAULT_BLOCK_SIZE = 4 << 20


def block_sum(data: Any) -> str:
    return xxhash.xxh3_64_hexdigest(data)


def block_sums(data: Any, block_size: int) -> list[str]:
    """Checksums of each ``block_size`` block of ``data`` (a bytes-like, the whole piece)."""
    view = memoryview(data).cast("B")
    return [block_sum(view[i:i + block_size]) for i in range(0, len(view), block_size)] or [block_sum(b"")]


class BlockHasher:
    """Checksums of a piece fed in arbitrary slices, cut at ``block_size`` boundaries."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.sums: list[str] = []
        self._h = xxhash.xxh3_64()
        self._filled = 0

    def update(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while len(view):
            take = min(self.block_size - self._filled, len(view))
            self._h.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self.block_size:
                self.sums.append(self._h.hexdigest())
                self._h.reset()
                self._filled = 0

    def finish(self) -> list[str]:
        if self._filled or not self.sums:
            self.sums.append(self._h.hexdigest())
        return self.sums
