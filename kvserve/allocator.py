"""ExtentAllocator: pages of the shared-memory arena, handed out as extents.

The arena is cut into fixed-size pages. An object gets one contiguous run of
pages when a free run is large enough (best fit, so the uniform block sizes
of a KV cache reuse each other's holes exactly), otherwise several runs,
largest first: any request that fits in the free page count succeeds, so the
tier's byte accounting never disagrees with the allocator (no fragmentation
failures). Freed runs merge with free neighbours.

Pure bookkeeping: offsets are in pages, nothing touches memory.
"""
from __future__ import annotations

import bisect

Run = tuple[int, int]  # (first page, number of pages)


class ExtentAllocator:
    def __init__(self, first_page: int, pages: int) -> None:
        if pages < 1:
            raise ValueError("an allocator needs at least one page")
        self.total_pages = pages
        self.free_pages = pages
        self._starts: list[int] = [first_page]        # free runs, by start
        self._len_at: dict[int, int] = {first_page: pages}
        self._by_size: list[tuple[int, int]] = [(pages, first_page)]  # free runs, by (length, start)

    # -- free-run bookkeeping
    def _add_run(self, start: int, length: int) -> None:
        bisect.insort(self._starts, start)
        self._len_at[start] = length
        bisect.insort(self._by_size, (length, start))

    def _drop_run(self, start: int) -> int:
        length = self._len_at.pop(start)
        del self._starts[bisect.bisect_left(self._starts, start)]
        del self._by_size[bisect.bisect_left(self._by_size, (length, start))]
        return length

    # -- public
    def alloc(self, pages: int) -> list[Run] | None:
        """Runs totalling ``pages``, or None if fewer pages are free."""
        if pages == 0:
            return []
        if pages > self.free_pages:
            return None
        runs: list[Run] = []
        i = bisect.bisect_left(self._by_size, (pages, -1))
        if i < len(self._by_size):  # best fit: the smallest run that holds it all
            length, start = self._by_size[i]
            self._take(start, length, pages)
            runs.append((start, pages))
        else:  # no run is big enough: gather the largest ones
            left = pages
            while left:
                length, start = self._by_size[-1]
                take = min(length, left)
                self._take(start, length, take)
                runs.append((start, take))
                left -= take
        self.free_pages -= pages
        return runs

    def _take(self, start: int, length: int, pages: int) -> None:
        self._drop_run(start)
        if length > pages:
            self._add_run(start + pages, length - pages)

    def free(self, runs: list[Run]) -> None:
        for start, length in runs:
            self._free_one(start, length)
            self.free_pages += length
        assert self.free_pages <= self.total_pages

    def _free_one(self, start: int, length: int) -> None:
        i = bisect.bisect_left(self._starts, start)
        if i < len(self._starts) and self._starts[i] < start + length:
            raise ValueError(f"double free of pages {start}+{length}")
        if i > 0:  # merge with the run before
            prev = self._starts[i - 1]
            plen = self._len_at[prev]
            if prev + plen > start:
                raise ValueError(f"double free of pages {start}+{length}")
            if prev + plen == start:
                self._drop_run(prev)
                start, length = prev, plen + length
        nxt = start + length
        if nxt in self._len_at:  # merge with the run after
            length += self._drop_run(nxt)
        self._add_run(start, length)

    def free_runs(self) -> list[Run]:
        """Free runs by start (for tests)."""
        return [(s, self._len_at[s]) for s in self._starts]
