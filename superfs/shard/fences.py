"""Directory fences: capabilities signed before a lease was taken away are refused here.

The dir server signs every directory capability with the directory's lease
epoch. When it takes a lease from a holder that stopped answering (or
grants one that must not coexist with capabilities signed earlier), it
raises the epoch and tells every shard (SetDirFence) before going on; a
shard then refuses a capability of that directory with a lower epoch
(ESTALE: the client fetches a new one, and meets the lease). So a holder
that was stopped or cut off cannot apply its late batches.

Fences are kept in the store (a restarted shard must not forget one) and
mirrored in memory: the check is on every create, unlink, lookup and
listing.
"""
from __future__ import annotations

import errno

from superfs.errors import FENCED, FsError
from superfs.shard.store import FileMetaStore


class Fences:
    def __init__(self, store: FileMetaStore) -> None:
        self.store = store
        with store.read() as t:
            self._epochs = t.fences()

    def check(self, dir_ino: int, epoch: int) -> None:
        fence = self._epochs.get(dir_ino)
        if fence is not None and epoch < fence:
            raise FsError(errno.ESTALE, f"{FENCED}capability of directory {dir_ino} predates its lease epoch {fence}")

    async def raise_to(self, dir_ino: int, epoch: int) -> int:
        now = await self.store.write(lambda t: t.set_fence(dir_ino, epoch))
        self._epochs[dir_ino] = now
        return now
