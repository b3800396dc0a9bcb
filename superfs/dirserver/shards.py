"""The shard calls the dir server makes as coordinator, behind one small interface.

:class:`ShardOps` is what the coordinator needs from the shards: reserve and
release directory entries, seal and unseal a directory everywhere, ask
whether a name is a file (and which), and re-point a name (RENAME_EXCHANGE). :class:`ShardClient` implements it over gRPC with
:mod:`superfs.client.rpc`; tests may substitute an in-memory fake with the
same methods. Every call is idempotent by ino on the shard side, which is
what lets recovery simply repeat a step.
"""
from __future__ import annotations

import asyncio
import errno
import logging
from typing import Protocol, Sequence

from superfs import capability, perms
from superfs.client.rpc import Channels, call
from superfs.dirserver.cluster_map import ClusterRegistry
from superfs.errors import FsError
from superfs.routing import ino_partition
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)


class ShardOps(Protocol):
    """Shard-side steps of directory operations. Failures raise FsError."""

    async def reserve(self, parent: int, name: str, ino: int) -> None:
        """Reserve (parent, name) for directory ``ino``; EEXIST if a file or another dir has it."""

    async def release(self, parent: int, name: str, ino: int) -> None:
        """Drop the reservation of (parent, name) if it is held by ``ino``."""

    async def seal_all(self, dir_ino: int) -> list[bool]:
        """Seal ``dir_ino`` on every shard; per shard, whether it was empty (and so sealed)."""

    async def unseal_all(self, dir_ino: int) -> None:
        """Undo :meth:`seal_all` on every shard."""

    async def file_type(self, parent: int, name: str, creds: pb.Creds) -> int | None:
        """The FileType of the entry (parent, name) on its shard, or None if there is none."""

    async def entry(self, parent: int, name: str, creds: pb.Creds) -> tuple[int, int, int] | None:
        """(ino, FileType, owner uid) of the file named (parent, name), or None if there is none
        (a directory's reservation answers its ino, DIRECTORY and uid 0)."""

    async def repoint(self, parent: int, name: str, ino: int, ftype: int, new_ino: int, new_type: int) -> None:
        """Make (parent, name) point at (new_ino, new_type) if it points at (ino, ftype)
        (or already does); ENOENT if it holds anything else."""


class ShardClient:
    """:class:`ShardOps` over gRPC, routed by the cluster map."""

    def __init__(self, registry: ClusterRegistry, channels: Channels, timeout_s: float, secret: bytes) -> None:
        self.registry = registry
        self.channels = channels
        self.timeout_s = timeout_s
        self.secret = secret  # signs the search capability file_type's lookup needs

    def _stub_for_entry(self, parent: int, name: str) -> object:
        shard = self.registry.shard_of_entry(parent, name)
        return self.channels.shard(self.registry.shard_address(shard))

    async def reserve(self, parent: int, name: str, ino: int) -> None:
        stub = self._stub_for_entry(parent, name)
        req = pb.DirEntryRequest(parent_ino=parent, name=name, ino=ino)
        await call(stub.ReserveDirEntry, req, self.timeout_s)  # type: ignore[attr-defined]

    async def release(self, parent: int, name: str, ino: int) -> None:
        stub = self._stub_for_entry(parent, name)
        req = pb.DirEntryRequest(parent_ino=parent, name=name, ino=ino)
        await call(stub.ReleaseDirEntry, req, self.timeout_s)  # type: ignore[attr-defined]

    async def seal_all(self, dir_ino: int) -> list[bool]:
        replies = await self._everywhere("SealDir", dir_ino)
        return [r.empty for r in replies]

    async def unseal_all(self, dir_ino: int) -> None:
        await self._everywhere("UnsealDir", dir_ino)

    async def file_type(self, parent: int, name: str, creds: pb.Creds) -> int | None:
        reply = await self._lookup(parent, name, creds)
        return None if reply is None else int(reply.entry.type)

    async def _lookup(self, parent: int, name: str, creds: pb.Creds) -> pb.LookupFileReply | None:
        stub = self._stub_for_entry(parent, name)
        # the coordinator checked that creds may search parent (and reach it) before asking
        cap = capability.sign(self.secret, dir_ino=parent, uid=creds.uid, rights=perms.X_OK, sticky=False,
                              owner_uid=0, epoch=capability.DAEMON_EPOCH)
        req = pb.LookupFileRequest(parent_ino=parent, name=name, creds=creds, cap=cap)
        try:
            return await call(stub.LookupFile, req, self.timeout_s)  # type: ignore[attr-defined,no-any-return]
        except FsError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    async def entry(self, parent: int, name: str, creds: pb.Creds) -> tuple[int, int, int] | None:
        reply = await self._lookup(parent, name, creds)
        if reply is None:
            return None
        ino, ftype = int(reply.entry.ino), int(reply.entry.type)
        if ftype == pb.DIRECTORY:
            return ino, ftype, 0
        if reply.has_file:
            return ino, ftype, int(reply.file.attr.uid)
        # a name for an inode whose home is another shard (renamed or linked across shards)
        home = self.registry.map.partition_shard[ino_partition(ino)]
        stub = self.channels.shard(self.registry.shard_address(home))
        info = await call(stub.GetFile, pb.GetFileRequest(ino=ino, creds=creds), self.timeout_s)  # type: ignore[attr-defined]
        return ino, ftype, int(info.attr.uid)

    async def repoint(self, parent: int, name: str, ino: int, ftype: int, new_ino: int, new_type: int) -> None:
        stub = self._stub_for_entry(parent, name)
        req = pb.RepointEntryRequest(parent_ino=parent, name=name, ino=ino, type=ftype,  # type: ignore[arg-type]
                                     new_ino=new_ino, new_type=new_type)  # type: ignore[arg-type]
        await call(stub.RepointEntry, req, self.timeout_s)  # type: ignore[attr-defined]

    async def fence_all(self, dir_ino: int, epoch: int) -> None:
        """Every shard refuses capabilities of ``dir_ino`` older than ``epoch`` (a lease was taken away)."""
        req = pb.DirFenceRequest(dir_ino=dir_ino, epoch=epoch)
        addresses = [self.registry.shard_address(s) for s in self.registry.all_shards()]
        results = await asyncio.gather(
            *(call(self.channels.shard(a).SetDirFence, req, self.timeout_s) for a in addresses),
            return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r if isinstance(r, FsError) else FsError(errno.EIO, f"fence failed: {r!r}")

    async def _everywhere(self, method: str, dir_ino: int) -> list[pb.SealReply]:
        """Call ``method`` on every shard in parallel; wait for all, then raise the first error."""
        req = pb.SealRequest(dir_ino=dir_ino)
        shards = self.registry.all_shards()
        addresses = [self.registry.shard_address(s) for s in shards]
        results = await asyncio.gather(
            *(call(getattr(self.channels.shard(a), method), req, self.timeout_s) for a in addresses),
            return_exceptions=True,
        )
        return _raise_first(results)


def _raise_first(results: Sequence[object]) -> list[pb.SealReply]:
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return list(results)  # type: ignore[arg-type]
