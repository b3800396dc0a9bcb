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

Fences live in memory: a fence outlives every capability it stops, so one
lost with a restart of this server lets through only writers that the
restart already cut off mid-call (see ARCHITECTURE, "Moving chunks").
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

    def fence(self, ino: int, hold_ns: int, admit_mac: bytes = b"") -> None:
        if not 0 <= hold_ns <= MAX_HOLD_NS:
            raise FsError(errno.EINVAL, f"fence hold {hold_ns} ns is outside 0..{MAX_HOLD_NS}")
        now = time.time_ns()
        self._prune(now)
        # replaced, not raised: after its switch the mover fences again with no hold, so that
        # capabilities signed from then on (with the new layout) are taken at once
        self._min_expiry[ino] = now + capability.CHUNK_CAP_TTL_NS + hold_ns
        self._admit[ino] = admit_mac

    def check(self, cap: pb.ChunkCap, ino: int) -> None:
        floor = self._min_expiry.get(ino)
        if floor is not None and cap.expires_ns < floor and not (self._admit.get(ino) and
                                                                 cap.mac == self._admit[ino]):
            raise FsError(errno.ESTALE, f"inode {ino} is being moved: fetch its layout and write again")

    def _prune(self, now: int) -> None:
        """Drop fences that no capability can still fall under (a signed one expires by now + TTL)."""
        if len(self._min_expiry) > 1024:
            limit = now + capability.CHUNK_CAP_TTL_NS
            self._min_expiry = {i: f for i, f in self._min_expiry.items() if f > limit}
            self._admit = {i: m for i, m in self._admit.items() if i in self._min_expiry}
