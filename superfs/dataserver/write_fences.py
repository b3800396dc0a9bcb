"""Write fences: a file's chunk writes refused while the mover switches its layout.

A writer caches a file's layout (the servers its chunks go to) with the
file's chunk capability. Before the mover (superfs/rebalance) switches a
file's layout on its shard, it fences the file on every server the file's
chunks leave: from then on those servers refuse (ESTALE) writes whose
capability expires before ``now + CHUNK_CAP_TTL + hold``, i.e. every
capability signed before ``now + hold``. The writer's client fetches a fresh
capability and the file's current layout (one GetFile) and writes again;
the mover switches within ``hold`` (else it gives the file up, and the fence
lapses on its own), so a capability accepted after the fence was signed
after the switch, with the new layout. Once switched, the mover fences again
with no hold: capabilities signed from then on are taken at once (a fence is
replaced, not raised). The mover's own capability, named in the fence by its
signature, still writes (it copies chunks onto servers of the old layout
while the fence holds). Reads are never fenced.

Fences are kept on disk too (the chunk store's meta table, written before
FenceWrites answers): a data server restarted during a move still refuses
what its fences refused, for as long as they hold. Forgetting them would let
a writer whose capability predates the switch write where the file's chunks
no longer live, and lose that acknowledged write.
"""
from __future__ import annotations

import errno
import time

from superfs import capability
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

MAX_HOLD_NS = 60_000_000_000


class WriteFences:
    """ino -> the earliest capability expiry a write to its chunks must carry, and the one
    capability (the mover's, by its signature) let through anyway."""

    def __init__(self) -> None:
        self._min_expiry: dict[int, int] = {}
        self._admit: dict[int, bytes] = {}

    def fence(self, ino: int, hold_ns: int, admit_mac: bytes = b"") -> int:
        """Fence ``ino``; the floor set (to keep on disk with :meth:`restore`'s counterpart)."""
        if not 0 <= hold_ns <= MAX_HOLD_NS:
            raise FsError(errno.EINVAL, f"fence hold {hold_ns} ns is outside 0..{MAX_HOLD_NS}")
        now = time.time_ns()
        self._prune(now)
        # replaced, not raised: after its switch the mover fences again with no hold, so that
        # capabilities signed from then on (with the new layout) are taken at once
        floor = now + capability.CHUNK_CAP_TTL_NS + hold_ns
        self._min_expiry[ino] = floor
        self._admit[ino] = admit_mac
        return floor

    def restore(self, kept: dict[int, tuple[int, bytes]]) -> int:
        """Take the fences kept on disk (ino -> (floor, admitted mac)) at start; how many still hold."""
        now = time.time_ns()
        for ino, (floor, mac) in kept.items():
            if floor > now:
                self._min_expiry[ino] = floor
                self._admit[ino] = mac
        return len(self._min_expiry)

    def check(self, cap: pb.ChunkCap, ino: int) -> None:
        floor = self._min_expiry.get(ino)
        if floor is not None and cap.expires_ns < floor and not (self._admit.get(ino) and
                                                                 cap.mac == self._admit[ino]):
            raise FsError(errno.ESTALE, f"inode {ino} is being moved: fetch its layout and write again")

    def _prune(self, now: int) -> None:
        """Drop fences no capability can still fall under: every one that expires before the floor
        has expired (capabilities expiring later pass anyway). The limit was ``now + TTL``, which
        dropped a fence set with no hold (after a switch) at once, whenever more than 1,024 were
        kept: a drain of that many files let writers with the old layout through."""
        if len(self._min_expiry) > 1024:
            self._min_expiry = {i: f for i, f in self._min_expiry.items() if f > now}
            self._admit = {i: m for i, m in self._admit.items() if i in self._min_expiry}
