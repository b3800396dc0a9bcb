"""SuperFsTier: objects evicted from DRAM, in segment files on a SuperFS cluster.

Layout under the daemon's root directory (through ``superfs.client`` only)::

    ROOT/@segments/<run>-<n>                    a segment: objects demoted together (kvserve/segments.py)
    ROOT/<namespace, %-quoted>/<key hex>        one object per file (written by earlier versions; read, removed)

Demotions come in batches (kvserve/demoter.py): a batch is one segment
file, created, written in one go (a chunk write on SuperFS's byte path, sent
once and chained to every replica) and sized; then its objects enter the
index. That is the commit point: no reader ever opens a partial segment,
without paying for a rename. A segment torn by a crash has no sound
footer: the listing that rebuilds the index at the next start deletes it.
('@' is quoted in namespace directory names, so no namespace meets the
segments' directory.)

The index maps each object to its segment, offset and checksum; a read is
one ranged read of the segment (its node is kept open, so no lookup), and
checked against the checksum: a damaged, truncated or overwritten object is
a miss (and forgotten), never wrong bytes. An object evicted from the tier
leaves the index; its segment is deleted with the last of its objects.
Objects evicted together were demoted together, mostly (LRU), so segments
empty out whole; the space of an evicted object is only given back with its
segment (the waste is bounded by the segments still partly live).
"""
from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import quote, unquote

from superfs.client import AsyncFs

from kvserve import segments
from kvserve.dram import ObjectId
from kvserve.objfile import decode_object
from kvserve.policy import EvictionPolicy
from kvserve.tier_index import TierIndex

log = logging.getLogger(__name__)

SEGMENT_DIR = "@segments"
TMP_PREFIX = ".tmp-"   # written by older versions: deleted at start
IO_PIECE = 16 << 20    # the client library moves at most 64 MiB per call
OPEN_SEGMENTS = 256    # segment nodes kept open (a read needs no lookup)
COALESCE_GAP = 256 * 1024   # objects of one segment this close are read in one request...
COALESCE_MAX = 8 << 20      # ...of at most this many bytes

Item = tuple[ObjectId, bytes, int]   # (object, payload, checksum)


@dataclass
class SfsCounters:
    hits: int = 0
    evictions: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    corrupt: int = 0
    write_errors: int = 0
    segments_written: int = 0


@dataclass(frozen=True)
class Where:
    """Where an object lives: a segment's range, or (``segment`` None) a file of its own."""

    segment: str | None
    offset: int = 0
    size: int = 0
    checksum: int = 0


class SuperFsTier:
    def __init__(self, fs: AsyncFs, root: str, capacity: int | None, policy: EvictionPolicy[ObjectId]) -> None:
        self.fs = fs
        self.root = root.rstrip("/") or "/"
        self.index: TierIndex[ObjectId] = TierIndex(capacity, policy)
        self.counters = SfsCounters()
        self._where: dict[ObjectId, Where] = {}
        self._live: dict[str, int] = {}          # segment -> objects of it still in the index
        self._nodes: OrderedDict[str, Any] = OrderedDict()  # open segment nodes, least recently used first
        self._run = uuid.uuid4().hex[:12]        # segment names of this run never meet an earlier run's
        self._seq = 0
        self._busy: dict[ObjectId, int] = {}     # objects being read: never evicted under the reader
        self._space = asyncio.Condition()        # signalled when a write in flight gives its room back

    # ---------------------------------------------------------------- naming

    def dir_of(self, namespace: str) -> str:
        return f"{self.root}/{quote(namespace, safe='')}"

    def path_of(self, oid: ObjectId) -> str:
        """Where an object of its own file lives (the layout of earlier versions)."""
        return f"{self.dir_of(oid[0])}/{oid[1].hex()}"

    def segment_path(self, name: str) -> str:
        return f"{self.root}/{SEGMENT_DIR}/{name}"

    def location(self, oid: ObjectId) -> tuple[str, int, int] | None:
        """(file, offset, size) of a held object (tests, operators)."""
        w = self._where.get(oid)
        if w is None:
            return None
        if w.segment is None:
            return self.path_of(oid), 0, w.size
        return self.segment_path(w.segment), w.offset, w.size

    @property
    def segment_count(self) -> int:
        return len(self._live)

    # ----------------------------------------------------------------- start

    async def start(self) -> None:
        """Create the root and rebuild the index from what an earlier run left."""
        await self.fs.makedirs(f"{self.root}/{SEGMENT_DIR}", exist_ok=True)
        found = 0
        for entry in await self.fs.scandir(f"{self.root}/{SEGMENT_DIR}"):
            st = entry.stat()
            size = st.st_size if st is not None else (await self.fs.stat(entry.path)).st_size
            found += await self._load_segment(entry.name, size)
        for ns_entry in await self.fs.scandir(self.root):
            if not ns_entry.is_dir() or ns_entry.name == SEGMENT_DIR:
                continue
            namespace = unquote(ns_entry.name)
            for entry in await self.fs.scandir(ns_entry.path):
                if entry.name.startswith(TMP_PREFIX):
                    await self._unlink(entry.path)
                    continue
                try:
                    key = bytes.fromhex(entry.name)
                except ValueError:
                    continue
                st = entry.stat()
                size = st.st_size if st is not None else (await self.fs.stat(entry.path)).st_size
                oid = (namespace, key)
                if oid not in self.index:
                    self.index.add(oid, size)
                    self._where[oid] = Where(None, 0, size)
                    found += 1
        log.debug("SuperFS tier at %s holds %d objects (%d bytes) in %d segments", self.root, found,
                  self.index.used, len(self._live))

    async def _load_segment(self, name: str, size: int) -> int:
        """Index a segment's objects from its footer; delete it if torn (or holding nothing new)."""
        path = self.segment_path(name)
        entries = None
        try:
            node = await self.fs.open_node(path, os.O_RDONLY)
            if size >= segments.TRAILER.size:
                trailer = await self.fs.read_at(node, size - segments.TRAILER.size, segments.TRAILER.size)
                length = segments.footer_length(trailer, size)
                if length is not None:
                    raw = await self.fs.read_at(node, size - segments.TRAILER.size - length, length)
                    entries = segments.decode_footer(raw, size)
        except OSError as e:
            log.warning("cannot read segment %s: %s", path, e)
            return 0
        if entries is None:
            log.warning("segment %s is torn (no sound footer): deleted", path)
            await self._unlink(path)
            return 0
        added = 0
        for entry in entries:
            oid = (entry.namespace, entry.key)
            if oid in self.index or not self.index.fits_ever(entry.size):
                continue
            self.index.add(oid, entry.size)
            self._where[oid] = Where(name, entry.offset, entry.size, entry.checksum)
            added += 1
        if added:
            self._live[name] = added
        else:
            await self._unlink(path)
        return added

    # ------------------------------------------------------------------ I/O

    def __contains__(self, oid: object) -> bool:
        return oid in self.index

    async def write(self, oid: ObjectId, data: bytes, checksum: int) -> bool:
        """Store one object (replacing nothing: objects are immutable); False on failure."""
        return (await self.write_batch([(oid, data, checksum)]))[0]

    async def write_batch(self, items: Sequence[Item]) -> list[bool]:
        """Store objects as one segment; per object, whether the tier holds it afterwards."""
        held = [oid in self.index for oid, _, _ in items]
        todo = [(i, it) for i, it in enumerate(items) if not held[i] and self.index.fits_ever(len(it[1]))]
        if not todo:
            return held
        total = sum(len(it[1]) for _, it in todo)
        if not self.index.fits_ever(total) and len(todo) > 1:  # a small tier: in halves
            half = len(todo) // 2
            first = await self.write_batch([it for _, it in todo[:half]])
            second = await self.write_batch([it for _, it in todo[half:]])
            for (i, _), ok in zip(todo, first + second):
                held[i] = ok
            return held
        claimed, victims = await self._claim(total)
        for victim, _ in victims:
            self.counters.evictions += 1
            await self._forget(victim)
        if not claimed:
            return held
        self._seq += 1
        name = f"{self._run}-{self._seq:08d}"
        blob, entries = segments.encode([(oid[0], oid[1], data, checksum) for _, (oid, data, checksum) in todo])
        try:
            await self._write_file(self.segment_path(name), blob)
        except OSError as e:
            self.counters.write_errors += 1
            log.warning("writing segment %s (%d objects) to SuperFS failed: %s", self.segment_path(name),
                        len(todo), e)
            return held
        finally:
            self.index.unreserve(total)
            async with self._space:
                self._space.notify_all()
        self.counters.segments_written += 1
        live = 0
        for (i, (oid, _, _)), entry in zip(todo, entries):
            if oid not in self.index:  # (written concurrently by another batch: that copy counts)
                self.index.add(oid, entry.size)
                self._where[oid] = Where(name, entry.offset, entry.size, entry.checksum)
                self.counters.bytes_written += entry.size
                live += 1
            held[i] = True
        if live:
            self._live[name] = live
        else:
            await self._unlink(self.segment_path(name))
        return held

    async def _claim(self, size: int) -> tuple[bool, list[tuple[ObjectId, int]]]:
        """Evict for ``size`` bytes and reserve them with no await in between, so concurrent
        writers cannot overbook; room held by writes in flight is waited for.
        Returns (reserved, the objects evicted, which the caller forgets)."""
        evicted: list[tuple[ObjectId, int]] = []
        async with self._space:
            while True:
                evicted += self.index.evict_for(size, busy=lambda o: o in self._busy) or []
                if self.index.free >= size:
                    self.index.reserve(size)
                    return True, evicted
                if not self.index.reserved:
                    return False, evicted
                await self._space.wait()

    async def _write_file(self, path: str, blob: bytes) -> None:
        node = await self.fs.open_node(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(blob)
            end = 0
            for pos in range(0, len(blob), IO_PIECE):
                end = await self.fs.write_at(node, pos, view[pos:pos + IO_PIECE], defer_size=True)
            await self.fs.commit_size(node, end)
        except BaseException:
            await self._unlink(path)
            raise

    async def read(self, oid: ObjectId) -> tuple[bytes, int] | None:
        """(bytes, checksum) of a held object, or None (missing, unreadable or corrupt)."""
        w = self._where.get(oid)
        if w is None or oid not in self.index:
            return None
        self._busy[oid] = self._busy.get(oid, 0) + 1
        try:
            if w.segment is None:
                found = decode_object(await self._read_whole(self.path_of(oid)), oid[0], oid[1])
            else:
                data = await self._read_range(w)
                found = (data, w.checksum) if segments.sound(data, segments.Entry(
                    oid[0], oid[1], w.offset, w.size, w.checksum)) else None
        except FileNotFoundError:
            if self.index.discard(oid) is not None:
                await self._forget(oid)
            return None
        except OSError as e:
            log.warning("reading %s from SuperFS failed: %s", oid[1].hex(), e)
            return None
        finally:
            n = self._busy.pop(oid) - 1
            if n:
                self._busy[oid] = n
        if found is None:
            self.counters.corrupt += 1
            log.warning("object %s/%s on SuperFS fails its checksum: forgotten", oid[0], oid[1].hex())
            await self.remove(oid)
            return None
        self.index.touch(oid)
        self.counters.hits += 1
        self.counters.bytes_read += len(found[0])
        return found

    async def read_batch(self, oids: Sequence[ObjectId]) -> list[tuple[bytes, int] | None]:
        """:meth:`read` of several objects; neighbours in one segment come in one ranged read.

        A request's missing blocks were mostly demoted together, so they sit
        side by side in a segment: one byte-path read brings them all.
        """
        out: list[tuple[bytes, int] | None] = [None] * len(oids)
        runs: dict[str, list[tuple[int, int, Where]]] = {}
        singles: list[int] = []
        for i, oid in enumerate(oids):
            w = self._where.get(oid)
            if w is None or oid not in self.index:
                continue
            if w.segment is None:
                singles.append(i)
            else:
                runs.setdefault(w.segment, []).append((w.offset, i, w))
        groups: list[list[tuple[int, int, Where]]] = []
        for entries in runs.values():
            entries.sort(key=lambda e: e[0])
            group = [entries[0]]
            for e in entries[1:]:
                start, end = group[0][0], group[-1][0] + group[-1][2].size
                if e[0] - end <= COALESCE_GAP and e[0] + e[2].size - start <= COALESCE_MAX:
                    group.append(e)
                else:
                    groups.append(group)
                    group = [e]
            groups.append(group)

        async def one_group(group: list[tuple[int, int, Where]]) -> None:
            if len(group) == 1:
                out[group[0][1]] = await self.read(oids[group[0][1]])
                return
            members = [oids[i] for _, i, _ in group]
            for oid in members:
                self._busy[oid] = self._busy.get(oid, 0) + 1
            try:
                start = group[0][0]
                span = group[-1][0] + group[-1][2].size - start
                first = group[0][2]
                data = await self._read_range(Where(first.segment, start, span))
            except OSError as e:
                log.warning("reading %d objects from SuperFS failed: %s", len(group), e)
                return
            finally:
                for oid in members:
                    n = self._busy.pop(oid) - 1
                    if n:
                        self._busy[oid] = n
            for (off, i, w), oid in zip(group, members):
                piece = data[off - start:off - start + w.size]
                if segments.sound(piece, segments.Entry(oid[0], oid[1], w.offset, w.size, w.checksum)):
                    self.index.touch(oid)
                    self.counters.hits += 1
                    self.counters.bytes_read += w.size
                    out[i] = (piece, w.checksum)
                else:
                    out[i] = await self.read(oid)  # on its own: counts and forgets it if corrupt

        await asyncio.gather(*(one_group(g) for g in groups), *(self._single(oids, i, out) for i in singles))
        return out

    async def _single(self, oids: Sequence[ObjectId], i: int, out: list[tuple[bytes, int] | None]) -> None:
        out[i] = await self.read(oids[i])

    async def _read_range(self, w: Where) -> bytes:
        assert w.segment is not None
        node = self._nodes.get(w.segment)
        if node is None:
            node = await self.fs.open_node(self.segment_path(w.segment), os.O_RDONLY)
            self._nodes[w.segment] = node
            while len(self._nodes) > OPEN_SEGMENTS:
                self._nodes.popitem(last=False)
        else:
            self._nodes.move_to_end(w.segment)
        return await self.fs.read_at(node, w.offset, w.size)

    async def _read_whole(self, path: str) -> bytes:
        node = await self.fs.open_node(path, os.O_RDONLY)
        size = node.attr.size
        if size <= IO_PIECE:
            return await self.fs.read_at(node, 0, size)
        parts = await asyncio.gather(*(self.fs.read_at(node, pos, min(IO_PIECE, size - pos))
                                       for pos in range(0, size, IO_PIECE)))
        return b"".join(parts)

    async def remove(self, oid: ObjectId) -> bool:
        if self.index.discard(oid) is None:
            return False
        await self._forget(oid)
        return True

    async def _forget(self, oid: ObjectId) -> None:
        """``oid`` left the index: delete its file, or its segment with the last of its objects."""
        w = self._where.pop(oid, None)
        if w is None:
            return
        if w.segment is None:
            await self._unlink(self.path_of(oid))
            return
        n = self._live.get(w.segment, 0) - 1
        if n > 0:
            self._live[w.segment] = n
            return
        self._live.pop(w.segment, None)
        self._nodes.pop(w.segment, None)
        await self._unlink(self.segment_path(w.segment))

    async def _unlink(self, path: str) -> None:
        try:
            await self.fs.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove %s from SuperFS: %s", path, e)
