"""One chunk mover at a time: a lease on the dir server.

Two movers working on the same file could undo each other's copies or lower
each other's write fences (superfs/rebalance/mover.py), so every mover (the
`superfs admin rebalance` and `drain` commands, and the dir server's own
re-replication) holds this lease while it works and renews it as it goes.
It lives in memory: after a dir server restart a mover renewing it gets it
again unless another took it first.
"""
from __future__ import annotations

import errno
import time

from superfs.errors import FsError

MAX_TTL_S = 600.0


class MoverLease:
    """Who may move chunks now, until when (monotonic clock)."""

    def __init__(self) -> None:
        self.holder = ""
        self.until = 0.0

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
