"""The shard calls the dir server makes as coordinator, behind one small interface.

:class:`ShardOps` is what the coordinator needs from the shards: reserve and
release directory entries, seal and unseal a directory everywhere, ask
whether a name is a file (and which), and re-point a name (RENAME_EXCHANGE).
:class:`ShardClient` implements it with the shards' typed RPCs
(:mod:`superfs.rpc`); tests may substitute an in-memory fake with the
same methods. Every call is idempotent by ino on the shard side, which is
what lets recovery simply repeat a step.
"""
from __future__ import annotations

import asyncio
import errno
import logging
from typing import Any, Awaitable, Callable, Protocol, Sequence

from superfs import capability, perms
from superfs.errors import FsError
from superfs.rpc.cluster_map import ClusterView
from superfs.rpc.stubs import ShardRpc
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

    async def fence_all(self, dir_ino: int, epoch: int) -> None:
        """Every shard refuses capabilities of ``dir_ino`` older than ``epoch`` (a lease was taken away)."""


class ShardClient:
    """:class:`ShardOps` over the shards' RPCs, routed by the dir server's own cluster map
    (a :class:`ClusterView` whose source is the registry) and retried by its one rule."""

    def __init__(self, view: ClusterView, secret: bytes) -> None:
        self.view = view
        self.secret = secret  # signs the search capability file_type's lookup needs

    async def reserve(self, parent: int, name: str, ino: int) -> None:
        req = pb.DirEntryRequest(parent_ino=parent, name=name, ino=ino)
        await self.view.entry_shard(parent, name).reserve_dir_entry(req)

    async def release(self, parent: int, name: str, ino: int) -> None:
        req = pb.DirEntryRequest(parent_ino=parent, name=name, ino=ino)
        await self.view.entry_shard(parent, name).release_dir_entry(req)

    async def seal_all(self, dir_ino: int) -> list[bool]:
        req = pb.SealRequest(dir_ino=dir_ino)
        replies = await self._everywhere(lambda s: s.seal_dir(req))
        return [r.empty for r in replies]

    async def unseal_all(self, dir_ino: int) -> None:
        req = pb.SealRequest(dir_ino=dir_ino)
        await self._everywhere(lambda s: s.unseal_dir(req))

    async def file_type(self, parent: int, name: str, creds: pb.Creds) -> int | None:
        reply = await self._lookup(parent, name, creds)
        return None if reply is None else int(reply.entry.type)

    async def _lookup(self, parent: int, name: str, creds: pb.Creds) -> pb.LookupFileReply | None:
        # the coordinator checked that creds may search parent (and reach it) before asking
        cap = capability.sign(self.secret, dir_ino=parent, uid=creds.uid, rights=perms.X_OK, sticky=False,
                              owner_uid=0, epoch=capability.DAEMON_EPOCH)
        req = pb.LookupFileRequest(parent_ino=parent, name=name, creds=creds, cap=cap)
        try:
            return await self.view.entry_shard(parent, name).lookup_file(req)
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
        info = await self.view.home_shard(ino).get_file(pb.GetFileRequest(ino=ino, creds=creds))
        return ino, ftype, int(info.attr.uid)

    async def repoint(self, parent: int, name: str, ino: int, ftype: int, new_ino: int, new_type: int) -> None:
        req = pb.RepointEntryRequest(parent_ino=parent, name=name, ino=ino, type=ftype,  # type: ignore[arg-type]
                                     new_ino=new_ino, new_type=new_type)  # type: ignore[arg-type]
        await self.view.entry_shard(parent, name).repoint_entry(req)

    async def fence_all(self, dir_ino: int, epoch: int) -> None:
        """Every shard refuses capabilities of ``dir_ino`` older than ``epoch`` (a lease was taken away)."""
        req = pb.DirFenceRequest(dir_ino=dir_ino, epoch=epoch)
        await self._everywhere(lambda s: s.set_dir_fence(req))

    async def _everywhere(self, step: Callable[[ShardRpc], Awaitable[Any]]) -> list[Any]:
        """``step`` on every shard owning a partition, in parallel; wait for all, then raise the first error.

        Nothing is sent unless every one of them has registered: a step done on some shards only
        would need undoing on the others.
        """
        # a move's target too: it will own the partition's names, so it must hold the same seals and fences
        shards = sorted(set(self.view.partition_shards()) | {m.target for m in self.view.map.moves})
        for s in shards:
            if self.view.address_of("shard", s) is None:
                raise FsError(errno.EIO, f"shard {s} has not registered")
        results = await asyncio.gather(*(step(self.view.shard(s)) for s in shards), return_exceptions=True)
        return _raise_first(results)


def _raise_first(results: Sequence[object]) -> list[pb.SealReply]:
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return list(results)  # type: ignore[arg-type]
