"""DramTier: committed and in-flight objects in the shared-memory arena.

An object's life in DRAM::

    reserve()  space is allocated and charged against capacity; invisible
    (bytes)    the writer fills the extents (client via shared memory, or the
               gRPC service, or a promotion from SuperFS)
    commit()   the checksum is verified over the arena bytes, then the object
               becomes visible in one step: a reader never sees a partial one
    lease()    a reader holds it: it cannot be evicted, and if removed its
               pages are only freed when the last lease goes
    evict      chosen by the tier's policy (pinned objects last, leased never);
               its bytes are copied out for demotion and its pages freed

Capacity is counted in whole pages so that the allocator and the policy's
byte accounting always agree. Single-threaded: called from the event loop.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from kvserve.allocator import ExtentAllocator, Run
from kvserve.arena import Arena, Extent
from kvserve.errors import Status
from kvserve.policy import EvictionPolicy
from kvserve.tier_index import TierIndex

log = logging.getLogger(__name__)

ObjectId = tuple[str, bytes]  # (namespace, key)


@dataclass(eq=False)
class DramObject:
    size: int
    checksum: int
    runs: list[Run]
    extents: list[Extent]
    charge: int
    pinned: bool = False
    clean: bool = False     # the SuperFS tier holds the same bytes: eviction needs no write
    leases: int = 0
    removed: bool = False   # removed while leased: pages are freed with the last lease


@dataclass(eq=False)
class Slot:
    """Arena space reserved for one object being written."""

    oid: ObjectId
    size: int
    checksum: int
    pin: bool
    runs: list[Run]
    extents: list[Extent]
    charge: int
    filled: int = 0
    clean: bool = False


@dataclass
class Evicted:
    oid: ObjectId
    obj: DramObject
    data: bytes | None  # a copy of the bytes, when the caller asked to keep them


@dataclass
class DramCounters:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    corrupt: int = 0


class DramTier:
    def __init__(self, arena: Arena, page_bytes: int, policy: EvictionPolicy[ObjectId]) -> None:
        self.arena = arena
        self.page = page_bytes
        pages = arena.size // page_bytes - 1  # page 0 holds the arena's token
        self.alloc = ExtentAllocator(1, pages)
        self.index: TierIndex[ObjectId] = TierIndex(pages * page_bytes, policy)
        self.objects: dict[ObjectId, DramObject] = {}
        self.leased_bytes = 0
        self.counters = DramCounters()

    @property
    def capacity(self) -> int:
        assert self.index.capacity is not None
        return self.index.capacity

    def charge_of(self, size: int) -> int:
        return -(-size // self.page) * self.page

    def lookup(self, oid: ObjectId) -> DramObject | None:
        return self.objects.get(oid)

    # ------------------------------------------------------------ eviction

    def evict_for(self, charge: int, keep_bytes: Callable[[ObjectId, DramObject], bool]) -> list[Evicted] | None:
        """Evict until ``charge`` bytes are free; None (nothing evicted) if impossible."""
        victims = self.index.evict_for(
            charge,
            busy=lambda oid: self.objects[oid].leases > 0,
            pinned=lambda oid: self.objects[oid].pinned,
            busy_bytes=self.leased_bytes)
        if victims is None:
            return None
        out = []
        for oid, _ in victims:
            obj = self.objects.pop(oid)
            data = self.arena.to_bytes(obj.extents) if keep_bytes(oid, obj) else None
            self.alloc.free(obj.runs)
            self.counters.evictions += 1
            out.append(Evicted(oid, obj, data))
        return out

    # ----------------------------------------------------------- two-phase put

    def reserve(self, oid: ObjectId, size: int, checksum: int, pin: bool) -> Slot | None:
        """Allocate space for an object (room must have been made); None if it does not fit now."""
        charge = self.charge_of(size)
        if charge > self.index.free:
            return None
        runs = self.alloc.alloc(charge // self.page)
        if runs is None:
            return None
        self.index.reserve(charge)
        return Slot(oid, size, checksum, pin, runs, self._extents(runs, size), charge)

    def _extents(self, runs: list[Run], size: int) -> list[Extent]:
        out, left = [], size
        for start, pages in runs:
            length = min(pages * self.page, left)
            out.append((start * self.page, length))
            left -= length
        return out

    def abort(self, slot: Slot) -> None:
        self.index.unreserve(slot.charge)
        self.alloc.free(slot.runs)

    def commit(self, slot: Slot, *, verify: bool = True) -> Status:
        """Make the slot's object visible, after checking its bytes."""
        if verify and self.arena.checksum(slot.extents) != slot.checksum:
            self.counters.corrupt += 1
            self.abort(slot)
            return Status.CORRUPT
        if slot.oid in self.objects:  # another writer committed the same key first
            self.abort(slot)
            return Status.EXISTS
        self.index.unreserve(slot.charge)
        self.index.add(slot.oid, slot.charge)
        self.objects[slot.oid] = DramObject(slot.size, slot.checksum, slot.runs, slot.extents, slot.charge,
                                            pinned=slot.pin, clean=slot.clean)
        self.counters.bytes_written += slot.size
        return Status.OK

    # ----------------------------------------------------------------- reads

    def lease(self, oid: ObjectId) -> DramObject | None:
        obj = self.objects.get(oid)
        if obj is None:
            return None
        if obj.leases == 0:
            self.leased_bytes += obj.charge
        obj.leases += 1
        return obj

    def unlease(self, obj: DramObject) -> None:
        obj.leases -= 1
        assert obj.leases >= 0
        if obj.leases == 0:
            self.leased_bytes -= obj.charge
            if obj.removed:
                self.index.unreserve(obj.charge)
                self.alloc.free(obj.runs)

    def touch(self, oids: list[ObjectId]) -> None:
        """Record hits; the last key of a batch first, so chains age from the tail."""
        for oid in reversed(oids):
            self.index.touch(oid)

    # ----------------------------------------------------------------- admin

    def remove(self, oid: ObjectId) -> bool:
        obj = self.objects.pop(oid, None)
        if obj is None:
            return False
        self.index.discard(oid)
        if obj.leases:
            obj.removed = True
            self.index.reserve(obj.charge)  # still occupied until the readers let go
        else:
            self.alloc.free(obj.runs)
        return True

    def set_pinned(self, oid: ObjectId, pinned: bool) -> bool:
        obj = self.objects.get(oid)
        if obj is None:
            return False
        obj.pinned = pinned
        return True

    def stored_bytes(self) -> int:
        return sum(o.size for o in self.objects.values())
