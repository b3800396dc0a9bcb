"""One chunk mover at a time: a lease on the dir server, kept in its store.

Two movers working on the same file could undo each other's copies or lower
each other's write fences (superfs/rebalance/mover.py), so every mover (the
`superfs admin rebalance` and `drain` commands, and the dir server's own
re-replication) holds this lease while it works and renews it as it goes.
Every grant, renewal and release is written to the dir server's store before
it is answered (:meth:`MoverLease.take`, :meth:`MoverLease.give_back`), with
its expiry in wall-clock time: a dir server restarted while a mover works
still knows who holds the lease and until when, so no second mover can start
beside the first (it could when the lease lived in memory only).
"""
from __future__ import annotations

import errno
import json
import logging
import time
from typing import Awaitable, Callable

from superfs.errors import FsError

log = logging.getLogger(__name__)

MAX_TTL_S = 600.0
KEY = b"mover_lease"   # the dir store's meta key


class MoverLease:
    """Who may move chunks now, until when (monotonic clock)."""

    def __init__(self, kept: bytes | None = None,
                 save: Callable[[bytes], Awaitable[None]] | None = None) -> None:
        """``kept``: the record :meth:`record` wrote before a restart; ``save`` writes a record
        durably (the dir store's meta table)."""
        self.holder = ""
        self.until = 0.0
        self._save = save
        if kept:
            rec = json.loads(kept)
            left_s = (int(rec["until_ns"]) - time.time_ns()) / 1e9
            if rec.get("holder") and left_s > 0:
                self.holder, self.until = str(rec["holder"]), time.monotonic() + min(left_s, MAX_TTL_S)
                log.info("mover lease kept from before the restart: %s, %.0f s left", self.holder, left_s)

    def record(self) -> bytes:
        """The lease as kept on disk: its holder and its expiry in wall-clock nanoseconds."""
        left_ns = int(self.expires_in() * 1e9)
        return json.dumps({"holder": self.holder if left_ns else "",
                           "until_ns": time.time_ns() + left_ns if left_ns else 0}).encode()

    async def take(self, holder: str, ttl_s: float) -> bool:
        """:meth:`acquire`, kept on disk before it is answered."""
        granted = self.acquire(holder, ttl_s)
        if granted and self._save is not None:
            await self._save(self.record())
        return granted

    async def give_back(self, holder: str) -> None:
        """:meth:`release`, kept on disk."""
        was = self.holder
        self.release(holder)
        if was and not self.holder and self._save is not None:
            await self._save(self.record())

    def acquire(self, holder: str, ttl_s: float) -> bool:
        """Take or renew the lease for ``holder``; False if someone else holds it."""
        if not holder:
            raise FsError(errno.EINVAL, "a mover lease needs a holder name")
        if not 0 < ttl_s <= MAX_TTL_S:
            raise FsError(errno.EINVAL, f"mover lease ttl {ttl_s} is outside (0, {MAX_TTL_S}]")
        now = time.monotonic()
        if self.holder and self.holder != holder and now < self.until:
            return False
        self.holder, self.until = holder, now + ttl_s
        return True

    def release(self, holder: str) -> None:
        if self.holder == holder:
            self.holder, self.until = "", 0.0

    def expires_in(self) -> float:
        return max(0.0, self.until - time.monotonic()) if self.holder else 0.0
