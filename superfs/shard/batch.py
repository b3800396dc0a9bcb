"""ApplyBatch: the changes a lease holder made ahead, applied in one group commit.

A client holding an exclusive lease on a directory creates, writes and
unlinks small files there on its own and sends the changes here in batches
(superfs/client/batcher.py). Each operation is checked as its single-call
RPC would check it (name, partition, directory capability and its lease
epoch, POSIX permissions in the transaction), and the checks that need no
transaction come first, for every operation. Then all of them run in ONE
write transaction, in their order, each in a nested transaction of its own:
one that fails (EEXIST, ENOSPC, a refused capability) changes nothing and is
reported in its result, the others commit together, with one fsync.

A create names the inode number the holder picked from a range this shard
delegated to it (DelegateInodes; store.claim_delegated refuses one that was
not, or was used), so the holder answered the application before asking.
"""
from __future__ import annotations

import errno
import logging

import lmdb
from dataclasses import dataclass
from typing import Any, Callable

from superfs import names
from superfs.errors import FsError
from superfs.faults import crash_point
from superfs.shard import file_ops, name_ops
from superfs.shard.crossshard import new_txid
from superfs.shard.name_ops import DirGuard
from superfs.shard.records import REGULAR, OutboxItem, encode_name
from superfs.shard.store import ShardTxn
from superfs.shard.txn_base import now_ns
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

MAX_OPS = 4096


@dataclass
class _Prepared:
    """One operation after the checks that need no transaction: its transaction step, or its error."""

    step: Callable[[ShardTxn], Any] | None = None
    error: FsError | None = None
    kind: str = ""
    creds: pb.Creds | None = None


def _result(err: FsError) -> pb.BatchResult:
    return pb.BatchResult(errno_name=errno.errorcode.get(err.errno, "EIO"), message=err.message)


async def apply_batch(svc: Any, request: pb.BatchRequest, holder: bytes) -> pb.BatchReply:
    """Run ``request``'s operations for ``holder`` (its session id) on servicer ``svc``."""
    if len(request.ops) > MAX_OPS:
        raise FsError(errno.EINVAL, f"at most {MAX_OPS} operations per batch")
    threshold = svc.cluster.inline_threshold
    prepared = [await _prepare(svc, op, holder, threshold) for op in request.ops]
    env = svc.store.lmdb.env

    def run(t: ShardTxn) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        for p in prepared:
            if p.step is None:
                out.append(("err", p.error))
                continue
            child = env.begin(write=True, parent=t.txn)
            try:
                value = p.step(t.nested(child))
            except FsError as e:
                child.abort()
                out.append(("err", e))
            except lmdb.MapFullError:
                child.abort()
                out.append(("err", FsError(errno.ENOSPC, "metadata store is full")))
            except BaseException:
                child.abort()
                raise
            else:
                child.commit()
                out.append((p.kind, value))
                crash_point("shard.batch.mid_apply")  # (at its N-th passage) nothing of it is committed
        return out

    done = await svc.store.write(run)
    crash_point("shard.batch.after_commit")
    reply = pb.BatchReply()
    freed = False
    for p, (kind, value) in zip(prepared, done):
        if kind == "err":
            reply.results.append(_result(value))
        elif kind == "create":
            res: file_ops.CreateResult = value
            assert res.node is not None
            reply.results.append(pb.BatchResult(file=svc._info(res.node, p.creds, created=True)))
        elif kind == "write":
            reply.results.append(pb.BatchResult(file=svc._info(value, p.creds)))
        else:  # unlink: (ino, links left or None, txid)
            ino, nlink, txid = value
            if nlink is None:  # the inode lives elsewhere: hand it the lost link now (or the outbox will)
                node = await svc.cross.deliver(OutboxItem(txid, ino, -1, now_ns()))
                nlink = node.nlink if node is not None else 0
            freed = freed or nlink == 0
            reply.results.append(pb.BatchResult(unlink=pb.UnlinkReply(ino=ino, nlink=nlink)))
    if freed:
        svc.reclaimer.kick()  # chunks of freed files, links owed elsewhere
    return reply


async def _prepare(svc: Any, op: pb.BatchOp, holder: bytes, threshold: int) -> _Prepared:
    which = op.WhichOneof("op")
    try:
        if which == "create":
            return _prepare_create(svc, op.create, holder, threshold)
        if which == "unlink":
            return await _prepare_unlink(svc, op.unlink)
        if which == "write":
            return _prepare_write(svc, op.write, threshold)
        raise FsError(errno.EINVAL, f"unknown batch operation {which!r}")
    except FsError as e:
        return _Prepared(error=e)


def _prepare_create(svc: Any, r: pb.CreateFileRequest, holder: bytes, threshold: int) -> _Prepared:
    parent, creds = r.parent_ino, r.creds
    raw = names.check_name(r.name)
    partition = svc.cluster.check_entry(parent, r.name)
    guard: DirGuard = svc._cap(r.cap, parent, creds)
    if not r.ino:
        raise FsError(errno.EINVAL, "a batched create names its delegated inode number")
    ftype = r.type or REGULAR
    target = encode_name(r.symlink_target)
    if r.delegation_holder:
        # the number came from this client's session with the partition's previous shard, and its
        # ranges moved here with the partition (shard/partition_ops.py): a 16-byte random session
        # id, known only to that client
        if len(r.delegation_holder) != 16:
            raise FsError(errno.EINVAL, "a delegation holder is a 16-byte session id")
        holder = bytes(r.delegation_holder)

    def step(t: ShardTxn) -> file_ops.CreateResult:
        res = file_ops.create_file(
            t, parent=parent, raw=raw, partition=partition, mode=r.mode, ftype=ftype, target=target,
            exclusive=True, truncate=False, creds=creds, data=r.data, inline_threshold=threshold, rdev=r.rdev,
            group=guard.group, ino=r.ino, holder=holder, time_ns=r.time_ns)
        return res

    return _Prepared(step, kind="create", creds=creds)


async def _prepare_unlink(svc: Any, r: pb.UnlinkRequest) -> _Prepared:
    parent, creds = r.parent_ino, r.creds
    raw = names.check_name(r.name)
    svc.cluster.check_entry(parent, r.name)
    guard: DirGuard = svc._cap(r.cap, parent, creds)
    owners = await svc._owners(guard, creds, [(parent, raw)])
    txid = new_txid()

    def step(t: ShardTxn) -> tuple[int, int | None, str]:
        ino, nlink = name_ops.unlink(t, parent, raw, creds=creds, guard=guard, owners=owners, txid=txid)
        return ino, nlink, txid

    return _Prepared(step, kind="unlink", creds=creds)


def _prepare_write(svc: Any, r: pb.WriteInlineRequest, threshold: int) -> _Prepared:
    svc.cluster.check_ino(r.ino)

    def step(t: ShardTxn) -> Any:
        return file_ops.write_inline(t, r.ino, offset=r.offset, data=r.data, truncate_to_end=r.truncate_to_end,
                                     creds=r.creds, inline_threshold=threshold)

    return _Prepared(step, kind="write", creds=r.creds)
