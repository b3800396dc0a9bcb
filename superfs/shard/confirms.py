"""Telling receivers which idempotency records they may forget, once it is safe.

RemoteLink and AdjustNlink apply once per txid because the receiver keeps
an ``applied`` record of each. The record may go only when its txid can
never arrive again, and only the sender knows that: it stops sending a txid
in the transaction that ends its own use of it (the intent or outbox item
goes), and notes in the same transaction that it owes the receiver a
confirmation (store ``confirm``). This module sends those confirmations,
batched per receiver (``ForgetApplied``, daemon-only), and drops each note
once its receiver has forgotten the records.

One more thing could still carry a txid after that: a copy of the request
sent earlier, timed out at the sender, and still on its way or queued on the
receiver. The receiver refuses a RemoteLink or AdjustNlink whose deadline
passed before its transaction ran, and a note is confirmed only
``CONFIRM_AFTER_S`` (the peer-call timeout plus a margin) after it was
written, by this process's monotonic clock (notes found at start-up count
from the start). No wall clock decides anything, and a shard that is down
for a day forgets nothing meanwhile.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Callable

from superfs.errors import FsError
from superfs.shard.cluster import ShardCluster
from superfs.shard.store import FileMetaStore, ShardTxn
from superfs.shard.txn_work import APPLIED_NLINK, APPLIED_REMOTE_LINK
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

CONFIRM_MARGIN_S = 5.0
BATCH = 500          # txids per ForgetApplied
ROUND_LIMIT = 5000   # notes looked at per round
FORGET_TXN = 256     # records deleted per transaction on the receiver


class AppliedConfirmer:
    """The sending side: owed confirmations, sent once safe."""

    def __init__(self, store: FileMetaStore, cluster: ShardCluster) -> None:
        self.store = store
        self.cluster = cluster
        self._started = time.monotonic()
        self._written: dict[tuple[bytes, str], float] = {}  # notes made by this process -> when

    @property
    def delay_s(self) -> float:
        return self.cluster.timeout_s + CONFIRM_MARGIN_S

    def noted(self, kind: bytes, txid: str) -> None:
        """A transaction just wrote the confirmation note of ``txid``."""
        self._written[(kind, txid)] = time.monotonic()

    async def run_once(self) -> int:
        """Confirm what is safe to confirm; return how many records the receivers forgot."""
        if not self.cluster.ready:
            return 0
        notes = await asyncio.to_thread(self._notes)
        ready_before = time.monotonic() - self.delay_s
        by_shard: dict[int, list[tuple[bytes, str]]] = defaultdict(list)
        for kind, txid, shard in notes:
            if self._written.get((kind, txid), self._started) <= ready_before:
                by_shard[shard].append((kind, txid))
        done = 0
        for shard, items in by_shard.items():
            for i in range(0, len(items), BATCH):
                batch = items[i:i + BATCH]
                try:
                    await self._forget(shard, batch)
                except FsError as e:
                    log.debug("shard %d cannot take confirmations now: %s", shard, e)
                    break
                await self.store.write(_drop_notes(batch))
                for key in batch:
                    self._written.pop(key, None)
                done += len(batch)
        return done

    def _notes(self) -> list[tuple[bytes, str, int]]:
        with self.store.read() as t:
            return t.confirms(ROUND_LIMIT)

    async def _forget(self, shard: int, batch: list[tuple[bytes, str]]) -> None:
        links = [x for k, x in batch if k == APPLIED_REMOTE_LINK]
        nlinks = [x for k, x in batch if k == APPLIED_NLINK]
        if shard == self.cluster.shard_id:
            await forget_applied(self.store, links, nlinks)
        else:
            await self.cluster.shard(shard).forget_applied(pb.ForgetAppliedRequest(remote_links=links, nlinks=nlinks))


async def forget_applied(store: FileMetaStore, remote_links: list[str], nlinks: list[str]) -> int:
    """The receiving side: drop these records, a few hundred per transaction (writers never wait long)."""
    n = 0
    for kind, txids in ((APPLIED_REMOTE_LINK, remote_links), (APPLIED_NLINK, nlinks)):
        for i in range(0, len(txids), FORGET_TXN):
            part = txids[i:i + FORGET_TXN]
            n += await store.write(_forget(kind, part))
    return n


def _forget(kind: bytes, txids: list[str]) -> Callable[[ShardTxn], int]:
    return lambda t: t.forget_applied(kind, txids)


def _drop_notes(batch: list[tuple[bytes, str]]) -> Callable[[ShardTxn], None]:
    def fn(t: ShardTxn) -> None:
        for kind, txid in batch:
            t.delete_confirm(kind, txid)
    return fn
