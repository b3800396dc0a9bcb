"""Changes made ahead under directory leases, sent to their shards in batches.

A lease holder (superfs/client/leases.py) answers creates, writes and
unlinks at once and queues them here, one queue per shard. A queue is sent
as one ApplyBatch (one message, one group commit on the shard; at most
``max_ops`` changes and about ``max_bytes``) when it holds ``max_ops`` changes, ``delay_s`` after its first change (so a burst of
creates travels together), or when someone needs it sent: an fsync, a
recall of the lease, an unmount (:meth:`Batcher.flush`). At most one batch
per shard is on the wire at a time, so a shard applies the changes of one
client in the order they were made (a name unlinked and created again).

Each change is a :class:`Pending`: until its batch leaves, the holder may
still change it (a small file's bytes ride with its create when it is
closed before the batch leaves) or withdraw it (a file created and removed
before anything was sent costs the servers nothing). Once answered, its
``result`` says how it went; a failure is logged, reported to ``on_failed``
(the holder gives the directory's lease back, so that what it shows is what
the shard has), and by the next fsync of the file or of its directory.
"""
from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from superfs.errors import MISROUTED, FsError
from superfs.faults import crash_point
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

DELAY_S = 0.003
MAX_OPS = 256
MAX_BYTES = 64 * 1024   # a shard takes requests of its inline threshold (or an xattr value) and some

Send = Callable[[int, pb.BatchRequest], Awaitable[pb.BatchReply]]
# (a change a shard refused as misrouted, attempt) -> the shard to send it to now, or None: give up
Reroute = Callable[["Pending", int], Awaitable[int | None]]
MAX_REROUTES = 20  # a partition being moved refuses changes for a moment (dirserver/moves.py)


@dataclass(eq=False)
class Pending:
    """One change made ahead: ``op`` may change until ``sent``; then ``done`` is set with its ``result``."""

    shard: int
    op: pb.BatchOp
    dir_ino: int = 0      # the leased directory the change was made in
    sent: bool = False
    withdrawn: bool = False
    result: pb.BatchResult | None = None
    error: FsError | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def failed(self) -> FsError | None:
        """The error this change met, if any (after ``done``)."""
        if self.error is not None:
            return self.error
        if self.result is not None and self.result.errno_name:
            return FsError(getattr(errno, self.result.errno_name, errno.EIO), self.result.message)
        return None


class _Queue:
    def __init__(self) -> None:
        self.waiting: list[Pending] = []
        self.sender: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None


class Batcher:
    def __init__(self, send: Send, *, delay_s: float = DELAY_S, max_ops: int = MAX_OPS,
                 max_bytes: int = MAX_BYTES,
                 on_failed: Callable[[Pending, FsError], None] = lambda _p, _e: None,
                 reroute: Reroute | None = None, holder_of: Callable[[int], bytes | None] | None = None) -> None:
        self.send = send
        self.reroute = reroute        # where a change refused as misrouted goes now (a partition moved)
        self.holder_of = holder_of    # this client's session id with a shard (its delegated numbers)
        self.max_bytes = max_bytes
        self.on_failed = on_failed
        self.delay_s = delay_s
        self.max_ops = max_ops
        self._queues: dict[int, _Queue] = {}
        self.batches = 0
        self.ops = 0

    def add(self, shard: int, op: pb.BatchOp, dir_ino: int = 0) -> Pending:
        p = Pending(shard, op, dir_ino)
        q = self._queues.setdefault(shard, _Queue())
        q.waiting.append(p)
        if len(q.waiting) >= self.max_ops:
            self._start(shard, q)
        elif q.sender is None and q.timer is None:
            q.timer = asyncio.get_running_loop().call_later(self.delay_s, self._start, shard, q)
        return p

    def withdraw(self, p: Pending) -> bool:
        """Take back a change not sent yet; False if it already left."""
        if p.sent or p.withdrawn:
            return False
        p.withdrawn = True
        q = self._queues.get(p.shard)
        if q is not None and p in q.waiting:
            q.waiting.remove(p)
        p.done.set()
        return True

    def waiting(self, shard: int) -> int:
        """Changes queued for ``shard`` that have not left yet."""
        q = self._queues.get(shard)
        return len(q.waiting) if q is not None else 0

    def queued(self) -> int:
        return sum(len(q.waiting) for q in self._queues.values())

    async def flush(self, shards: set[int] | None = None) -> None:
        """Send what waits now (on ``shards``, or all) and wait until every change sent so far is answered."""
        for shard, q in list(self._queues.items()):
            if shards is not None and shard not in shards:
                continue
            if q.waiting and q.sender is None:
                self._start(shard, q)
        while True:
            busy = [q.sender for s, q in self._queues.items()
                    if q.sender is not None and (shards is None or s in shards)]
            if not busy:
                return
            await asyncio.gather(*busy, return_exceptions=True)

    def _start(self, shard: int, q: _Queue) -> None:
        if q.timer is not None:
            q.timer.cancel()
            q.timer = None
        if q.sender is None and q.waiting:
            q.sender = asyncio.get_running_loop().create_task(self._drain(shard, q))

    async def _drain(self, shard: int, q: _Queue) -> None:
        try:
            while q.waiting:
                n = self._take(q.waiting)
                batch, q.waiting = q.waiting[:n], q.waiting[n:]
                for p in batch:
                    p.sent = True
                await self._send_one(shard, batch)
        finally:
            q.sender = None
            if q.waiting:  # added while the last one was answered
                self._start(shard, q)

    def _take(self, waiting: list[Pending]) -> int:
        """How many of ``waiting`` go in the next batch: at most ``max_ops``, and ``max_bytes`` unless
        one change alone is larger (a shard takes a message as large as its biggest single request)."""
        size = 0
        for i, p in enumerate(waiting[:self.max_ops]):
            size += p.op.ByteSize() + 8
            if size > self.max_bytes and i > 0:
                return i
        return min(len(waiting), self.max_ops)

    async def _send_one(self, shard: int, batch: list[Pending], attempt: int = 0) -> None:
        req = pb.BatchRequest(ops=[p.op for p in batch])
        try:
            reply = await self.send(shard, req)
        except FsError as e:
            log.warning("a batch of %d changes to shard %d failed: %s", len(batch), shard, e)
            for p in batch:
                p.error = e
            reply = None
        except Exception as e:  # noqa: BLE001 - every change must learn its fate
            log.exception("a batch of %d changes to shard %d failed", len(batch), shard)
            for p in batch:
                p.error = FsError(errno.EIO, f"batch failed: {e!r}")
            reply = None
        if reply is not None:
            crash_point("client.batch.after_reply")
            self.batches += 1
            self.ops += len(batch)
            results = list(reply.results)
            for i, p in enumerate(batch):
                if i < len(results):
                    p.result = results[i]
                    if results[i].errno_name:
                        log.warning("a change made ahead was refused by shard %d: %s %s", shard,
                                    results[i].errno_name, results[i].message)
                else:
                    p.error = FsError(errno.EIO, "the shard answered fewer results than changes")
            moved = [p for p in batch if p.result is not None and _misrouted(p.result)]
            if moved and self.reroute is not None and attempt < MAX_REROUTES:
                batch = [p for p in batch if p not in moved]
                await self._resend(shard, moved, attempt)
        for p in batch:
            p.done.set()
            err = p.failed
            if err is not None:
                self.on_failed(p, err)

    async def _resend(self, shard: int, moved: list[Pending], attempt: int) -> None:
        """Changes refused because their partition is moving or moved: send them where the map says
        now (a create keeps its number: it names the session whose range it came from)."""
        assert self.reroute is not None
        by_shard: dict[int, list[Pending]] = {}
        for p in moved:
            target = await self.reroute(p, attempt)
            if target is None:
                p.done.set()
                self.on_failed(p, p.failed or FsError(errno.EIO, "refused"))
                continue
            if p.op.WhichOneof("op") == "create" and not p.op.create.delegation_holder and self.holder_of:
                holder = self.holder_of(shard)
                if holder:
                    p.op.create.delegation_holder = holder
            p.result, p.shard = None, target
            by_shard.setdefault(target, []).append(p)
        for target, ps in by_shard.items():
            await self._send_one(target, ps, attempt + 1)


def _misrouted(result: pb.BatchResult) -> bool:
    return result.errno_name == "ESTALE" and result.message.startswith(MISROUTED)
