"""ByteBudget: bounds the bytes of chunk writes in flight at once.

Writes run on threads (the byte path's connection threads, and the gRPC
path's workers), each writing into the page cache before its group flush:
admitting them against a byte budget bounds the dirty bytes one server
holds for writes not yet durable, and pushes back on clients that send
faster than the disk takes (a connection thread that waits here stops
reading its socket, and TCP slows the sender).
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)


class ByteBudget:
    """At most ``limit`` bytes admitted at once; a single larger request still
    runs (alone), so nothing can wait forever."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.peak = 0
        self._cond = threading.Condition()

    @contextmanager
    def admit(self, nbytes: int) -> Iterator[None]:
        with self._cond:
            if self.in_flight and self.in_flight + nbytes > self.limit:
                log.debug("write of %d bytes waits: %d bytes in flight", nbytes, self.in_flight)
            self._cond.wait_for(lambda: self.in_flight == 0 or self.in_flight + nbytes <= self.limit)
            self.in_flight += nbytes
            self.peak = max(self.peak, self.in_flight)
        try:
            yield
        finally:
            with self._cond:
                self.in_flight -= nbytes
                self._cond.notify_all()
