"""Chunks of the old layout: bytes as LMDB values (header versions 1 and 2).

Stores written before slot files keep each chunk's bytes in the
``chunk_data`` sub-database, checksummed whole. The new store reads them
there (verifying the whole chunk, as before), and moves a chunk into a slot
file the first time it is written or cut (the write's plan copies its
bytes, then one transaction puts the new header and deletes the value).
:func:`migrate_batch` moves the rest, a batch at a time: the data server
runs it in the background after start-up, so an upgraded server serves at
once and ends with LMDB holding headers only. A chunk that fails its
checksum is left where it is (reads report it; ``superfs repair`` replaces
it from another replica).
"""
from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING, Any

from superfs.dataserver import chunk_format as fmt
from superfs.errors import FsError

if TYPE_CHECKING:
    from superfs.dataserver.chunk_store import ChunkStore

log = logging.getLogger(__name__)


def verify(where: str, key: bytes, head: fmt.ChunkHead, body: Any) -> None:
    """Raise EIO (after an ERROR line naming the chunk) unless an old-layout body matches head."""
    ino, index = fmt.split_key(key)
    if body is None:
        log.error("chunk ino=%d index=%d in %s: header present, data missing", ino, index, where)
        raise FsError(errno.EIO, f"chunk {ino}:{index} has no data")
    if len(body) != head.length:
        log.error("chunk ino=%d index=%d in %s: %d bytes stored, header says %d",
                  ino, index, where, len(body), head.length)
        raise FsError(errno.EIO, f"chunk {ino}:{index} has the wrong length")
    actual = fmt.checksum(head.algorithm, body)
    if actual != head.checksum:
        log.error("checksum mismatch in chunk ino=%d index=%d in %s: stored %016x, computed %016x over %d bytes",
                  ino, index, where, head.checksum, actual, head.length)
        raise FsError(errno.EIO, f"chunk {ino}:{index} is corrupt (checksum mismatch)")


def migrate_batch(store: "ChunkStore", after: bytes, limit: int) -> tuple[int, bytes | None]:
    """Move up to ``limit`` old-layout chunks after key ``after`` into slot files.

    Returns (how many moved, the key to go on after; None once the end is reached).
    """
    keys: list[bytes] = []
    with store.store.env.begin(buffers=True) as txn:
        cur = txn.cursor(db=store.data_db)
        positioned = cur.set_range(after) if after else cur.first()
        if positioned and after and bytes(cur.key()) == after:
            positioned = cur.next()
        while positioned and len(keys) < limit:
            keys.append(bytes(cur.key()))
            positioned = cur.next()
    moved = 0
    for key in keys:
        ino, index = fmt.split_key(key)
        try:
            head = store.head_of(key)
            if head is None or not head.legacy:
                continue
            # a write of no bytes that ends the chunk where it ends: the plan copies its bytes
            store.begin_write(ino, index, head.length, 0, truncate=True).commit()
            moved += 1
        except FsError as e:
            log.error("chunk %d:%d cannot be moved into a slot file: %s", ino, index, e)
    return moved, (keys[-1] if len(keys) == limit else None)
