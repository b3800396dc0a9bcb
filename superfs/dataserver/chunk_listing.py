"""Walking the chunk index: paged listings (fsck's scans, verified or not) and batched deletes.

Both run over ``ChunkStore``'s LMDB index in key order (``ino`` then
``index``); a listing hashes the chunks it lists when asked to verify them,
a deletion releases the slots of what it deleted once its transaction
committed. Functions over the store, split out of chunk_store.py.
"""
from __future__ import annotations

import errno
import logging
import time
from typing import TYPE_CHECKING

import lmdb

from superfs.dataserver import chunk_format as fmt
from superfs.dataserver.slots import Slot
from superfs.errors import FsError

if TYPE_CHECKING:
    from superfs.dataserver.chunk_store import ChunkInfo, ChunkStore, Spare

log = logging.getLogger(__name__)


def list_page(
    store: "ChunkStore", after_ino: int = 0, after_index: int = 0, limit: int = 0, verify: bool = False
) -> tuple[list["ChunkInfo"], bool]:
    """One page of chunks in key order; returns (entries, more).

    Cursor: entries strictly after the key (after_ino, after_index), unless
    both are 0, then from the start (ino 0 never holds chunks). To page,
    pass the last entry's (ino, index) back. ``limit`` 0 means 1000 and is
    capped at 10000. With ``verify`` every listed chunk is re-hashed and
    flagged ``corrupt`` on mismatch; such a page also ends (with
    more=True) once about 1 GiB has been hashed.
    """
    from superfs.dataserver.chunk_store import LIST_DEFAULT, LIST_MAX, MAX_U64, VERIFY_BUDGET_BYTES, ChunkInfo

    if not (0 <= after_ino <= MAX_U64 and 0 <= after_index <= MAX_U64):
        raise FsError(errno.EINVAL, "bad listing cursor")
    limit = LIST_DEFAULT if limit <= 0 else min(limit, LIST_MAX)
    out: list[ChunkInfo] = []
    heads: list[tuple[bytes, fmt.ChunkHead | None]] = []
    more = False
    with store.slots.pinned():
        with store.store.env.begin(buffers=True) as txn:
            cur = txn.cursor(db=store.head_db)
            if after_ino == 0 and after_index == 0:
                positioned = cur.first()
            else:
                start = fmt.chunk_key(after_ino, after_index)
                positioned = cur.set_range(start)
                if positioned and bytes(cur.key()) == start:
                    positioned = cur.next()
            hashed = 0
            while positioned:
                if len(heads) >= limit or (verify and hashed >= VERIFY_BUDGET_BYTES):
                    more = True
                    break
                key = bytes(cur.key())
                try:
                    head: fmt.ChunkHead | None = store._decode_head(key, cur.value())
                except FsError:
                    head = None
                heads.append((key, head))
                if verify and head is not None:
                    hashed += head.length
                positioned = cur.next()
        for key, head in heads:
            ino, index = fmt.split_key(key)
            if head is None:
                out.append(ChunkInfo(ino, index, 0, corrupt=True))
                continue
            corrupt = verify and not _is_intact(store, key, head)
            out.append(ChunkInfo(ino, index, head.length, corrupt, head.checksum, head.algorithm,
                                 head.written_ns, head.write_seq))
    return out, more


def _is_intact(store: "ChunkStore", key: bytes, head: fmt.ChunkHead) -> bool:
    try:
        if head.legacy:
            with store.store.env.begin(buffers=True) as txn:
                store._verify_legacy(key, head, txn.get(key, db=store.data_db))
        else:
            for pos in range(0, head.length, 4 << 20):
                store._read_blocks(key, head, pos, min(head.length, pos + (4 << 20)))
    except FsError:
        return False
    return True


def delete_batch(store: "ChunkStore", txn: lmdb.Transaction[bytes], ino: int, start: bytes, stop: bytes | None,
                 spare: "Spare", freed: list[Slot]) -> tuple[int, bool, bytes]:
    """(writer thread) one bounded batch: (deleted, more to do, where the next batch starts)."""
    from superfs.dataserver import chunk_store

    del freed[:]  # a batch retried after a failed commit starts over
    prefix = fmt.ino_prefix(ino)
    cur = txn.cursor(db=store.head_db)
    deleted = dropped = seen = spared = 0
    now = time.time_ns()
    positioned = cur.set_range(start)
    while positioned:
        key = cur.key()
        if key[: fmt.INO_PREFIX_SIZE] != prefix or (stop is not None and bytes(key) >= stop):
            break
        if seen >= chunk_store.DELETE_BATCH:  # (looked up at run time: tests lower it)
            store.count(txn, -deleted, -dropped)
            return deleted, True, bytes(key)
        seen += 1
        try:
            head = fmt.decode_head(cur.value())
        except FsError:
            # A damaged header: the data record's size (if any) keeps the totals right.
            body = txn.get(key, db=store.data_db)
            dropped += len(body) if body is not None else 0
        else:
            if spare.protects(head, now):
                spared += 1
                positioned = cur.next()
                continue
            dropped += head.length
            if head.slot is not None:
                freed.append(head.slot)
        txn.delete(key, db=store.data_db)
        deleted += 1
        positioned = cur.delete()  # moves to the next record
        if positioned and not cur.key():
            break  # deleted the last record of the sub-database
    store.count(txn, -deleted, -dropped)
    if spared:
        log.info("left %d chunk(s) of ino %d alone: written since the caller's scan, or recently", spared, ino)
    return deleted, False, start

