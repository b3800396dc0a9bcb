"""Moving one file's chunks to a new layout, never holding fewer than R copies.

For a file whose layout changes from L to L' (superfs/rebalance/plan.py):

1. **copy**: every chunk whose placement changes is read whole from a
   readable replica (preferably one it leaves, which step 2 makes still)
   and written to each server that gains it; the checksum stored there must
   equal the source's (ChunkPort.write).
2. **fence**: each reachable server the file leaves refuses, from now on,
   writes whose chunk capability was signed before ``now + hold``
   (superfs/dataserver/write_fences.py). A client still writing with layout L
   gets ESTALE there, so its write is not acknowledged; it fetches a fresh
   capability with the file's layout and writes again.
3. **re-verify**: every source is listed again; a chunk whose checksum moved
   since step 1 (a write that landed before the fence) is copied again. No
   one writes the gaining servers yet (L' is not published), so the copy
   cannot hide a newer write there.
4. **switch**: the shard replaces L by L' only if the file's layout and last
   shrink are still those read at the start (EAGAIN otherwise: the copies
   made are deleted where L does not place them, and the file is tried
   again later). If steps 2-4 took longer than half the hold, the switch is
   not attempted (the fence may have lapsed): the file is tried again.
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

from superfs import routing
from superfs.errors import FsError
from superfs.faults import crash_point, pause_point
from superfs.rebalance import plan
from superfs.rebalance.port import ChunkCopy, ChunkPort
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

FENCE_HOLD_NS = 8_000_000_000  # writers of a moving file wait at most this long (they retry ESTALE)


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


class Mover:
    """Moves files' chunks through a :class:`ChunkPort`."""

    def __init__(self, port: ChunkPort, cmap: pb.ClusterMap, *, throttle: Throttle | None = None,
                 progress: Progress | None = None, hold_ns: int = FENCE_HOLD_NS) -> None:
        self.port = port
        self.cmap = cmap
        self.throttle = throttle or Throttle(0)
        self.progress = progress or Progress()
        self.hold_ns = hold_ns

    async def move(self, info: pb.FileInfo, layout: list[int]) -> bool:
        """Move file ``info`` to ``layout``; False if it changed meanwhile (the caller tries again later)."""
        ino = info.attr.ino
        fresh = await self.port.file(ino)  # with a capability, and the layout as it is now
        if fresh is None or fresh.inline:
            return True  # gone, nothing to move
        info = fresh
        if sorted(info.layout) == sorted(layout):
            return True
        r = plan.replicas(self.cmap)
        moves = plan.chunk_moves(ino, plan.chunk_indices(info), list(info.layout), layout, r)
        readable = plan.readable(self.cmap)
        copied: dict[int, tuple[int, ChunkCopy]] = {}  # index -> (source, what was copied)
        try:
            for m in moves:
                got = await self._copy(info, m, readable)
                if got is not None:
                    copied[m.index] = got
            crash_point("mover.after_copy")
            pause_point("mover.after_copy")
            fenced_at = time.monotonic()
            leaving = sorted({s for m in moves for s in m.drop if s in readable})
            await asyncio.gather(*(self.port.fence(s, ino, self.hold_ns) for s in leaving))
            for m in moves:
                if m.index in copied:
                    await self._recheck(info, m, copied)
            if time.monotonic() - fenced_at > self.hold_ns / 2e9:
                raise FsError(errno.EAGAIN, f"inode {ino}: fence held too long before the switch")
            crash_point("mover.before_switch")
            await self.port.switch_layout(info, layout)
        except FsError as e:
            if e.errno not in (errno.EAGAIN, errno.ENOENT):
                raise
            log.info("inode %d: not moved this time (%s)", ino, e)
            await self._undo(info, moves, copied)
            self.progress.retried += 1
            return False
        crash_point("mover.after_switch")
        for s in leaving:  # capabilities signed from now on carry the new layout: take them at once
            await self._quietly(self.port.fence(s, ino, 0), f"lift the fence of {ino} on {s}")
        for m in moves:
            for s in m.drop:
                if s in readable:
                    await self._quietly(self.port.delete(s, ino, m.index), f"delete {ino}:{m.index} on {s}")
        self.progress.files += 1
        return True

    async def _copy(self, info: pb.FileInfo, m: plan.ChunkMove, readable: set[int]) -> tuple[int, ChunkCopy] | None:
        """Copy chunk ``m.index`` to the servers that gain it: (source, copy), or None if no replica has it."""
        # a server the chunk leaves first: the fence makes it still for the re-check
        sources = [s for s in (*m.drop, *m.old) if s in readable]
        last: FsError | None = None
        for src in dict.fromkeys(sources):
            try:
                copy = await self.port.read(src, info, m.index)
            except FsError as e:
                last = e
                continue
            if copy is None:
                continue  # this replica missed it (or it is a hole): ask the next
            for dst in m.add:
                await self.throttle.take(len(copy.data))
                await self.port.write(dst, info, m.index, copy)
                self.progress.bytes += len(copy.data)
            self.progress.chunks += 1
            return src, copy
        if last is not None and not any(s in readable for s in m.new if s not in m.add):
            raise FsError(errno.EIO, f"chunk {info.attr.ino}:{m.index}: no readable replica ({last})")
        return None

    async def _recheck(self, info: pb.FileInfo, m: plan.ChunkMove, copied: dict[int, tuple[int, ChunkCopy]]) -> None:
        src, copy = copied[m.index]
        now = await self.port.checksum(src, info.attr.ino, m.index)
        if now is not None and now == (copy.checksum, copy.algorithm):
            return
        again = await self.port.read(src, info, m.index)
        if again is None:
            raise FsError(errno.EAGAIN, f"chunk {info.attr.ino}:{m.index} vanished from {src} while moved")
        for dst in m.add:
            await self.port.write(dst, info, m.index, again)
        copied[m.index] = (src, again)
        log.info("chunk %d:%d was written while moved: copied again", info.attr.ino, m.index)

    async def _undo(self, info: pb.FileInfo, moves: list[plan.ChunkMove],
                    copied: dict[int, tuple[int, ChunkCopy]]) -> None:
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
