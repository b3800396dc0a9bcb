"""SuperFsTier: objects evicted from DRAM, one file each on a SuperFS cluster.

Layout under the daemon's root directory (through ``superfs.client`` only)::

    ROOT/<namespace, %-quoted>/<key hex>        one ObjectFile (kvserve/objfile.py)

The daemon owning a root is its only reader and writer, and it reads only
objects in its index, which gains an object once its file is completely
written: that is the commit point, so no reader ever opens a partial file,
without paying for a rename (a second metadata transaction, often across
shards). A file torn by a crash is found at the next start by the listing
that rebuilds the index, fails its checksum when read, and is deleted: a
miss, never wrong bytes. The tier thus survives daemon restarts.

One file per object suits SuperFS: its metadata is spread over shards by
(directory, name), small files stay inline in their metadata record (one
round trip to create and fill), and large ones are chunked over data
servers. Any failure to read (missing file, unreachable cluster, bad
checksum) is a miss; a corrupt file is also deleted.
"""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from urllib.parse import quote, unquote

from superfs.client import AsyncFs

from kvserve.dram import ObjectId
from kvserve.objfile import decode_object, encode_object
from kvserve.policy import EvictionPolicy
from kvserve.tier_index import TierIndex

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"  # written by older versions: deleted at start
IO_PIECE = 16 << 20  # the client library moves at most 64 MiB per call


@dataclass
class SfsCounters:
    hits: int = 0
    evictions: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    corrupt: int = 0
    write_errors: int = 0


class SuperFsTier:
    def __init__(self, fs: AsyncFs, root: str, capacity: int | None, policy: EvictionPolicy[ObjectId]) -> None:
        self.fs = fs
        self.root = root.rstrip("/") or "/"
        self.index: TierIndex[ObjectId] = TierIndex(capacity, policy)
        self.counters = SfsCounters()
        self._dirs: set[str] = set()
        self._busy: dict[ObjectId, int] = {}  # files being read: not unlinked under the reader
        self._space = asyncio.Condition()  # signalled when a write in flight gives its room back

    # ---------------------------------------------------------------- naming

    def dir_of(self, namespace: str) -> str:
        return f"{self.root}/{quote(namespace, safe='')}"

    def path_of(self, oid: ObjectId) -> str:
        return f"{self.dir_of(oid[0])}/{oid[1].hex()}"

    # ----------------------------------------------------------------- start

    async def start(self) -> None:
        """Create the root and rebuild the index from what an earlier run left."""
        await self.fs.makedirs(self.root, exist_ok=True)
        found = 0
        for ns_entry in await self.fs.scandir(self.root):
            if not ns_entry.is_dir():
                continue
            namespace = unquote(ns_entry.name)
            self._dirs.add(namespace)
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
                    found += 1
        log.debug("SuperFS tier at %s holds %d objects (%d bytes)", self.root, found, self.index.used)

    # ------------------------------------------------------------------ I/O

    def __contains__(self, oid: object) -> bool:
        return oid in self.index

    async def write(self, oid: ObjectId, data: bytes, checksum: int) -> bool:
        """Store one object (replacing nothing: objects are immutable); False on failure."""
        if oid in self.index:
            return True
        blob = encode_object(oid[0], oid[1], data, checksum)
        if not self.index.fits_ever(len(blob)):
            return False
        claimed, victims = await self._claim(len(blob))
        for victim, _ in victims:
            self.counters.evictions += 1
            await self._unlink(self.path_of(victim))
        if not claimed:
            return False
        try:
            await self._write_file(oid, blob)
        except OSError as e:
            self.counters.write_errors += 1
            log.warning("writing %s to SuperFS failed: %s", self.path_of(oid), e)
            return False
        finally:
            self.index.unreserve(len(blob))
            async with self._space:
                self._space.notify_all()
        if oid not in self.index:
            self.index.add(oid, len(blob))
        self.counters.bytes_written += len(data)
        return True

    async def _claim(self, size: int) -> tuple[bool, list[tuple[ObjectId, int]]]:
        """Evict for ``size`` bytes and reserve them with no await in between, so concurrent
        writers cannot overbook; room held by writes in flight is waited for.
        Returns (reserved, the objects evicted, whose files the caller deletes)."""
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

    async def _write_file(self, oid: ObjectId, blob: bytes) -> None:
        if oid[0] not in self._dirs:
            await self.fs.makedirs(self.dir_of(oid[0]), exist_ok=True)
            self._dirs.add(oid[0])
        path = self.path_of(oid)
        node = await self.fs.open_node(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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
        if oid not in self.index:
            return None
        self._busy[oid] = self._busy.get(oid, 0) + 1
        try:
            blob = await self._read_file(self.path_of(oid))
        except FileNotFoundError:
            self.index.discard(oid)
            return None
        except OSError as e:
            log.warning("reading %s from SuperFS failed: %s", self.path_of(oid), e)
            return None
        finally:
            n = self._busy.pop(oid) - 1
            if n:
                self._busy[oid] = n
        found = decode_object(blob, oid[0], oid[1])
        if found is None:
            self.counters.corrupt += 1
            await self.remove(oid)
            return None
        self.index.touch(oid)
        self.counters.hits += 1
        self.counters.bytes_read += len(found[0])
        return found

    async def _read_file(self, path: str) -> bytes:
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
        await self._unlink(self.path_of(oid))
        return True

    async def _unlink(self, path: str) -> None:
        try:
            await self.fs.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove %s from SuperFS: %s", path, e)
