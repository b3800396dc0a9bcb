"""Directory times after file operations: a directory's mtime and ctime move
when a name in it is created, removed or renamed (POSIX), but file names live
on the shards and directory attributes on the dir server.

A warm create is one shard round trip, and must stay one. So the client that
changed a directory's entries tells the dir server afterwards, off the
caller's path, with a "touch" (SetDirAttr: mtime and ctime become at least
the time of the change, by this client's clock and never past the dir
server's; it needs the write permission the change needed too).
Touches of one directory are coalesced: at most one is in flight, and the
changes made meanwhile are covered by one more, sent at once if somebody
waits for the directory's attributes, else after ``DELAY_S``. A burst of
creates in one directory thus costs a handful of touches, not one each.

What this client reads is never older than what it did: while a touch of a
directory is pending, its attributes are answered with mtime and ctime at the
time of the last change (:meth:`DirTouches.overlay`, no round trip: the
kernel asks for a directory's attributes after every create in it), and any
attribute change of it first sends the pending touch and waits for it (a
``tar`` or ``cp -a`` sets a directory's times after filling it: a late touch
must not undo that). Other clients see the new times
when their lease on the directory ends, as any other change of it. A
client that dies with a touch pending loses it, and a touch the dir server
does not answer (it is down) is dropped: the directory's times then lag its
entries (its contents are never affected). Touches travel on the client's
session to the dir server like every call (a session never holds one call up
behind another), so the dir server sees them come from the client that may
hold the directory's lease.
"""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from superfs.client.nodes import Node
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

DELAY_S = 0.05

Touch = Callable[[int, pb.Creds, int], Awaitable[pb.Attr]]  # (dir ino, creds, time of the change)


@dataclass
class _Pending:
    creds: pb.Creds
    changed_ns: int = 0                     # wall-clock time of the last change
    dirty: bool = True                      # a change not yet covered by a touch sent
    task: asyncio.Task[None] | None = None  # the touch loop of this directory
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: int = 0                        # settle() calls waiting: no delay while any waits


class DirTouches:
    """Pending mtime/ctime updates of directories this client changed."""

    def __init__(self, touch: Touch, on_touched: Callable[[int, pb.Attr], None]) -> None:
        self._touch = touch
        self._on_touched = on_touched
        self._pending: dict[int, _Pending] = {}

    def changed(self, dir_ino: int, creds: pb.Creds) -> None:
        """An entry of ``dir_ino`` was added or removed by ``creds``: touch it soon."""
        p = self._pending.get(dir_ino)
        if p is None:
            p = self._pending[dir_ino] = _Pending(creds)
        p.creds, p.dirty, p.changed_ns = creds, True, time.time_ns()
        if p.task is None:
            p.task = asyncio.get_running_loop().create_task(self._run(dir_ino, p))

    def overlay(self, node: Node) -> Node:
        """``node`` as it is after this client's pending changes in it (mtime and ctime)."""
        p = self._pending.get(node.ino)
        if p is None or min(node.attr.mtime_ns, node.attr.ctime_ns) >= p.changed_ns:
            return node
        # what the touch will make of them (see SetAttrRequest's mask 256)
        attr = pb.Attr()
        attr.CopyFrom(node.attr)
        attr.mtime_ns = max(attr.mtime_ns, p.changed_ns)
        attr.ctime_ns = max(attr.ctime_ns, p.changed_ns)
        return dataclasses.replace(node, attr=attr)

    async def settle(self, dir_ino: int) -> None:
        """Send ``dir_ino``'s pending touch now and wait until it is done."""
        p = self._pending.get(dir_ino)
        if p is None or p.task is None:
            return
        p.waiters += 1
        p.wake.set()
        try:
            await asyncio.shield(p.task)
        finally:
            p.waiters -= 1

    async def settle_all(self) -> None:
        for ino in list(self._pending):
            await self.settle(ino)

    def forget(self, dir_ino: int) -> None:
        """The directory is gone: nothing to touch."""
        p = self._pending.pop(dir_ino, None)
        if p is not None and p.task is not None:
            p.task.cancel()

    async def _run(self, dir_ino: int, p: _Pending) -> None:
        try:
            while p.dirty:
                if not p.wake.is_set():
                    try:
                        await asyncio.wait_for(p.wake.wait(), DELAY_S)
                    except asyncio.TimeoutError:
                        pass
                p.dirty = False
                if not p.waiters:
                    p.wake.clear()
                try:
                    attr = await self._touch(dir_ino, p.creds, p.changed_ns)
                except FsError as e:
                    # the directory went away, or the caller lost its write permission
                    # since: its times are no longer this client's to move
                    level = logging.DEBUG if e.errno in (errno.ENOENT, errno.EACCES, errno.EPERM) else logging.INFO
                    log.log(level, "touching directory %d failed: %s", dir_ino, e)
                    continue
                self._on_touched(dir_ino, attr)
        finally:
            if self._pending.get(dir_ino) is p:
                del self._pending[dir_ino]
