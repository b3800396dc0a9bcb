"""TtlTable: handles that expire, for readers' leases and writers' reservations.

A lease keeps the objects a reader is copying from being evicted; a
reservation holds arena space a writer is filling. Both are handed to
clients, which may die without giving them back, so each entry expires
``ttl_s`` after it was made and the store reclaims it on its periodic sweep.

Ids start at a random 62-bit value: a client that releases a stale id after
the daemon restarted releases nothing instead of someone else's lease.
"""
from __future__ import annotations

import secrets
import time
from typing import Callable, Generic, TypeVar

V = TypeVar("V")


class TtlTable(Generic[V]):
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._next = secrets.randbits(62) | 1
        self._entries: dict[int, tuple[float, V]] = {}

    def add(self, value: V, ttl_s: float | None = None) -> int:
        handle = self._next
        self._next += 1
        self._entries[handle] = (self._clock() + (self.ttl_s if ttl_s is None else ttl_s), value)
        return handle

    def get(self, handle: int) -> V | None:
        entry = self._entries.get(handle)
        return None if entry is None else entry[1]

    def pop(self, handle: int) -> V | None:
        entry = self._entries.pop(handle, None)
        return None if entry is None else entry[1]

    def expired(self) -> list[tuple[int, V]]:
        """Remove and return the entries whose time is up."""
        now = self._clock()
        gone = [h for h, (deadline, _) in self._entries.items() if deadline <= now]
        return [(h, self._entries.pop(h)[1]) for h in gone]

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> list[V]:
        return [v for _, v in self._entries.values()]
