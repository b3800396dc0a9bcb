"""KvStore: the engine behind one daemon: DRAM tier over an optional SuperFS tier.

No gRPC here: the service decodes requests and calls these methods; tests
drive them directly. Everything runs on the daemon's event loop; blocking
work is limited to memcpy and hashing of one object at a time.

* put is two-phase: :meth:`reserve` (space in the arena, invisible) then
  :meth:`commit` (checksum verified, then visible at once).
* get is :meth:`acquire`: DRAM first; on a DRAM miss the object is looked up
  among the evicted objects waiting to be written (the demoter) and then on
  the SuperFS tier, and promoted back into DRAM. What is returned is leased
  until :meth:`release`, so it cannot be evicted while being copied.
* DRAM evictions of objects that SuperFS does not already hold are demoted
  (written there in the background); without a SuperFS tier they are lost.
* the first keys of a batch are treated as the most recently used: in a
  chain of blocks, the tail is evicted before the prefix it depends on.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Sequence

from kvserve.arena import Arena
from kvserve.config import ServerConfig
from kvserve.demoter import Demoter
from kvserve.dram import DramObject, DramTier, ObjectId, Slot
from kvserve.errors import BadRequest, Status, Tier, UnknownNamespace
from kvserve.leases import TtlTable
from kvserve.policy import make_policy
from kvserve.prefix import check_key, check_namespace_name
from kvserve.sfs_tier import SuperFsTier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PutSpec:
    key: bytes
    size: int
    checksum: int
    pin: bool = False


@dataclass
class Found:
    """An object a reader may copy: leased in DRAM (``obj``) or held as ``data``."""

    oid: ObjectId
    size: int
    checksum: int
    tier: Tier
    obj: DramObject | None = None
    data: bytes | None = None


class KvStore:
    def __init__(self, cfg: ServerConfig, arena: Arena, sfs: SuperFsTier | None = None) -> None:
        self.cfg = cfg
        self.arena = arena
        self.dram = DramTier(arena, cfg.page_bytes, make_policy(cfg.policy))
        self.sfs = sfs
        self.demoter = Demoter(sfs, cfg.demote_inflight_bytes, cfg.demote_concurrency,
                               cfg.demote_batch_bytes) if sfs else None
        self.leases: TtlTable[list[DramObject]] = TtlTable(cfg.lease_seconds)
        self.reservations: TtlTable[list[Slot]] = TtlTable(cfg.lease_seconds)
        self._namespaces = frozenset(cfg.namespaces)
        self.misses = 0
        self.puts = 0

    async def close(self, drain_s: float = 10.0) -> None:
        """Finish pending demotions (within ``drain_s``; the rest are dropped and counted). Idempotent."""
        if self.demoter is not None:
            await self.demoter.close(timeout_s=drain_s)

    # ------------------------------------------------------------ validation

    def object_ids(self, namespace: str, keys: Sequence[bytes]) -> list[ObjectId]:
        """Check a request's namespace and keys; BadRequest/UnknownNamespace otherwise."""
        try:
            check_namespace_name(namespace)
        except ValueError as e:
            raise BadRequest(str(e)) from None
        if self._namespaces and namespace not in self._namespaces:
            raise UnknownNamespace(f"namespace {namespace!r} is not served here")
        if len(keys) > self.cfg.max_keys:
            raise BadRequest(f"{len(keys)} keys in one request (at most {self.cfg.max_keys})")
        try:
            return [(namespace, check_key(k)) for k in keys]
        except (TypeError, ValueError) as e:
            raise BadRequest(f"malformed key: {e}") from None

    def held(self, oid: ObjectId) -> Tier:
        if oid in self.dram.objects:
            return Tier.DRAM
        if self.demoter is not None and oid in self.demoter:
            return Tier.SUPERFS
        if self.sfs is not None and oid in self.sfs:
            return Tier.SUPERFS
        return Tier.NONE

    # -------------------------------------------------------------------- put

    async def reserve(self, namespace: str, specs: Sequence[PutSpec]) -> list[tuple[Status, Slot | None]]:
        """Phase one of a put: arena space per object (OK), or why not."""
        oids = self.object_ids(namespace, [s.key for s in specs])
        out: list[tuple[Status, Slot | None]] = []
        for oid, spec in zip(oids, specs):
            if spec.size < 0 or spec.size > self.cfg.max_object_bytes:
                out.append((Status.TOO_LARGE, None))
                continue
            if self.held(oid) is not Tier.NONE:
                self.dram.touch([oid])  # a re-put is a use
                out.append((Status.EXISTS, None))
                continue
            slot = await self._reserve_slot(oid, spec.size, spec.checksum, spec.pin)
            out.append((Status.OK, slot) if slot is not None else (Status.NO_SPACE, None))
        return out

    def park(self, slots: list[Slot]) -> int:
        """Hand reserved slots to a client as one handle (0 for none); they expire if never committed."""
        return self.reservations.add(slots) if slots else 0

    async def _reserve_slot(self, oid: ObjectId, size: int, checksum: int, pin: bool) -> Slot | None:
        charge = self.dram.charge_of(size)
        if charge > self.dram.index.free:
            await self._make_room(charge)
        return self.dram.reserve(oid, size, checksum, pin)

    async def _make_room(self, charge: int) -> None:
        if self.demoter is not None:
            await self.demoter.wait_for_room()
        sfs = self.sfs

        def keep(oid: ObjectId, obj: DramObject) -> bool:  # SuperFS may have evicted its copy since
            return sfs is not None and not (obj.clean and oid in sfs)

        evicted = self.dram.evict_for(charge, keep_bytes=keep)
        for e in evicted or ():
            log.debug("evicted %s (%d bytes)%s", e.oid[1].hex(), e.obj.size, " to SuperFS" if e.data else "")
            if e.data is not None and self.demoter is not None:
                self.demoter.submit(e.oid, e.data, e.obj.checksum)

    def commit(self, handle: int, *, abort: bool = False, checksums: Sequence[int] = ()) -> list[Status]:
        """Phase two: make the reserved objects visible (or give the space back).

        ``checksums`` (one per reserved object) replace those given at reserve.
        """
        slots = self.reservations.pop(handle)
        if slots is None:
            raise BadRequest(f"reservation {handle} is unknown or expired")
        if checksums and len(checksums) != len(slots):
            for s in slots:
                self.dram.abort(s)
            raise BadRequest(f"{len(checksums)} checksums for {len(slots)} reserved objects")
        for s, c in zip(slots, checksums):
            s.checksum = c
        if abort:
            for s in slots:
                self.dram.abort(s)
            return [Status.ABORTED] * len(slots)
        return self.commit_slots(slots)

    def commit_slots(self, slots: Sequence[Slot], *, verify: bool = True) -> list[Status]:
        """Commit in reverse order: the first object of a batch (a chain's prefix) enters last,
        so the policy treats it as the newest and evicts the chain from its tail.

        ``verify=False``: the caller has checked the bytes against the checksums."""
        statuses = [self.dram.commit(s, verify=verify) for s in reversed(slots)][::-1]
        self.puts += sum(1 for st in statuses if st is Status.OK)
        return statuses

    # -------------------------------------------------------------------- get

    async def acquire(self, namespace: str, keys: Sequence[bytes], *, prefix: bool = False) -> list[Found | None]:
        """Look keys up (promoting from SuperFS); found objects are leased until release().

        With ``prefix`` the answer stops at the first missing key.
        """
        oids = self.object_ids(namespace, keys)
        found: list[Found | None] = [None] * len(oids)
        for i, oid in enumerate(oids):
            obj = self.dram.lease(oid)
            if obj is not None:
                found[i] = Found(oid, obj.size, obj.checksum, Tier.DRAM, obj=obj)
        if prefix:
            # only fetch what can extend the prefix: stop at the first key held nowhere
            end = next((i for i, oid in enumerate(oids) if found[i] is None and self.held(oid) is Tier.NONE),
                       len(oids))
        else:
            end = len(oids)
        todo = [i for i in range(end) if found[i] is None]
        if todo:
            lower = await self._read_lower([oids[i] for i in todo])
            fetched = await asyncio.gather(*(self._fetch_lower(oids[i], got) for i, got in zip(todo, lower)))
            for i, f in zip(todo, fetched):
                found[i] = f
        if prefix:
            cut = next((i for i, f in enumerate(found) if f is None), len(found))
            self.release([f for f in found[cut:] if f is not None])
            found = found[:cut]
        hits = [f.oid for f in found if f is not None and f.tier is Tier.DRAM]
        stopped = 1 if prefix and len(found) < len(oids) else 0  # the key a prefix lookup stopped at
        self.dram.counters.hits += len(hits)
        self.dram.counters.misses += len(found) - len(hits) + stopped
        self.dram.touch(hits)
        self.misses += sum(1 for f in found if f is None) + stopped
        return found

    async def _read_lower(self, oids: list[ObjectId]) -> list[tuple[tuple[bytes, int], bool] | None]:
        """Per object: ((bytes, checksum), clean) from below DRAM (waiting demotion, or on SuperFS,
        read together: neighbours in a segment come in one read), or None."""
        out: list[tuple[tuple[bytes, int], bool] | None] = [None] * len(oids)
        on_sfs = []
        for i, oid in enumerate(oids):
            got = self.demoter.lookup(oid) if self.demoter is not None else None
            if got is not None:
                assert self.sfs is not None
                self.sfs.counters.hits += 1  # on its way to the SuperFS tier: a hit there
                out[i] = (got, False)
            elif self.sfs is not None:
                on_sfs.append(i)
        if on_sfs and self.sfs is not None:
            read = await self.sfs.read_batch([oids[i] for i in on_sfs])
            for i, got in zip(on_sfs, read):
                out[i] = (got, True) if got is not None else None
        return out

    async def _fetch_lower(self, oid: ObjectId, lower: tuple[tuple[bytes, int], bool] | None) -> Found | None:
        """An object read from below DRAM (``lower``), promoted if room allows."""
        if lower is None:
            return None
        got, clean = lower
        data, checksum = got
        obj = self.dram.lease(oid)  # promoted by a concurrent reader meanwhile?
        if obj is None and len(data) <= self.cfg.max_object_bytes:
            slot = await self._reserve_slot(oid, len(data), checksum, pin=False)
            if slot is not None:
                slot.clean = clean
                self.arena.write(slot.extents, data)
                self.dram.commit(slot, verify=False)  # verified as it was read
                obj = self.dram.lease(oid)
        if obj is not None:
            return Found(oid, obj.size, obj.checksum, Tier.SUPERFS, obj=obj)
        return Found(oid, len(data), checksum, Tier.SUPERFS, data=data)

    def release(self, found: Sequence[Found | None]) -> None:
        for f in found:
            if f is not None and f.obj is not None:
                self.dram.unlease(f.obj)

    def hold(self, found: Sequence[Found | None]) -> int:
        """Turn the DRAM leases of ``found`` into a handle a client gives back later."""
        objs = [f.obj for f in found if f is not None and f.obj is not None]
        return self.leases.add(objs) if objs else 0

    def release_handles(self, handles: Sequence[int]) -> None:
        for h in handles:
            for obj in self.leases.pop(h) or ():
                self.dram.unlease(obj)

    # ----------------------------------------------------------------- admin

    def exists(self, namespace: str, keys: Sequence[bytes]) -> list[Tier]:
        return [self.held(oid) for oid in self.object_ids(namespace, keys)]

    async def remove(self, namespace: str, keys: Sequence[bytes]) -> list[Status]:
        out = []
        for oid in self.object_ids(namespace, keys):
            gone = self.dram.remove(oid)
            if self.demoter is not None and oid in self.demoter:
                self.demoter.cancel(oid)
                gone = True
            if self.sfs is not None:
                gone = await self.sfs.remove(oid) or gone
            out.append(Status.OK if gone else Status.MISSING)
        return out

    def pin(self, namespace: str, keys: Sequence[bytes], pinned: bool) -> list[Status]:
        return [Status.OK if self.dram.set_pinned(oid, pinned) else Status.MISSING
                for oid in self.object_ids(namespace, keys)]

    def sweep(self) -> None:
        """Reclaim what clients took and never gave back (called every second)."""
        for handle, objs in self.leases.expired():
            log.debug("lease %d expired", handle)
            for obj in objs:
                self.dram.unlease(obj)
        for handle, slots in self.reservations.expired():
            log.debug("reservation %d expired", handle)
            for s in slots:
                self.dram.abort(s)

    # ----------------------------------------------------------------- stats

    def stats(self) -> dict[str, object]:
        """Counters and gauges, for the Stats RPC and the Prometheus endpoint."""
        d = self.dram
        dram = {"objects": len(d.objects), "bytes": d.index.used, "capacity": d.capacity,
                "hits": d.counters.hits, "misses": d.counters.misses, "evictions": d.counters.evictions, "bytes_read": d.counters.bytes_read,
                "bytes_written": d.counters.bytes_written, "corrupt": d.counters.corrupt}
        sfs: dict[str, int] = {}
        if self.sfs is not None:
            c = self.sfs.counters
            sfs = {"objects": len(self.sfs.index), "bytes": self.sfs.index.used,
                   "capacity": self.sfs.index.capacity or 0, "hits": c.hits, "misses": self.misses, "evictions": c.evictions,
                   "bytes_read": c.bytes_read, "bytes_written": c.bytes_written, "corrupt": c.corrupt}
        return {"dram": dram, "superfs": sfs, "misses": self.misses, "puts": self.puts,
                "leases_active": len(self.leases),
                "demotions_dropped": self.demoter.dropped if self.demoter is not None else 0}
