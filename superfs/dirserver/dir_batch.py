"""ApplyDirBatch: the mkdirs and rmdirs a lease holder made ahead, applied in its order.

A mount holding an exclusive lease on a directory makes subdirectories there
on its own, with numbers this server delegated to it ahead
(DelegateDirInos), and removes the ones it made that nobody else has seen
(superfs/fuse/dirs_ahead.py); it sends them here in batches, as it sends
its creates and unlinks to the shards. Each operation is the coordinator's
own mkdir or rmdir, with its intent, its shard steps and its commit, so it
is as crash-safe as the single call; what a batch adds:

- the holder must still hold the grant it names on the parent: a lease
  recalled (and answered) or revoked since refuses with ESTALE, as a fenced
  shard refuses a late create;
- a mkdir must name a number delegated to this holder and not used yet;
- operations on distinct names run concurrently, so their LMDB writes
  share group commits, here and on the shards (one fsync for many): the
  point of the batch. An operation on a name already in flight waits for
  it, so a name removed and made again keeps the holder's order.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Any

from superfs.dirserver.lease_table import Want
from superfs.dirserver.store import DirStore
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

MAX_OPS = 1024
DELEGATE_MAX = 512          # numbers per DelegateDirInos
MAX_UNUSED = 4096           # numbers one holder may hold unused
MAX_HOLDERS = 10_000        # holders remembered (the oldest are forgotten: their numbers are refused)
CLOCK_SKEW_NS = 60 * 10**9  # a holder's time further off than this is replaced by ours


class DirInoDelegations:
    """Directory numbers handed to lease holders ahead, each usable once by the holder it went to."""

    def __init__(self) -> None:
        self.unused: dict[bytes, set[int]] = {}

    async def delegate(self, store: DirStore, holder: bytes, count: int) -> pb.InoRange:
        count = max(1, min(count or DELEGATE_MAX, DELEGATE_MAX))
        free = self.unused.pop(holder, set())
        self.unused[holder] = free  # the most recent holder last: the oldest go first
        if len(free) + count > MAX_UNUSED:
            raise FsError(errno.EAGAIN, f"{len(free)} directory numbers delegated to this client are unused")
        first = await store.db.write(lambda txn: store.alloc_range_txn(txn, count))
        free.update(range(first, first + count))
        while len(self.unused) > MAX_HOLDERS:
            del self.unused[next(iter(self.unused))]
        return pb.InoRange(first=first, count=count)

    def claim(self, holder: bytes, ino: int) -> None:
        free = self.unused.get(holder)
        if not ino or free is None or ino not in free:
            raise FsError(errno.EINVAL, f"directory number {ino} was not delegated to this client, or is used")
        free.discard(ino)


def _held(svc: Any, parent: int, grant: int, holder: bytes) -> None:
    table = svc.leases.table
    if table.mode_of(parent, holder) != Want.EXCLUSIVE or not grant or table.grant_of(parent, holder) != grant:
        raise FsError(errno.ESTALE, f"the lease on directory {parent} that this change was made under has ended")


def _when(t: int) -> int:
    now = time.time_ns()
    return t if t and abs(t - now) < CLOCK_SKEW_NS else now


async def _apply_one(svc: Any, op: pb.BatchOp, holder: bytes) -> pb.BatchResult:
    which = op.WhichOneof("op")
    if which == "mkdir":
        m = op.mkdir
        _held(svc, m.parent_ino, m.grant, holder)
        svc.dir_inos.claim(holder, m.ino)
        d = await svc.coordinator.mkdir(m.parent_ino, m.name, m.mode, m.creds, ino=m.ino, time_ns=_when(m.time_ns))
        return pb.BatchResult(dir=d)
    if which == "rmdir":
        r = op.rmdir
        _held(svc, r.parent_ino, r.grant, holder)
        child = svc._child(r.parent_ino, r.name)
        if child:  # another client's lease on it goes first (its pending creates arrive before the check)
            await svc.leases.use(child, holder, Want.WRITE)
        await svc.coordinator.rmdir(r.parent_ino, r.name, r.creds)
        return pb.BatchResult()
    raise FsError(errno.EINVAL, f"a directory batch takes mkdir and rmdir, not {which!r}")


def _result(err: BaseException) -> pb.BatchResult:
    if not isinstance(err, FsError):
        log.error("a directory batch operation failed unexpectedly", exc_info=err)
        err = FsError(errno.EIO, f"unexpected error: {err!r}")
    return pb.BatchResult(errno_name=errno.errorcode.get(err.errno, "EIO"), message=err.message)


def _key(op: pb.BatchOp) -> tuple[int, str]:
    r = op.mkdir if op.WhichOneof("op") == "mkdir" else op.rmdir
    return r.parent_ino, r.name


async def apply(svc: Any, request: pb.BatchRequest, holder: bytes) -> pb.BatchReply:
    """Run ``request``'s operations for ``holder`` (its session id) on dir servicer ``svc``."""
    ops = list(request.ops)
    if len(ops) > MAX_OPS:
        raise FsError(errno.EINVAL, f"at most {MAX_OPS} operations per batch")
    results: list[pb.BatchResult] = [pb.BatchResult()] * len(ops)
    start = 0
    while start < len(ops):  # runs of distinct names, one run after the other
        seen: set[tuple[int, str]] = set()
        end = start
        while end < len(ops) and (k := _key(ops[end])) not in seen:
            seen.add(k)
            end += 1
        done = await asyncio.gather(*(_apply_one(svc, op, holder) for op in ops[start:end]),
                                    return_exceptions=True)
        for i, r in enumerate(done, start):
            results[i] = r if isinstance(r, pb.BatchResult) else _result(r)
        start = end
    return pb.BatchReply(results=results)
