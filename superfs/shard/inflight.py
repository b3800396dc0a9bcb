"""Counting a shard's mutating calls in flight, so fsck can wait for what was running when it looked.

fsck scans each shard's names, inodes and queues at slightly different
moments, so an operation running meanwhile (a rename between its steps) can
look like an inconsistency. It confirms a finding with a second scan; rather
than sleeping first and hoping, it waits until every mutating call that had
begun when the first scan ended has finished. Each call takes a ticket;
``low_water`` is the oldest ticket still running (or the next one when none
is), so "low_water > ticket read at the end of the first scan" says exactly that.
"""
from __future__ import annotations

import functools
from typing import Any, Awaitable, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class OpTracker:
    def __init__(self) -> None:
        self.begun = 0
        self._running: set[int] = set()

    def begin(self) -> int:
        self.begun += 1
        self._running.add(self.begun)
        return self.begun

    def end(self, ticket: int) -> None:
        self._running.discard(ticket)

    @property
    def low_water(self) -> int:
        """The oldest ticket still running; ``begun + 1`` when none is."""
        return min(self._running) if self._running else self.begun + 1


def tracked(fn: F) -> F:
    """Count a servicer method as a mutating call (its servicer has ``ops: OpTracker``)."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: Any) -> Any:
        ticket = self.ops.begin()
        try:
            return await fn(self, request, context)
        finally:
            self.ops.end(ticket)

    return wrapper  # type: ignore[return-value]
