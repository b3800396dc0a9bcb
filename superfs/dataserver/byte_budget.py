"""ByteBudget: bounds the bytes of chunk writes in flight at once.

The shared group-commit writer batches up to 512 mutations per LMDB
transaction, and LMDB keeps a transaction's dirty pages in memory until it
commits: 512 chunks of 64 MiB would be 32 GiB. Admitting writes against a
byte budget bounds both that memory and the size of one commit, and pushes
back on clients that send faster than the disk takes.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

log = logging.getLogger(__name__)


class ByteBudget:
    """At most ``limit`` bytes admitted at once; a single larger request still
    runs (alone), so nothing can wait forever."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._cond: asyncio.Condition | None = None

    @asynccontextmanager
    async def admit(self, nbytes: int) -> AsyncIterator[None]:
        if self._cond is None:
            self._cond = asyncio.Condition()  # created on the serving loop, on first use
        cond = self._cond
        async with cond:
            if self.in_flight and self.in_flight + nbytes > self.limit:
                log.debug("write of %d bytes waits: %d bytes in flight", nbytes, self.in_flight)
            await cond.wait_for(lambda: self.in_flight == 0 or self.in_flight + nbytes <= self.limit)
            self.in_flight += nbytes
        try:
            yield
        finally:
            async with cond:
                self.in_flight -= nbytes
                cond.notify_all()
