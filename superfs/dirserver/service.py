"""The DirService gRPC servicer: decode a request, call the engine, encode the reply.

No logic lives here beyond that: reads go to :class:`Namespace`, attribute
changes to :class:`DirAttrs`, operations that touch shards to the
:class:`Coordinator`, the cluster map to :class:`ClusterRegistry`. Errors are
:class:`FsError` all the way up; ``rpc_handler`` turns them into a status
carrying the errno.
"""
from __future__ import annotations

import logging

import grpc

from superfs.config import DirServerConfig
from superfs.dirserver.attrs import DirAttrs
from superfs.dirserver.cluster_map import ClusterRegistry
from superfs.dirserver import recovery
from superfs.dirserver.coordinator import Coordinator
from superfs.dirserver.intents import Intent
from superfs.dirserver.namespace import Namespace
from superfs.dirserver.shards import ShardClient, ShardOps
from superfs.dirserver.store import DirStore
from superfs.errors import rpc_handler
from superfs.rpc.channels import Channels
from superfs.rpc.cluster_map import ClusterView
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg

log = logging.getLogger(__name__)

Ctx = grpc.aio.ServicerContext


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
        self.channels = Channels(cfg.rpc_timeout_s, transport="grpc")  # daemons call each other on gRPC
        # the dir server's routing to shards and data servers: the one view, over its own registry
        self.view = ClusterView(self.channels, cluster_map=self.registry.map, source=self._current_map)
        self.registry.on_change = self.view.adopt
        self.namespace = Namespace(store, secret, cfg.dir_lease_s)
        self.attrs = DirAttrs(store)
        self.coordinator = Coordinator(
            store, shards or ShardClient(self.view, secret))

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

    # ------------------------------------------------------------------ reads

    @rpc_handler
    async def Resolve(self, request: pb.ResolveRequest, context: Ctx) -> pb.ResolveReply:
        return self.namespace.resolve(request.path, request.creds)

    @rpc_handler
    async def GetDir(self, request: pb.DirRequest, context: Ctx) -> pb.DirAttrReply:
        return self.namespace.get_dir(request.ino, request.creds)

    @rpc_handler
    async def LookupDir(self, request: pb.LookupDirRequest, context: Ctx) -> pb.DirAttrReply:
        return self.namespace.lookup_dir(request.parent_ino, request.name, request.creds)

    @rpc_handler
    async def ListDirs(self, request: pb.ListDirsRequest, context: Ctx) -> pb.ListDirsReply:
        return self.namespace.list_dirs(request.ino, request.after, request.limit, request.creds)

    # -------------------------------------------------------------- mutations

    @rpc_handler
    async def Mkdir(self, request: pb.MkdirRequest, context: Ctx) -> pb.DirInfo:
        return await self.coordinator.mkdir(request.parent_ino, request.name, request.mode, request.creds)

    @rpc_handler
    async def Rmdir(self, request: pb.RmdirRequest, context: Ctx) -> pb.Empty:
        await self.coordinator.rmdir(request.parent_ino, request.name, request.creds)
        return pb.Empty()

    @rpc_handler
    async def RenameDir(self, request: pb.RenameDirRequest, context: Ctx) -> pb.Empty:
        await self.coordinator.rename_dir(request.src_parent, request.src_name, request.dst_parent,
                                          request.dst_name, request.flags, request.creds)
        return pb.Empty()

    @rpc_handler
    async def SetDirAttr(self, request: pb.SetAttrRequest, context: Ctx) -> pb.Attr:
        return await self.attrs.set_attr(request)

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


def _intents_reply(intents: list[Intent]) -> pb.DirIntentsReply:
    return pb.DirIntentsReply(intents=[pb.DirIntent(
        id=i.id, op=i.op, ino=i.ino, parent=i.parent, name=i.name, dst_parent=i.dst_parent,
        dst_name=i.dst_name, replaced_ino=i.replaced_ino, aborting=i.aborting) for i in intents])
