"""Administrative operations of the shard store: full scans and the fixes fsck asks for.

No file-system call enumerates a shard: listings go by directory, lookups by
name or inode. ``superfs fsck`` must see everything (to find entries whose
inode is gone, inodes no entry names, link counts that disagree), so these
functions page through the raw sub-databases by key, with the last key as
the cursor. They are plain functions over a :class:`ShardTxn`, like the
rest of the engine, and never touch the network.

``remove_entry`` is the one fix that has no file-system equivalent: unlink
needs a capability for the parent directory, which fsck cannot get for a
directory that no longer exists.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any, Iterable

from superfs.errors import FsError
from superfs.shard.records import (
    DENTRY_VALUE, DIRECTORY, Inode, Intent, OutboxItem, ReclaimItem, ino_of_inode_key,
    split_dentry_key,
)
from superfs.shard.store import ShardTxn

SCAN_DEFAULT = 1000
SCAN_MAX = 10000
PENDING_MAX = 10000


def _limit(limit: int) -> int:
    return SCAN_DEFAULT if limit <= 0 else min(limit, SCAN_MAX)


def _page(t: ShardTxn, db: str, after: bytes, limit: int) -> tuple[list[tuple[bytes, bytes]], bool]:
    """Up to ``limit`` (key, value) pairs of sub-database ``db`` with keys > ``after``."""
    out: list[tuple[bytes, bytes]] = []
    with t.txn.cursor(db=t.dbs[db]) as cur:
        positioned = cur.set_range(after) if after else cur.first()
        if positioned and after and cur.key() == after:
            positioned = cur.next()
        while positioned:
            if len(out) >= limit:
                return out, True
            out.append((bytes(cur.key()), bytes(cur.value())))
            positioned = cur.next()
    return out, False


def scan_entries(t: ShardTxn, after: bytes, limit: int) -> tuple[list[tuple[int, bytes, int, int]], bytes, bool]:
    """(parent, raw name, ino, type) of every entry, in key order; the next cursor; whether more follow."""
    rows, more = _page(t, "dentries", after, _limit(limit))
    out = []
    for key, value in rows:
        parent, raw = split_dentry_key(key)
        ino, ftype = DENTRY_VALUE.unpack(value)
        out.append((parent, raw, ino, ftype))
    return out, rows[-1][0] if rows else after, more


def scan_inodes(t: ShardTxn, after: bytes, limit: int) -> tuple[list[Inode], bytes, bool]:
    """Every inode record (without bytes), in key order; the next cursor; whether more follow."""
    rows, more = _page(t, "inodes", after, _limit(limit))
    nodes = [Inode.unpack(ino_of_inode_key(key), value) for key, value in rows]
    return nodes, rows[-1][0] if rows else after, more


@dataclass
class Pending:
    """The work a shard still owes: cross-shard intents, outbox, reclaim queue, pending seals."""

    intents: list[Intent]
    outbox: list[OutboxItem]
    reclaim: list[ReclaimItem]
    sealed: list[int]
    applied: int = 0      # idempotency records awaiting their senders' confirmation
    unconfirmed: int = 0  # confirmations this shard owes

    def any(self) -> bool:
        return bool(self.intents or self.outbox or self.reclaim)


def pending(t: ShardTxn, limit: int = PENDING_MAX) -> Pending:
    return Pending(t.intents()[:limit], t.outbox(limit), t.reclaim_items(limit),
                   [d for d, _ in t.pending_seals(limit)], t.count("applied"), t.count("confirm"))


def counters(t: ShardTxn, partitions: Iterable[int]) -> list[tuple[int, int, int, int]]:
    """(partition, last sequence handed out, end of the furthest delegated range, holders) of each."""
    delegated = t.delegations()
    out = []
    for p in sorted(partitions):
        ends = delegated.get(p, [])
        out.append((p, t.last_seq(p), max(ends, default=0), len(ends)))
    return out


def targeted_dirs(t: ShardTxn) -> set[int]:
    """Directories a cross-shard intent here may still put a name into.

    A rename's destination directory, and a link's (its intent is keyed by
    the new name, in that directory). A removed directory's seal is kept
    while any shard answers it here (shard/seals.py).
    """
    out: set[int] = set()
    for i in t.intents():
        out.add(i.dst_parent if i.kind == "rename" else i.parent)
    return out


def remove_entry(t: ShardTxn, parent: int, raw: bytes, ino: int, *, drop_link: bool, txid: str) -> bool:
    """Remove entry (parent, name) if it still names ``ino``; with ``drop_link`` the inode
    loses that link as in unlink. Returns whether anything was removed."""
    found = t.entry(parent, raw)
    if found is None or found[0] != ino:
        return False
    if found[1] == DIRECTORY:
        raise FsError(errno.EISDIR, "a directory's reservation: release it with ReleaseDirEntry")
    t.check_no_intent(parent, raw)
    t.delete_entry(parent, raw)
    if drop_link:
        t.drop_link(ino, txid)
    return True


def describe(p: Pending) -> dict[str, Any]:
    """Counts, for logs."""
    return {"intents": len(p.intents), "outbox": len(p.outbox), "reclaim": len(p.reclaim),
            "sealed": len(p.sealed)}
