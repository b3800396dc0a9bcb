"""The DirService gRPC servicer: decode a request, call the engine, encode the reply.

No logic lives here beyond that: reads go to :class:`Namespace`, attribute
changes to :class:`DirAttrs`, operations that touch shards to the
:class:`Coordinator`, the cluster map to :class:`ClusterRegistry`. Errors are
:class:`FsError` all the way up; ``rpc_handler`` turns them into a status
carrying the errno.
"""
from __future__ import annotations

import errno
import logging
import time
from typing import TypeAlias

import grpc

from superfs import capability, perms
from superfs.config import DirServerConfig
from superfs.dirserver.attrs import DirAttrs
from superfs.dirserver.cluster_map import ClusterRegistry
from superfs.dirserver import dir_batch, recovery
from superfs.dirserver.coordinator import Coordinator
from superfs.dirserver.intents import Intent
from superfs.dirserver.moves import PartitionMover, remove_shard
from superfs.dirserver.lease_table import LeaseTable, Want
from superfs.dirserver.leases import LeaseManager
from superfs.dirserver import mover_lease
from superfs.dirserver.mover_lease import MoverLease as MoverLeaseHolder
from superfs.dirserver.namespace import Namespace
from superfs.dirserver.shards import ShardClient, ShardOps
from superfs.dirserver.store import DirStore
from superfs.errors import FsError, rpc_handler
from superfs.rpc.channels import Channels
from superfs.rpc.cluster_map import ClusterView
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg

log = logging.getLogger(__name__)

Ctx: TypeAlias = grpc.aio.ServicerContext
RESOLVE_TRIES = 8  # walks of one path, each after recalling leases found on the way


class DirServicer(pbg.DirServiceServicer):
    """The dir server's RPC surface over one open :class:`DirStore`.

    ``shards`` defaults to gRPC calls routed by the cluster map; tests of the
    coordinator may pass an in-memory fake instead.
    """

    def __init__(self, cfg: DirServerConfig, store: DirStore, secret: bytes,
                 shards: ShardOps | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.registry = ClusterRegistry(store, cfg)
        self.channels = Channels(cfg.rpc_timeout_s)  # on sessions, once the cluster map names them
        # the dir server's routing to shards and data servers: the one view, over its own registry
        self.view = ClusterView(self.channels, cluster_map=self.registry.map, source=self._current_map)
        self.registry.on_change = self.view.adopt
        self.mover_lease = MoverLeaseHolder(store.get_meta(mover_lease.KEY), save=self._keep_mover_lease)
        self.dir_inos = dir_batch.DirInoDelegations()
        self.namespace = Namespace(store, secret, cfg.dir_lease_s)
        self.attrs = DirAttrs(store)
        shard_ops = shards or ShardClient(self.view, secret)
        self.coordinator = Coordinator(store, shard_ops)
        self.mover = PartitionMover(self.registry, self.view)
        self.secret = secret
        base = next_lease_base(store)
        self.leases = LeaseManager(LeaseTable(base, capability.CAP_TTL_NS / 1e9), shard_ops.fence_all)
        # restarted: holders of leases granted before may not have noticed yet; the first start has none
        self.lease_grace_until = time.monotonic() + (self.leases.lease_ttl_s if base > 1 << 32 else 0.0)

    async def _current_map(self) -> pb.ClusterMap:
        return self.registry.map

    async def close(self) -> None:
        await self.channels.close()

    # ------------------------------------------------------------ cluster map

    @rpc_handler
    async def GetClusterMap(self, request: pb.GetClusterMapRequest, context: Ctx) -> pb.ClusterMap:
        return self.registry.map

    @rpc_handler
    async def RegisterServer(self, request: pb.RegisterServerRequest, context: Ctx) -> pb.ClusterMap:
        return await self.registry.register(request.kind, request.server)

    @rpc_handler
    async def MoverLease(self, request: pb.MoverLeaseRequest, context: Ctx) -> pb.MoverLeaseReply:
        lease = self.mover_lease
        if request.release:
            await lease.give_back(request.holder)
            return pb.MoverLeaseReply(granted=False, holder=lease.holder, expires_in_s=lease.expires_in())
        granted = await lease.take(request.holder, request.ttl_s)
        return pb.MoverLeaseReply(granted=granted, holder=lease.holder, expires_in_s=lease.expires_in())

    async def _keep_mover_lease(self, record: bytes) -> None:
        await self.store.db.write(lambda txn: self.store.put_meta_txn(txn, mover_lease.KEY, record))

    @rpc_handler
    async def SetServerState(self, request: pb.SetServerStateRequest, context: Ctx) -> pb.ClusterMap:
        return await self.registry.set_state(request.id, request.state)

    # ------------------------------------------------------------------ reads

    @rpc_handler
    async def Resolve(self, request: pb.ResolveRequest, context: Ctx) -> pb.ResolveReply:
        holder = _holder(context)
        for _ in range(RESOLVE_TRIES):
            reply = self.namespace.resolve(request.path, request.creds)
            # directories searched on the way (the last one too, if the walk stopped there) whose
            # holder may have made or removed names ahead (dir_batch.py): their leases are
            # recalled, then the walk is done again
            searched = reply.dirs if reply.remaining else reply.dirs[:-1]
            ahead = [d.ino for d in searched if self.leases.table.held_by_other(d.ino, holder)]
            if not ahead:
                break
            for d in ahead:
                await self.leases.use(d, holder, Want.READ)
        await self._lease_cap(reply.cap, context)
        return reply

    @rpc_handler
    async def GetDir(self, request: pb.DirRequest, context: Ctx) -> pb.DirAttrReply:
        reply = self.namespace.get_dir(request.ino, request.creds)
        await self._lease_cap(reply.cap, context)
        return reply

    @rpc_handler
    async def LookupDir(self, request: pb.LookupDirRequest, context: Ctx) -> pb.DirAttrReply:
        await self._recall_others(context, request.parent_ino)
        reply = self.namespace.lookup_dir(request.parent_ino, request.name, request.creds)
        await self._lease_cap(reply.cap, context)
        return reply

    # ------------------------------------------------------------------ leases

    async def _lease_cap(self, cap: pb.DirCap, context: Ctx) -> None:
        """Another client's lease on the directory is recalled before its capability goes out,
        which then carries the directory's lease epoch (shards refuse older ones after a fence)."""
        if not cap.mac:
            return
        want = Want.WRITE if cap.rights & perms.W_OK else Want.READ
        grant = await self.leases.use(cap.dir_ino, _holder(context), want)
        cap.CopyFrom(capability.resign(self.secret, cap, grant.epoch))

    async def _recall_others(self, context: Ctx, dir_ino: int) -> None:
        """Reading ``dir_ino``'s subdirectories: another client's exclusive lease on it is recalled
        first (its holder may have made or removed subdirectories ahead, dir_batch.py)."""
        holder = _holder(context)
        if self.leases.table.held_by_other(dir_ino, holder):
            await self.leases.use(dir_ino, holder, Want.READ)

    async def _recall_for(self, context: Ctx, *dirs: int) -> None:
        """A change of these directories' entries or attributes: other clients' leases on them go first."""
        holder = _holder(context)
        for d in dirs:
            if d:
                await self.leases.use(d, holder, Want.WRITE)

    @rpc_handler
    async def AcquireLease(self, request: pb.LeaseRequest, context: Ctx) -> pb.LeaseReply:
        session = getattr(context, "session", None)
        if session is None:
            raise FsError(errno.EOPNOTSUPP, "leases are granted on sessions only (the holder is called back)")
        if request.want not in (Want.SHARED, Want.EXCLUSIVE):
            raise FsError(errno.EINVAL, f"want must be 1 (shared) or 2 (exclusive), not {request.want}")
        dir_reply = self.namespace.get_dir(request.dir_ino, request.creds)
        if not dir_reply.cap.rights:
            raise FsError(errno.EACCES, "permission denied: the directory cannot be reached")
        holder = bytes(session.session_id)
        if time.monotonic() < self.lease_grace_until:
            # just started: holders of leases granted before may not have let go yet
            mode, want = 0, Want.WRITE if dir_reply.cap.rights & perms.W_OK else Want.READ
        else:
            mode, want = int(request.want), Want(request.want)
        grant = await self.leases.use(request.dir_ino, holder, want, session)
        dir_reply.cap.CopyFrom(capability.resign(self.secret, dir_reply.cap, grant.epoch))
        return pb.LeaseReply(mode=mode, dir=dir_reply, epoch=grant.epoch, grant=grant.number,
                             ttl_ns=int(self.leases.lease_ttl_s * 1e9))

    @rpc_handler
    async def ReleaseLease(self, request: pb.ReleaseLeaseRequest, context: Ctx) -> pb.Empty:
        holder = _holder(context)
        grants = list(request.grants)
        for i, d in enumerate(request.dir_inos):
            self.leases.release(d, holder, grants[i] if i < len(grants) else 0)
        return pb.Empty()

    @rpc_handler
    async def ListDirs(self, request: pb.ListDirsRequest, context: Ctx) -> pb.ListDirsReply:
        await self._recall_others(context, request.ino)
        return self.namespace.list_dirs(request.ino, request.after, request.limit, request.creds)

    # -------------------------------------------------------------- mutations

    @rpc_handler
    async def Mkdir(self, request: pb.MkdirRequest, context: Ctx) -> pb.DirInfo:
        await self._recall_for(context, request.parent_ino)
        return await self.coordinator.mkdir(request.parent_ino, request.name, request.mode, request.creds)

    @rpc_handler
    async def Rmdir(self, request: pb.RmdirRequest, context: Ctx) -> pb.Empty:
        # a lease holder's pending creates in the directory arrive before the emptiness check
        await self._recall_for(context, request.parent_ino, self._child(request.parent_ino, request.name))
        await self.coordinator.rmdir(request.parent_ino, request.name, request.creds)
        return pb.Empty()

    @rpc_handler
    async def RenameDir(self, request: pb.RenameDirRequest, context: Ctx) -> pb.Empty:
        await self._recall_for(context, request.src_parent, request.dst_parent,
                               self._child(request.src_parent, request.src_name),
                               self._child(request.dst_parent, request.dst_name))
        await self.coordinator.rename_dir(request.src_parent, request.src_name, request.dst_parent,
                                          request.dst_name, request.flags, request.creds)
        return pb.Empty()

    @rpc_handler
    async def SetDirAttr(self, request: pb.SetAttrRequest, context: Ctx) -> pb.Attr:
        await self._recall_for(context, request.ino)
        return await self.attrs.set_attr(request)

    @rpc_handler
    async def ApplyDirBatch(self, request: pb.BatchRequest, context: Ctx) -> pb.BatchReply:
        if getattr(context, "session", None) is None:
            raise FsError(errno.EOPNOTSUPP, "directory batches come from lease holders, on sessions")
        return await dir_batch.apply(self, request, _holder(context))

    @rpc_handler
    async def DelegateDirInos(self, request: pb.DelegateDirInosRequest, context: Ctx) -> pb.InoRange:
        if getattr(context, "session", None) is None:
            raise FsError(errno.EOPNOTSUPP, "directory numbers are delegated on sessions only")
        return await self.dir_inos.delegate(self.store, _holder(context), request.count)

    def _child(self, parent: int, name: str) -> int:
        """The directory named ``name`` in ``parent`` (0: none, or an invalid name: the operation says so)."""
        try:
            d = self.store.lookup(parent, name)
        except (FsError, ValueError):
            return 0
        return d.ino if d is not None else 0

    # ----------------------------------------------------------------- xattrs

    @rpc_handler
    async def GetDirXattr(self, request: pb.XattrRequest, context: Ctx) -> pb.XattrReply:
        return pb.XattrReply(value=self.attrs.get_xattr(request.ino, request.name, request.creds))

    @rpc_handler
    async def SetDirXattr(self, request: pb.XattrRequest, context: Ctx) -> pb.Empty:
        await self.attrs.set_xattr(request.ino, request.name, request.value, request.flags, request.creds)
        return pb.Empty()

    @rpc_handler
    async def ListDirXattr(self, request: pb.XattrRequest, context: Ctx) -> pb.XattrReply:
        return pb.XattrReply(names=self.attrs.list_xattrs(request.ino, request.creds))

    @rpc_handler
    async def RemoveDirXattr(self, request: pb.XattrRequest, context: Ctx) -> pb.Empty:
        await self.attrs.remove_xattr(request.ino, request.name, request.creds)
        return pb.Empty()

    # ------------------------------------------------------------------ stats

    @rpc_handler
    async def Stats(self, request: pb.Empty, context: Ctx) -> pb.DirStatsReply:
        return pb.DirStatsReply(directories=self.store.count(), db_bytes=self.store.db.db_bytes())

    # ------------------------------------------------- cluster administration

    @rpc_handler
    async def ListAllDirs(self, request: pb.ListAllDirsRequest, context: Ctx) -> pb.ListDirsReply:
        limit = min(request.limit or 1000, 10000)
        dirs, more = self.store.scan_dirs(request.after_ino, limit)
        return pb.ListDirsReply(dirs=dirs, more=more)

    @rpc_handler
    async def ListDirIntents(self, request: pb.Empty, context: Ctx) -> pb.DirIntentsReply:
        return _intents_reply(self.coordinator.intents.all())

    @rpc_handler
    async def SettleDirIntents(self, request: pb.Empty, context: Ctx) -> pb.DirIntentsReply:
        await recovery.recover_all(self.coordinator)
        return _intents_reply(self.coordinator.intents.all())

    @rpc_handler
    async def RecountDir(self, request: pb.DirRequest, context: Ctx) -> pb.Attr:
        ino = request.ino
        return await self.store.db.write(lambda txn: self.store.recount_txn(txn, ino))

    # ------------------------------------------------------- partition moves

    @rpc_handler
    async def MovePartition(self, request: pb.MovePartitionRequest, context: Ctx) -> pb.PartitionMove:
        return await self.mover.move(request.partition, request.target)

    @rpc_handler
    async def RemoveShard(self, request: pb.RemoveShardRequest, context: Ctx) -> pb.ClusterMap:
        return await remove_shard(self.registry, request.shard_id)


LEASE_BASE_KEY = b"lease_base"


def next_lease_base(store: DirStore) -> int:
    """A lease epoch base above every epoch signed before this start: (starts << 32)."""
    raw = store.get_meta(LEASE_BASE_KEY)
    starts = (int.from_bytes(raw, "big") if raw else 0) + 1
    store.db.write_now(lambda txn: store.put_meta_txn(txn, LEASE_BASE_KEY, starts.to_bytes(8, "big")))
    return starts << 32


GRPC_HOLDER = b"\0" * 16  # every plain gRPC caller: capabilities only, never called back


def _holder(context: Ctx) -> bytes:
    """Who asks: its session, or the one holder that stands for every plain gRPC caller."""
    session = getattr(context, "session", None)
    return bytes(session.session_id) if session is not None else GRPC_HOLDER


def _intents_reply(intents: list[Intent]) -> pb.DirIntentsReply:
    return pb.DirIntentsReply(intents=[pb.DirIntent(
        id=i.id, op=i.op, ino=i.ino, parent=i.parent, name=i.name, dst_parent=i.dst_parent,
        dst_name=i.dst_name, replaced_ino=i.replaced_ino, aborting=i.aborting) for i in intents])
