"""TierIndex: what one tier holds, how full it is, and who leaves next.

Pure bookkeeping over keys and sizes, no bytes and no I/O, so the live store
(DRAM arena, SuperFS files) and the replay simulator share exactly the same
capacity and eviction decisions. Capacity ``None`` means unbounded.

Space is either *used* (committed objects) or *reserved* (objects being
written: counted against capacity, invisible to readers, never evicted).
"""
from __future__ import annotations

from typing import Callable, Generic, Hashable, Iterator, TypeVar

from kvserve.policy import EvictionPolicy

K = TypeVar("K", bound=Hashable)


class TierIndex(Generic[K]):
    def __init__(self, capacity: int | None, policy: EvictionPolicy[K]) -> None:
        if capacity is not None and capacity < 0:
            raise ValueError("capacity cannot be negative")
        self.capacity = capacity
        self.policy = policy
        self._sizes: dict[K, int] = {}
        self.used = 0
        self.reserved = 0
        self.evictions = 0

    def __contains__(self, key: object) -> bool:
        return key in self._sizes

    def __len__(self) -> int:
        return len(self._sizes)

    def __iter__(self) -> Iterator[K]:
        return iter(self._sizes)

    def size_of(self, key: K) -> int | None:
        return self._sizes.get(key)

    @property
    def free(self) -> float:
        if self.capacity is None:
            return float("inf")
        return self.capacity - self.used - self.reserved

    def fits_ever(self, size: int) -> bool:
        return self.capacity is None or size <= self.capacity

    # ------------------------------------------------------------ membership

    def add(self, key: K, size: int) -> None:
        """``key`` is now resident (its space must have been made, see evict_for)."""
        if key in self._sizes:
            raise KeyError(f"{key!r} is already resident")
        self._sizes[key] = size
        self.used += size
        self.policy.insert(key, size)

    def touch(self, key: K) -> None:
        if key in self._sizes:
            self.policy.access(key)

    def discard(self, key: K) -> int | None:
        """Drop ``key`` (not an eviction); returns its size, or None if absent."""
        size = self._sizes.pop(key, None)
        if size is not None:
            self.used -= size
            self.policy.remove(key)
        return size

    def reserve(self, size: int) -> None:
        self.reserved += size

    def unreserve(self, size: int) -> None:
        self.reserved -= size
        assert self.reserved >= 0

    # -------------------------------------------------------------- eviction

    def evict_for(self, size: int, *, busy: Callable[[K], bool] | None = None,
                  pinned: Callable[[K], bool] | None = None, busy_bytes: int = 0) -> list[tuple[K, int]] | None:
        """Evict until ``size`` more bytes fit; return the evicted (key, size) pairs.

        Busy keys (being read) are never evicted; pinned keys only once no
        unpinned key is left. Returns None, evicting nothing, when the space
        cannot be made (``busy_bytes``: the bytes of busy keys, for that check).
        """
        if self.capacity is None or size <= self.free:
            return []
        need = size - self.free
        if self.used - busy_bytes < need:
            return None
        evicted: list[tuple[K, int]] = []

        def skip_first(k: K) -> bool:
            return (busy is not None and busy(k)) or (pinned is not None and pinned(k))

        while self.free < size:
            key = self.policy.victim(skip_first)
            if key is None and pinned is not None:
                key = self.policy.victim(busy)
            if key is None:
                break  # only busy keys left: the caller sees free < size
            freed = self._sizes.pop(key)
            self.used -= freed
            self.evictions += 1
            evicted.append((key, freed))
        return evicted
