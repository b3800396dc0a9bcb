"""ShardServicer: the gRPC face of a file-metadata shard.

Each method decodes its request, checks routing (ESTALE when the entry or
inode is not on this shard, so the client refreshes its map) and the
directory capability (W|X to change names, X to look one up, R to list),
runs one store operation (mutations through the
group-commit writer, reads inline on a read transaction), and encodes the
reply. Replies that describe a regular file to a caller carry a chunk
capability for it: the rights (R, W) the caller's creds hold on the inode,
signed for the data servers (one HMAC per reply; never in listings).
Cross-shard steps are delegated to :class:`CrossShard`, deferred work
to :class:`Reclaimer`, waiting out an rmdir's pending seal to
:class:`SealWaiter`; the administrative RPCs of fsck to :mod:`admin_ops`.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Callable, Iterable, TypeAlias, TypeVar

import grpc

from superfs import capability, names, perms
from superfs.errors import MISROUTED, FsError, rpc_handler
from superfs.faults import crash_point
from superfs.perms import CredsLike
from superfs.routing import is_dir_ino, make_file_ino
from superfs.shard import admin_ops, file_ops, layout_ops, name_ops, xattr_ops
from superfs.shard.batch import apply_batch
from superfs.shard.cluster import ShardCluster
from superfs.shard.confirms import forget_applied
from superfs.shard.crossshard import CrossShard, new_txid
from superfs.shard.fences import Fences
from superfs.shard.inflight import OpTracker, tracked
from superfs.shard.name_ops import DirGuard
from superfs.shard.partition_rpcs import PartitionMoveRpcs
from superfs.shard.admin_rpcs import AdminRpcs
from superfs.shard.replies import attr_of, file_info_of
from superfs.shard.records import (
    DIRECTORY, REGULAR, Inode, OutboxItem, ReclaimItem, dentry_key, decode_name, encode_name,
)
from superfs.shard.reclaimer import Reclaimer
from superfs.shard.seals import SealWaiter
from superfs.shard.store import FileMetaStore, ShardTxn
from superfs.shard.txn_base import now_ns
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg

log = logging.getLogger(__name__)

Ctx: TypeAlias = grpc.aio.ServicerContext
MAX_TXID = 200
LOCK_WAIT_S = 10.0
MAX_FORGET = 10000   # txids per ForgetApplied
MAX_TARGETED = 10000  # directories per DirsTargeted
T = TypeVar("T")


def chunk_rights(node: Inode, creds: CredsLike, *, created: bool = False) -> int:
    """R|W the caller holds on a regular file's bytes (its creator: both, as its open(2) would)."""
    if node.ftype != REGULAR:
        return 0
    if created:
        return perms.R_OK | perms.W_OK
    return perms.rights(node.mode, node.uid, node.gid, creds) & capability.CHUNK_RIGHTS


MAX_DELEGATE = 1 << 16
MAX_DELEGATE_PARTITIONS = 1 << 20


def _holder_of(context: Ctx) -> bytes:
    """The lease holder a call comes from: its session (numbers are delegated to one session)."""
    session = getattr(context, "session", None)
    if session is None:
        raise FsError(errno.EOPNOTSUPP, "delegated inode numbers and batches travel on a session only")
    return bytes(session.session_id)


def _txid(txid: str) -> str:
    if not txid or len(txid) > MAX_TXID:
        raise FsError(errno.EINVAL, f"txid must be 1..{MAX_TXID} characters")
    return txid


def _before_deadline(context: Ctx, fn: Callable[[ShardTxn], T]) -> Callable[[ShardTxn], T]:
    """``fn``, refused if the caller's deadline passed before its transaction runs.

    For the idempotent steps (RemoteLink, AdjustNlink): a copy the sender gave
    up on must not be applied after the sender confirmed the txid and the
    receiver forgot it (see shard/confirms.py).
    """
    remaining = context.time_remaining()
    if remaining is None:
        return fn
    deadline = time.monotonic() + remaining

    def guarded(t: ShardTxn) -> T:
        if time.monotonic() > deadline:
            raise FsError(errno.ETIMEDOUT, "the caller's deadline passed before this step could run")
        return fn(t)

    return guarded

class ShardServicer(PartitionMoveRpcs, AdminRpcs, pbg.ShardServiceServicer):
    """All ShardService RPCs of one shard.

    ``cluster`` may hold a fixed map (tests) or follow the dir server
    (main.run). ``secret`` verifies directory capabilities and signs chunk capabilities.
    """

    def __init__(self, store: FileMetaStore, cluster: ShardCluster, secret: bytes) -> None:
        self.store = store
        self.cluster = cluster
        self.secret = secret
        self.cross = CrossShard(store, cluster)
        self.seals = SealWaiter(store, cluster)
        self.reclaimer = Reclaimer(store, cluster, self.cross, self.seals)
        self.ops = OpTracker()
        self.fences = Fences(store)
        cluster.on_frozen = self._frozen_changed
        self._background: asyncio.Task[None] | None = None
        items, seals = store.write_now(lambda t: t.index_background_work())
        if items or seals:
            log.info("indexed %d queued reclaim items and %d seals for the background work", items, seals)

    # ------------------------------------------------------------ lifecycle

    def start_background(self) -> None:
        """Start the reclaim / outbox / intent loop (its first round runs at once)."""
        if self._background is None:
            self._background = asyncio.get_running_loop().create_task(self.reclaimer.run_forever())

    async def stop_background(self) -> None:
        if self._background is not None:
            self._background.cancel()
            try:
                await self._background
            except asyncio.CancelledError:
                pass
            self._background = None

    # -------------------------------------------------------------- helpers

    def _cap(self, cap: pb.DirCap, dir_ino: int, creds: CredsLike) -> DirGuard:
        c = self._verify_dir(cap, dir_ino, creds.uid, perms.W_OK | perms.X_OK)
        return DirGuard(c.sticky, c.owner_uid, c.gid if c.setgid else None)

    def _verify_dir(self, cap: pb.DirCap, dir_ino: int, uid: int, want: int) -> pb.DirCap:
        """The directory capability, checked: signature, user, rights, and the directory's lease fence."""
        c = capability.verify(self.secret, cap, dir_ino=dir_ino, uid=uid, want=want)
        self.fences.check(dir_ino, c.epoch)
        return c

    def _info(self, node: Inode, creds: CredsLike, data: bytes = b"", *, created: bool = False) -> pb.FileInfo:
        """A FileInfo for ``creds``, with its chunk capability (none when it holds no right)."""
        info = file_info_of(node, data)
        rights = chunk_rights(node, creds, created=created)
        if rights:
            info.chunk_cap.CopyFrom(capability.sign_chunk(self.secret, ino=node.ino, rights=rights))
        return info

    async def _wait_free(self, parent: int, raw: bytes) -> None:
        await self.cross.locks.wait_free(dentry_key(parent, raw), LOCK_WAIT_S)

    async def _remote_file(self, ino: int, creds: pb.Creds) -> pb.FileInfo:
        home = self.cluster.shard_of_ino(ino)
        if home == self.cluster.shard_id:
            raise FsError(errno.ENOENT, f"entry points at missing inode {ino}")
        return await self.cluster.shard(home).get_file(pb.GetFileRequest(ino=ino, creds=creds))

    async def _owners(self, guard: DirGuard, creds: pb.Creds, entries: Iterable[tuple[int, bytes]]) -> dict[int, int]:
        """Owners of remote inodes that a sticky-directory check will need."""
        if not guard.needs_owner(creds):
            return {}
        remote: list[int] = []
        with self.store.read() as t:
            for parent, raw in entries:
                found = t.entry(parent, raw)
                if found is not None and found[1] != DIRECTORY and t.inode(found[0]) is None:
                    remote.append(found[0])
        return {ino: (await self._remote_file(ino, creds)).attr.uid for ino in remote}

    async def _after_shrink(self, item: ReclaimItem | None) -> None:
        """Cut the data servers' chunks past the new end before answering, and only
        now: later, a new write past the end would be cut too (see reclaimer.py)."""
        if item is not None:
            await self.reclaimer.reclaim(item)

    # ---------------------------------------------------------------- files

    @rpc_handler
    @tracked
    async def CreateFile(self, request: pb.CreateFileRequest, context: Ctx) -> pb.CreateFileReply:
        parent, name, creds = request.parent_ino, request.name, request.creds
        raw = names.check_name(name)
        partition = self.cluster.check_entry(parent, name)
        guard = self._cap(request.cap, parent, creds)
        threshold = self.cluster.inline_threshold
        ftype = request.type or REGULAR
        target = encode_name(request.symlink_target)
        await self._wait_free(parent, raw)
        res = await self.seals.run(lambda: self.store.write(lambda t: file_ops.create_file(
            t, parent=parent, raw=raw, partition=partition, mode=request.mode, ftype=ftype, target=target,
            exclusive=request.exclusive, truncate=request.truncate, creds=creds, data=request.data,
            inline_threshold=threshold, rdev=request.rdev, group=guard.group)))
        if res.node is None:  # an existing name whose inode lives on another shard
            if request.truncate:
                home = self.cluster.shard_of_ino(res.remote_ino)
                await self.cluster.shard(home).set_attr(pb.SetAttrRequest(
                    ino=res.remote_ino, mask=file_ops.SET_SIZE, size=0, creds=creds))
            return pb.CreateFileReply(file=await self._remote_file(res.remote_ino, creds), created=False)
        await self._after_shrink(res.reclaim)
        log.debug("create %d/%s -> %d (created=%s)", parent, name, res.node.ino, res.created)
        return pb.CreateFileReply(file=self._info(res.node, creds, created=res.created), created=res.created)

    @rpc_handler
    async def LookupFile(self, request: pb.LookupFileRequest, context: Ctx) -> pb.LookupFileReply:
        raw = names.check_name(request.name)
        self.cluster.check_entry(request.parent_ino, request.name, read=True)
        # the last directory of a path is searched too, like every one above it
        self._verify_dir(request.cap, request.parent_ino, request.creds.uid, perms.X_OK)
        with self.store.read() as t:
            ino, ftype, node, data = file_ops.lookup_file(t, request.parent_ino, raw, request.want_data,
                                                         request.creds)
        entry = pb.Dentry(name=request.name, ino=ino, type=pb.FileType.ValueType(ftype))
        reply = pb.LookupFileReply(entry=entry, has_file=node is not None)
        if node is not None:
            reply.file.CopyFrom(self._info(node, request.creds, data))
        return reply

    @rpc_handler
    async def GetFile(self, request: pb.GetFileRequest, context: Ctx) -> pb.FileInfo:
        self.cluster.check_ino(request.ino, read=True)
        with self.store.read() as t:
            node, data = file_ops.get_file(t, request.ino, request.want_data, request.creds)
        return self._info(node, request.creds, data)

    @rpc_handler
    @tracked
    async def SetAttr(self, request: pb.SetAttrRequest, context: Ctx) -> pb.Attr:
        r = request
        self.cluster.check_ino(r.ino)
        threshold = self.cluster.inline_threshold
        node, item = await self.store.write(lambda t: file_ops.set_attr(
            t, r.ino, mask=r.mask, mode=r.mode, uid=r.uid, gid=r.gid, size=r.size, atime_ns=r.atime_ns,
            mtime_ns=r.mtime_ns, creds=r.creds, inline_threshold=threshold))
        await self._after_shrink(item)
        return attr_of(node)

    @rpc_handler
    @tracked
    async def WriteInline(self, request: pb.WriteInlineRequest, context: Ctx) -> pb.Attr:
        r = request
        self.cluster.check_ino(r.ino)
        threshold = self.cluster.inline_threshold
        node = await self.store.write(lambda t: file_ops.write_inline(
            t, r.ino, offset=r.offset, data=r.data, truncate_to_end=r.truncate_to_end, creds=r.creds,
            inline_threshold=threshold))
        return attr_of(node)

    @rpc_handler
    async def ReadInline(self, request: pb.ReadInlineRequest, context: Ctx) -> pb.DataReply:
        self.cluster.check_ino(request.ino, read=True)
        with self.store.read() as t:
            data = file_ops.read_inline(t, request.ino, offset=request.offset, length=request.length,
                                        creds=request.creds)
        return pb.DataReply(data=data)

    @rpc_handler
    @tracked
    async def ConvertToChunked(self, request: pb.ConvertRequest, context: Ctx) -> pb.FileInfo:
        r = request
        self.cluster.check_ino(r.ino)
        chunk_size = r.chunk_size or self.cluster.map.chunk_size
        await self.cluster.check_layout(list(r.layout), chunk_size)
        node = await self.store.write(lambda t: file_ops.convert_to_chunked(
            t, r.ino, creds=r.creds, layout=list(r.layout), expect_generation=r.expect_generation,
            chunk_size=chunk_size))
        return self._info(node, r.creds)

    @rpc_handler
    @tracked
    async def SetSize(self, request: pb.SetSizeRequest, context: Ctx) -> pb.Attr:
        r = request
        self.cluster.check_ino(r.ino)
        written = [(w.start, w.end) for w in r.written] if r.reports_written else None
        node = await self.store.write(lambda t: file_ops.set_size(
            t, r.ino, size=r.size, mtime_ns=r.mtime_ns, creds=r.creds, written=written,
            seen_generation=r.seen_generation))
        return attr_of(node)

    # ---------------------------------------------------------------- names

    @rpc_handler
    @tracked
    async def Unlink(self, request: pb.UnlinkRequest, context: Ctx) -> pb.UnlinkReply:
        parent, creds = request.parent_ino, request.creds
        raw = names.check_name(request.name)
        self.cluster.check_entry(parent, request.name)
        guard = self._cap(request.cap, parent, creds)
        await self._wait_free(parent, raw)
        owners = await self._owners(guard, creds, [(parent, raw)])
        txid = new_txid()
        ino, nlink = await self.store.write(lambda t: name_ops.unlink(
            t, parent, raw, creds=creds, guard=guard, owners=owners, txid=txid))
        crash_point("shard.unlink.after_commit")
        if nlink is None:  # the inode lives elsewhere: hand it the lost link now
            node = await self.cross.deliver(OutboxItem(txid, ino, -1, now_ns()))
            nlink = node.nlink if node is not None else 0
        return pb.UnlinkReply(ino=ino, nlink=nlink)

    @rpc_handler
    @tracked
    async def Link(self, request: pb.LinkRequest, context: Ctx) -> pb.Attr:
        ino, parent, name, creds = request.ino, request.new_parent, request.new_name, request.creds
        raw = names.check_name(name)
        self.cluster.check_entry(parent, name)
        self._cap(request.cap, parent, creds)
        if is_dir_ino(ino):
            raise FsError(errno.EPERM, "hard links to directories are not allowed")
        self.cluster.ino_home(ino)
        await self._wait_free(parent, raw)
        if self.cluster.owns_ino(ino):
            node = await self.seals.run(lambda: self.store.write(lambda t: name_ops.link(t, ino, parent, raw, creds)))
        else:
            # protected hardlinks, against the inode's attributes from its home shard
            a = (await self._remote_file(ino, creds)).attr
            perms.check_hardlink(a.mode, a.uid, a.gid, creds)
            node = await self.seals.run(lambda: self.cross.link(ino, parent, raw))
        return attr_of(node)

    @rpc_handler
    @tracked
    async def RenameFile(self, request: pb.RenameFileRequest, context: Ctx) -> pb.Empty:
        r, creds = request, request.creds
        src_raw = names.check_name(r.src_name)
        dst_raw = names.check_name(r.dst_name)
        self.cluster.check_entry(r.src_parent, r.src_name)
        src_guard = self._cap(r.src_cap, r.src_parent, creds)
        dst_guard = self._cap(r.dst_cap, r.dst_parent, creds)
        name_ops.check_rename_flags(r.flags)
        await self._wait_free(r.src_parent, src_raw)
        owners = await self._owners(src_guard, creds, [(r.src_parent, src_raw)])
        if self.cluster.owns_entry(r.dst_parent, r.dst_name):
            await self._wait_free(r.dst_parent, dst_raw)
            owners.update(await self._owners(dst_guard, creds, [(r.dst_parent, dst_raw)]))
            txid = new_txid()
            await self.seals.run(lambda: self.store.write(lambda t: name_ops.rename_local(
                t, r.src_parent, src_raw, r.dst_parent, dst_raw, flags=r.flags, creds=creds,
                src_guard=src_guard, dst_guard=dst_guard, owners=owners, txid=txid)))
            self.reclaimer.kick()  # a replaced inode living elsewhere is owed its lost link
        else:
            if dst_guard.needs_owner(creds):
                await self._check_remote_sticky(r, dst_guard, src_raw)
            await self.cross.rename(src_parent=r.src_parent, src_raw=src_raw, dst_parent=r.dst_parent,
                                    dst_name=r.dst_name, flags=r.flags, creds=creds, guard=src_guard,
                                    owners=owners, target=lambda: self._current_target(r))
        return pb.Empty()

    async def _current_target(self, r: pb.RenameFileRequest) -> int:
        """The inode the destination entry of a cross-shard rename names now (0: none).

        When the destination's shard cannot be asked, 0: the rename may then
        complete later only into a free name, never over a file (crossshard.py).
        """
        shard = self.cluster.shard_of_entry(r.dst_parent, r.dst_name)
        try:
            found = await self.cluster.shard(shard).lookup_file(pb.LookupFileRequest(
                parent_ino=r.dst_parent, name=r.dst_name, creds=r.creds, cap=r.dst_cap))
        except FsError as e:
            if e.errno in (errno.EIO, errno.ETIMEDOUT, errno.EAGAIN):
                log.debug("rename to %d/%s: destination shard %d unreachable (%s): expecting no entry",
                          r.dst_parent, r.dst_name, shard, e)
                return 0
            if e.errno == errno.ENOENT:
                return 0
            raise
        return int(found.entry.ino)

    async def _check_remote_sticky(self, r: pb.RenameFileRequest, guard: DirGuard, src_raw: bytes) -> None:
        """Sticky destination on another shard: may the caller replace what is there?"""
        shard = self.cluster.shard_of_entry(r.dst_parent, r.dst_name)
        try:
            found = await self.cluster.shard(shard).lookup_file(pb.LookupFileRequest(
                parent_ino=r.dst_parent, name=r.dst_name, creds=r.creds, cap=r.dst_cap))
        except FsError as e:
            if e.errno == errno.ENOENT:
                return
            raise
        if found.entry.type == DIRECTORY:
            return  # RemoteLink answers EISDIR
        with self.store.read() as t:
            src = t.entry(r.src_parent, src_raw)
        if src is not None and src[0] == found.entry.ino:
            return  # same inode: the rename changes nothing
        owner = found.file.attr.uid if found.has_file else (await self._remote_file(found.entry.ino, r.creds)).attr.uid
        guard.check(r.creds, owner)

    @rpc_handler
    async def ListFiles(self, request: pb.ListFilesRequest, context: Ctx) -> pb.ListFilesReply:
        self._verify_dir(request.cap, request.parent_ino, request.creds.uid, perms.R_OK)
        after = encode_name(request.after)
        with self.store.read() as t:
            entries, nodes, more = name_ops.list_files(t, request.parent_ino, after, request.limit,
                                                       request.with_attrs)
        reply = pb.ListFilesReply(more=more)
        reply.entries.extend(pb.Dentry(name=decode_name(n), ino=ino, type=pb.FileType.ValueType(ft))
                             for n, ino, ft in entries)
        if request.with_attrs:
            reply.files.extend(file_info_of(n) if n is not None else pb.FileInfo() for n in nodes)
        return reply

    # ---------------------------------------------------------------- xattrs

    @rpc_handler
    async def GetXattr(self, request: pb.XattrRequest, context: Ctx) -> pb.XattrReply:
        self.cluster.check_ino(request.ino, read=True)
        with self.store.read() as t:
            value = xattr_ops.get_xattr(t, request.ino, request.name, request.creds)
        return pb.XattrReply(value=value)

    @rpc_handler
    async def ListXattr(self, request: pb.XattrRequest, context: Ctx) -> pb.XattrReply:
        self.cluster.check_ino(request.ino, read=True)
        with self.store.read() as t:
            found = xattr_ops.list_xattr(t, request.ino, request.creds)
        return pb.XattrReply(names=found)

    @rpc_handler
    @tracked
    async def SetXattr(self, request: pb.XattrRequest, context: Ctx) -> pb.Empty:
        r = request
        self.cluster.check_ino(r.ino)
        await self.store.write(lambda t: xattr_ops.set_xattr(t, r.ino, r.name, r.value, r.flags, r.creds))
        return pb.Empty()

    @rpc_handler
    @tracked
    async def RemoveXattr(self, request: pb.XattrRequest, context: Ctx) -> pb.Empty:
        r = request
        self.cluster.check_ino(r.ino)
        await self.store.write(lambda t: xattr_ops.remove_xattr(t, r.ino, r.name, r.creds))
        return pb.Empty()

    # ------------------------------------------------------ dir server calls

    def _dir_entry(self, request: pb.DirEntryRequest) -> bytes:
        raw = names.check_name(request.name)
        self.cluster.check_entry(request.parent_ino, request.name)
        if not is_dir_ino(request.ino):
            raise FsError(errno.EINVAL, f"{request.ino} is not a directory inode")
        return raw

    @rpc_handler
    @tracked
    async def ReserveDirEntry(self, request: pb.DirEntryRequest, context: Ctx) -> pb.Empty:
        r = request
        raw = self._dir_entry(r)
        await self._wait_free(r.parent_ino, raw)
        await self.store.write(lambda t: name_ops.reserve_dir(t, r.parent_ino, raw, r.ino))
        return pb.Empty()

    @rpc_handler
    @tracked
    async def ReleaseDirEntry(self, request: pb.DirEntryRequest, context: Ctx) -> pb.Empty:
        r = request
        raw = self._dir_entry(r)
        await self.store.write(lambda t: name_ops.release_dir(t, r.parent_ino, raw, r.ino))
        return pb.Empty()

    @rpc_handler
    @tracked
    async def SealDir(self, request: pb.SealRequest, context: Ctx) -> pb.SealReply:
        d = request.dir_ino
        if not is_dir_ino(d):
            raise FsError(errno.EINVAL, f"{d} is not a directory inode")
        empty = await self.store.write(lambda t: name_ops.seal_dir(t, d))
        if empty:
            crash_point("shard.seal.after_commit")
        return pb.SealReply(empty=empty)

    @rpc_handler
    @tracked
    async def UnsealDir(self, request: pb.SealRequest, context: Ctx) -> pb.Empty:
        d = request.dir_ino
        await self.store.write(lambda t: name_ops.unseal_dir(t, d))
        self.seals.lifted(d)
        return pb.Empty()

    # ------------------------------------------------------ shard to shard

    @rpc_handler
    @tracked
    async def RemoteLink(self, request: pb.RemoteLinkRequest, context: Ctx) -> pb.RemoteLinkReply:
        r = request
        raw = names.check_name(r.name)
        self.cluster.check_entry(r.parent_ino, r.name)
        txid = _txid(r.txid)
        self.cluster.ino_home(r.ino)
        await self._wait_free(r.parent_ino, raw)
        if r.exchange:
            ino, ftype = await self.store.write(_before_deadline(context, lambda t: name_ops.remote_exchange(
                t, r.parent_ino, raw, ino=r.ino, ftype=r.type, txid=txid)))
            crash_point("shard.remote_exchange.after_commit")
            return pb.RemoteLinkReply(replaced_ino=ino, replaced_type=ftype)  # type: ignore[arg-type]
        crash_point("shard.remote_link.before_commit")
        expect = int(r.expect_ino) if r.check_target else None
        replaced = await self.seals.run(lambda: self.store.write(_before_deadline(context, lambda t: name_ops.remote_link(
            t, r.parent_ino, raw, ino=r.ino, ftype=r.type, replace=r.replace, no_replace=r.no_replace,
            txid=txid, expect_ino=expect, record_refusal=r.record_refusal))))
        if replaced is None:
            raise FsError(errno.ECANCELED, f"{r.parent_ino}/{r.name} no longer names inode {r.expect_ino} "
                                           "(0: nothing), as the rename expected: nothing changed")
        crash_point("shard.remote_link.after_commit")
        if replaced and replaced != r.ino:
            self.reclaimer.kick()  # the replaced inode may owe a link elsewhere
        return pb.RemoteLinkReply(replaced_ino=replaced)

    @rpc_handler
    @tracked
    async def RepointEntry(self, request: pb.RepointEntryRequest, context: Ctx) -> pb.Empty:
        r = request
        raw = names.check_name(r.name)
        self.cluster.check_entry(r.parent_ino, r.name)
        await self._wait_free(r.parent_ino, raw)
        await self.store.write(lambda t: name_ops.repoint_entry(
            t, r.parent_ino, raw, ino=r.ino, ftype=r.type, new_ino=r.new_ino, new_type=r.new_type))
        return pb.Empty()

    @rpc_handler
    @tracked
    async def AdjustNlink(self, request: pb.NlinkRequest, context: Ctx) -> pb.Attr:
        r = request
        self.cluster.check_ino(r.ino)
        txid = _txid(r.txid)
        node = await self.store.write(_before_deadline(context, lambda t: name_ops.adjust_nlink(
            t, r.ino, r.delta, txid)))
        crash_point("shard.adjust_nlink.after_commit")
        return attr_of(node)

    # ------------------------------------------------------ directory leases

    @rpc_handler
    async def SetDirFence(self, request: pb.DirFenceRequest, context: Ctx) -> pb.Empty:
        if not is_dir_ino(request.dir_ino):
            raise FsError(errno.EINVAL, f"{request.dir_ino} is not a directory inode")
        await self.fences.raise_to(request.dir_ino, request.epoch)
        return pb.Empty()

    @rpc_handler
    async def DelegateInodes(self, request: pb.DelegateRequest, context: Ctx) -> pb.DelegateReply:
        holder = _holder_of(context)
        count = request.count
        if not 0 < count <= MAX_DELEGATE or len(request.partitions) > MAX_DELEGATE_PARTITIONS:
            raise FsError(errno.EINVAL, f"1..{MAX_DELEGATE} numbers for at most {MAX_DELEGATE_PARTITIONS} "
                                        "partitions at a time")
        parts = sorted(set(request.partitions))
        for p in parts:
            if p not in self.cluster.owned_partitions or p in self.cluster.frozen_partitions:
                raise FsError(errno.ESTALE, f"{MISROUTED}partition {p} is not on shard {self.cluster.shard_id}, "
                                            "or is moving away")
        firsts = await self.store.write(lambda t: [t.delegate_inos(p, holder, count) for p in parts])
        return pb.DelegateReply(ranges=[pb.InoRange(partition=p, first=make_file_ino(p, f), count=count)
                                        for p, f in zip(parts, firsts)])

    @rpc_handler
    @tracked
    async def ApplyBatch(self, request: pb.BatchRequest, context: Ctx) -> pb.BatchReply:
        return await apply_batch(self, request, _holder_of(context))

    @rpc_handler
    @tracked
    async def SwitchLayout(self, request: pb.SwitchLayoutRequest, context: Ctx) -> pb.FileInfo:
        r = request
        self.cluster.check_ino(r.ino)
        with self.store.read() as t:
            chunk_size = t.require_inode(r.ino).chunk_size
        await self.cluster.check_layout(list(r.layout), chunk_size)
        node = await self.store.write(lambda t: layout_ops.switch_layout(
            t, r.ino, expect_layout=list(r.expect_layout), expect_cut_generation=r.expect_cut_generation,
            layout=list(r.layout)))
        log.info("inode %d: layout %s -> %s", r.ino, list(r.expect_layout), list(node.layout))
        return self._info(node, pb.Creds(uid=0, gid=0))

    @rpc_handler
    async def ForgetApplied(self, request: pb.ForgetAppliedRequest, context: Ctx) -> pb.Empty:
        links, nlinks = list(request.remote_links), list(request.nlinks)
        if len(links) + len(nlinks) > MAX_FORGET:
            raise FsError(errno.EINVAL, f"at most {MAX_FORGET} txids per ForgetApplied")
        n = await forget_applied(self.store, [_txid(x) for x in links], [_txid(x) for x in nlinks])
        log.debug("forgot %d idempotency records on the senders' word", n)
        return pb.Empty()

    @rpc_handler
    async def DirsTargeted(self, request: pb.DirsTargetedRequest, context: Ctx) -> pb.DirsTargetedReply:
        asked = set(request.dir_inos)
        if len(asked) > MAX_TARGETED:
            raise FsError(errno.EINVAL, f"at most {MAX_TARGETED} directories per DirsTargeted")
        targeted = await asyncio.to_thread(self._targeted_dirs)
        return pb.DirsTargetedReply(dir_inos=sorted(asked & targeted))

    def _targeted_dirs(self) -> set[int]:
        with self.store.read() as t:
            return admin_ops.targeted_dirs(t)

    # ------------------------------------------------- cluster administration

    @rpc_handler
    @tracked
    async def RemoveEntry(self, request: pb.RemoveEntryRequest, context: Ctx) -> pb.Empty:
        r = request
        raw = names.check_name(r.name)
        self.cluster.check_entry(r.parent_ino, r.name)
        await self._wait_free(r.parent_ino, raw)
        txid = new_txid()
        removed = await self.store.write(lambda t: admin_ops.remove_entry(
            t, r.parent_ino, raw, r.ino, drop_link=r.drop_link, txid=txid))
        if removed:
            log.warning("fsck removed entry %d/%s -> %d%s", r.parent_ino, r.name, r.ino,
                        " and its link" if r.drop_link else "")
            self.reclaimer.kick()  # a link owed to another shard, or chunks to free
        return pb.Empty()
