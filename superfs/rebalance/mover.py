"""Moving one file's chunks to a new layout, never holding fewer than R copies.

For a file whose layout changes from L to L' (superfs/rebalance/plan.py):

1. **copy**: every chunk whose placement changes is read whole from a
   readable replica (preferably one it leaves) and written to each server
   that gains it; the checksum stored there must equal the source's
   (ChunkPort.write). Writers go on meanwhile.
2. **fence**: every reachable server of the old layout refuses, from now
   on, writes whose chunk capability was signed before ``now + hold``
   (superfs/dataserver/write_fences.py). A client still writing with layout
   L gets ESTALE from at least one replica of any chunk, so its write is not
   acknowledged; it fetches a fresh capability with the file's layout and
   writes again.
3. **reconcile**: the old servers' chunks of the file are listed again, now
   final: a chunk whose checksum moved since step 1, or that a writer added
   since (sized or not), is copied (again). No one writes the gaining
   servers yet (L' is not published), so this cannot hide a newer write.
4. **switch**: the shard replaces L by L' only if the file's layout and last
   shrink are still those read at the start (EAGAIN otherwise: the fence is
   lifted, the copies made are deleted where L does not place them, and the
   file is tried again later). If steps 2-4 took longer than half the hold,
   the switch is not attempted (the fence may have lapsed).
5. **delete**: the fence is lowered to capabilities signed before the
   switch (writers with L' are taken at once), and the replicas L' no
   longer places are deleted.

Until step 4 readers use L, whose copies are all still there; after it,
L', whose copies were all made and verified. A crash (of the mover, or of
the daemon running it) leaves at most copies that no layout places: fsck
reports them (chunk-misplaced) and ``superfs fsck --repair`` reclaims them;
the next pass moves the file again from scratch.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from superfs import routing
from superfs.errors import FsError
from superfs.faults import crash_point, pause_point
from superfs.rebalance import plan
from superfs.rebalance.port import ChunkCopy, ChunkPort
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

FENCE_HOLD_NS = 8_000_000_000  # writers of a moving file wait at most this long (they retry ESTALE)
LEASE_TTL_S = 30.0  # the mover lease, renewed every third of it
CAP_MARGIN_NS = 15_000_000_000  # a chunk capability this close to its expiry is renewed before a copy


@dataclass
class Progress:
    """What the mover did so far (one pass; summed into the metrics)."""

    files: int = 0
    chunks: int = 0
    bytes: int = 0
    retried: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)

    def mib_per_s(self) -> float:
        return self.bytes / (1 << 20) / max(1e-6, time.monotonic() - self.started)

    def line(self, what: str) -> str:
        return (f"{what}: {self.files} files, {self.chunks} chunks, {self.bytes / (1 << 20):.1f} MiB moved "
                f"({self.mib_per_s():.1f} MiB/s), {self.retried} retried, {self.failed} failed")


class Throttle:
    """At most ``mib_per_s`` MiB/s of copied bytes (0: unlimited), so client IO keeps its speed."""

    def __init__(self, mib_per_s: float) -> None:
        self.rate = mib_per_s * (1 << 20)
        self.start = time.monotonic()
        self.sent = 0

    async def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        self.sent += n
        ahead = self.sent / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            await asyncio.sleep(ahead)


Acquire = Callable[[], Awaitable[tuple[bool, str]]]


class LeaseKeeper:
    """Renews the dir server's mover lease (one mover at a time) every third of its time."""

    def __init__(self, acquire: Acquire, *, release: Callable[[], Awaitable[None]] | None = None,
                 ttl_s: float = LEASE_TTL_S) -> None:
        self.acquire = acquire
        self.release = release
        self.ttl_s = ttl_s
        self.renewed = -1e9

    async def give_back(self) -> None:
        self.renewed = -1e9
        if self.release is not None:
            try:
                await self.release()
            except FsError as e:  # it lapses on its own
                log.info("mover lease not given back: %s", e)

    async def keep(self) -> None:
        """EBUSY if another mover holds the lease."""
        if time.monotonic() - self.renewed < self.ttl_s / 3:
            return
        granted, holder = await self.acquire()
        if not granted:
            raise FsError(errno.EBUSY, f"another chunk mover is at work ({holder}): one at a time")
        self.renewed = time.monotonic()


class Mover:
    """Moves files' chunks through a :class:`ChunkPort`."""

    def __init__(self, port: ChunkPort, cmap: pb.ClusterMap, *, throttle: Throttle | None = None,
                 progress: Progress | None = None, hold_ns: int = FENCE_HOLD_NS,
                 lease: LeaseKeeper | None = None) -> None:
        self.port = port
        self.cmap = cmap
        self.throttle = throttle or Throttle(0)
        self.progress = progress or Progress()
        self.hold_ns = hold_ns
        self.lease = lease

    async def _keep(self) -> None:
        if self.lease is not None:
            await self.lease.keep()

    async def move(self, info: pb.FileInfo, layout: list[int]) -> bool:
        """Move file ``info`` to ``layout``; False if it changed meanwhile (the caller tries again later)."""
        ino = info.attr.ino
        await self._keep()
        fresh = await self.port.file(ino)  # with a capability, and the layout as it is now
        if fresh is None or fresh.inline:
            return True  # gone, nothing to move
        info = fresh
        if sorted(info.layout) == sorted(layout):
            return True
        r = plan.replicas(self.cmap)
        old = list(info.layout)
        moves = plan.chunk_moves(ino, plan.chunk_indices(info), old, layout, r)
        readable = plan.readable(self.cmap)
        copied: dict[int, ChunkCopy] = {}  # index -> what the gaining servers hold now
        fenced: list[int] = []
        try:
            for m in moves:  # the bulk of the bytes, while writers go on
                await self._keep()
                if info.chunk_cap.expires_ns - time.time_ns() < CAP_MARGIN_NS:
                    await self._renew_cap(info)  # a copy longer than a capability lives
                got = await self._copy(info, m, readable)
                if got is not None:
                    copied[m.index] = got
            crash_point("mover.after_copy")
            pause_point("mover.after_copy")
            await self._keep()
            await self._renew_cap(info)  # a fresh capability: the fence admits it (our own writes)
            fenced_at = time.monotonic()
            # every server of the old layout: any of them may lose some chunk to the new one,
            # and a write refused by one of a chunk's replicas is not acknowledged
            fenced = [s for s in old if s in readable]
            await asyncio.gather(*(self.port.fence(s, ino, self.hold_ns, info.chunk_cap) for s in fenced))
            # under the fence: what the old servers hold now is final, including chunks a
            # writer added (and did not size yet) since the file was read
            held = {s: await self.port.checksums(s, ino) for s in fenced}
            indices = set(plan.chunk_indices(info)) | {i for chunks in held.values() for i in chunks}
            moves = plan.chunk_moves(ino, sorted(indices), old, layout, r)
            for m in moves:
                await self._reconcile(info, m, held, copied)
            if time.monotonic() - fenced_at > self.hold_ns / 2e9:
                raise FsError(errno.EAGAIN, f"inode {ino}: fence held too long before the switch")
            crash_point("mover.before_switch")
            await self.port.switch_layout(info, layout)
        except FsError as e:
            # ESTALE: a fence of an earlier mover that died holds a while yet (FENCE_HOLD_NS)
            if e.errno not in (errno.EAGAIN, errno.ENOENT, errno.ESTALE):
                raise
            log.info("inode %d: not moved this time (%s)", ino, e)
            for s in fenced:  # the old layout stays: its writers may go on at once
                await self._quietly(self.port.fence(s, ino, 0), f"lift the fence of {ino} on {s}")
            await self._undo(info, moves, copied)
            self.progress.retried += 1
            return False
        crash_point("mover.after_switch")
        for s in fenced:  # capabilities signed from now on carry the new layout: take them at once
            await self._quietly(self.port.fence(s, ino, 0), f"lift the fence of {ino} on {s}")
        for m in moves:
            for s in m.drop:
                if s in readable:
                    await self._quietly(self.port.delete(s, ino, m.index), f"delete {ino}:{m.index} on {s}")
        self.progress.files += 1
        return True

    async def _renew_cap(self, info: pb.FileInfo) -> None:
        """A fresh chunk capability for ``info``; EAGAIN if its layout or cut changed meanwhile."""
        now = await self.port.file(info.attr.ino)
        if now is None or list(now.layout) != list(info.layout) or now.cut_generation != info.cut_generation:
            raise FsError(errno.EAGAIN, f"inode {info.attr.ino} changed while its chunks were copied")
        info.chunk_cap.CopyFrom(now.chunk_cap)

    async def _copy(self, info: pb.FileInfo, m: plan.ChunkMove, readable: set[int]) -> ChunkCopy | None:
        """Copy chunk ``m.index`` to the servers that gain it; None if no replica has it (yet)."""
        # a server the chunk leaves first: the copy most likely to be the one readers see
        for src in dict.fromkeys(s for s in (*m.drop, *m.old) if s in readable):
            try:
                copy = await self.port.read(src, info, m.index)
            except FsError as e:
                log.info("chunk %d:%d: data server %d unreadable (%s); trying another", info.attr.ino, m.index,
                         src, e)
                continue
            if copy is None:
                continue  # this replica missed it (or it is a hole): ask the next
            await self._put(info, m, copy)
            return copy
        return None

    async def _reconcile(self, info: pb.FileInfo, m: plan.ChunkMove, held: dict[int, dict[int, tuple[int, int]]],
                         copied: dict[int, ChunkCopy]) -> None:
        """Under the fence: make the gaining servers hold what the old replicas hold now."""
        sources = [s for s in dict.fromkeys((*m.drop, *m.old)) if m.index in held.get(s, {})]
        if not sources:
            return  # no old replica has it: a hole
        now = held[sources[0]][m.index]
        done = copied.get(m.index)
        if done is not None and (done.checksum, done.algorithm) == now:
            return
        for src in sources:
            copy = await self.port.read(src, info, m.index)
            if copy is not None:
                await self._put(info, m, copy)
                copied[m.index] = copy
                if done is not None:
                    log.info("chunk %d:%d was written while moved: copied again", info.attr.ino, m.index)
                return
        raise FsError(errno.EIO, f"chunk {info.attr.ino}:{m.index}: listed on {sources} but none could be read")

    async def _put(self, info: pb.FileInfo, m: plan.ChunkMove, copy: ChunkCopy) -> None:
        for dst in m.add:
            await self.throttle.take(len(copy.data))
            await self.port.write(dst, info, m.index, copy)
            self.progress.bytes += len(copy.data)
        self.progress.chunks += 1

    async def _undo(self, info: pb.FileInfo, moves: list[plan.ChunkMove],
                    copied: dict[int, ChunkCopy]) -> None:
        """Delete the copies made for a switch that did not happen, where the current layout does not place them."""
        current = await self.port.file(info.attr.ino)
        r = plan.replicas(self.cmap)
        for m in moves:
            if m.index not in copied:
                continue
            keep = set() if current is None else set(
                routing.chunk_replicas(info.attr.ino, m.index, list(current.layout), r))
            for s in m.add:
                if s not in keep:
                    await self._quietly(self.port.delete(s, info.attr.ino, m.index),
                                        f"undo copy {info.attr.ino}:{m.index} on {s}")

    async def _quietly(self, call: object, what: str) -> None:
        try:
            await call  # type: ignore[misc]
        except FsError as e:
            log.warning("%s failed: %s (fsck --repair reclaims the stray copy)", what, e)
