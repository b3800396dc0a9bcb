"""The shard's durable work, as methods of its transaction: seals, the idempotency log, queues, intents.

Tables and what their keys and values hold: store.py's docstring. Each
group here is read by a background round or a retry: seals by shard/seals.py,
``applied`` and ``confirm`` by shard/confirms.py, the outbox by
shard/crossshard.py, the reclaim queue by shard/reclaimer.py, intents by the
cross-shard rename and link (shard/crossshard.py).
"""
from __future__ import annotations

import errno
import struct

import lmdb

from superfs.capability import CAP_TTL_NS
from superfs.errors import FsError
from superfs.shard.records import APPLIED_HEAD, U64, Inode, Intent, OutboxItem, ReclaimItem, dentry_key, u64
from superfs.shard.txn_base import TxnBase, now_ns

APPLIED_REMOTE_LINK = b"L"
APPLIED_NLINK = b"N"
APPLIED_EXCHANGE = b"X"
SEAL_FINAL = b"F"
SEAL_CHECK = b"P"    # seal_work: is the directory gone yet? (then the seal is final)
SEAL_COLLECT = b"C"  # seal_work: may the final seal go?
# A pending seal nobody asked about is checked this long after it was made.
SEAL_CHECK_AFTER_NS = 30 * 10**9
# A final seal is needed as long as a capability signed before the removal may
# be presented (CAP_TTL_NS), plus a margin for the clocks of dir server and shard.
SEAL_COLLECT_AFTER_NS = CAP_TTL_NS + 60 * 10**9
SHRINK_LEFTOVER_AFTER_NS = 60 * 10**9
DUE_KEY = struct.Struct(">Q")
ATTEMPTS = struct.Struct(">I")
SHARD_ID = struct.Struct(">I")


class DirSealed(FsError):
    """ENOENT: a new name was asked for in a sealed directory.

    ``final`` says the directory is known to be gone. A pending seal may still
    be lifted (the rmdir found another shard not empty), so the service waits
    for it to resolve instead of answering ENOENT for a directory that goes on
    existing (see shard/seals.py).
    """

    def __init__(self, dir_ino: int, final: bool) -> None:
        super().__init__(errno.ENOENT, "directory is being removed" if not final else "directory was removed")
        self.dir_ino = dir_ino
        self.final = final


class WorkRows(TxnBase):
    """The transaction's accessors of seals, applied txids, owed confirmations, the outbox,
    the reclaim queue and intents."""

    # --------------------------------------------------------------- seals

    def is_sealed(self, dir_ino: int) -> bool:
        return self.txn.get(u64(dir_ino), db=self.dbs["sealed"]) is not None

    def seal_state(self, dir_ino: int) -> tuple[bool, int] | None:
        """(final, sealed at ns) of a sealed directory; None if it is not sealed."""
        v = self.txn.get(u64(dir_ino), db=self.dbs["sealed"])
        if v is None:
            return None
        return v[8:9] == SEAL_FINAL, U64.unpack_from(v)[0]

    def check_not_sealed(self, dir_ino: int) -> None:
        """Raise :class:`DirSealed` if no new name may go into ``dir_ino`` now."""
        state = self.seal_state(dir_ino)
        if state is not None:
            raise DirSealed(dir_ino, final=state[0])

    def seal(self, dir_ino: int) -> None:
        if self.seal_state(dir_ino) is None:
            now = now_ns()
            self.txn.put(u64(dir_ino), u64(now), db=self.dbs["sealed"])
            self.put_seal_work(now + SEAL_CHECK_AFTER_NS, dir_ino, SEAL_CHECK)

    def finalize_seal(self, dir_ino: int) -> None:
        """The dir server said ``dir_ino`` is gone: its seal can never be lifted."""
        state = self.seal_state(dir_ino)
        if state is not None and not state[0]:
            now = now_ns()
            self.txn.put(u64(dir_ino), u64(state[1]) + SEAL_FINAL + u64(now), db=self.dbs["sealed"])
            self.put_seal_work(now + SEAL_COLLECT_AFTER_NS, dir_ino, SEAL_COLLECT)

    def collect_seal(self, dir_ino: int) -> bool:
        """Forget the final seal of ``dir_ino`` (nothing can name the directory any more)."""
        state = self.seal_state(dir_ino)
        if state is None or not state[0]:
            return False
        self.txn.delete(u64(dir_ino), db=self.dbs["sealed"])
        return True

    def put_seal_work(self, due_ns: int, dir_ino: int, kind: bytes) -> None:
        self.txn.put(DUE_KEY.pack(max(0, due_ns)) + u64(dir_ino), kind, db=self.dbs["seal_work"])

    def delete_seal_work(self, due_ns: int, dir_ino: int) -> None:
        self.txn.delete(DUE_KEY.pack(due_ns) + u64(dir_ino), db=self.dbs["seal_work"])

    def seal_work(self, due_by_ns: int | None, limit: int) -> list[tuple[int, int, bytes]]:
        """(due ns, dir ino, kind) of seal work due by ``due_by_ns`` (None: all), soonest first."""
        out: list[tuple[int, int, bytes]] = []
        with self.txn.cursor(db=self.dbs["seal_work"]) as cur:
            for k, v in cur:
                due = DUE_KEY.unpack_from(k)[0]
                if len(out) >= limit or (due_by_ns is not None and due > due_by_ns):
                    break
                out.append((due, U64.unpack_from(k, 8)[0], bytes(v)))
        return out

    def pending_seals(self, limit: int) -> list[tuple[int, int]]:
        """(dir ino, sealed at ns) of seals not known to be final, up to ``limit``.

        Found through the work index: its check entries, not every seal ever made.
        """
        out: list[tuple[int, int]] = []
        seen: set[int] = set()
        with self.txn.cursor(db=self.dbs["seal_work"]) as cur:
            for k, v in cur:
                if v != SEAL_CHECK:
                    continue
                d = U64.unpack_from(k, 8)[0]
                state = self.seal_state(d)
                if state is not None and not state[0] and d not in seen:
                    seen.add(d)
                    out.append((d, state[1]))
                    if len(out) >= limit:
                        break
        return out

    def unseal(self, dir_ino: int) -> None:
        self.txn.delete(u64(dir_ino), db=self.dbs["sealed"])  # its work entries are dropped when due

    # ------------------------------------------------------ idempotency log

    def applied(self, kind: bytes, txid: str) -> bytes | None:
        v = self.txn.get(kind + txid.encode(), db=self.dbs["applied"])
        return None if v is None else v[APPLIED_HEAD.size:]

    def record_applied(self, kind: bytes, txid: str, reply: bytes) -> None:
        self.txn.put(kind + txid.encode(), APPLIED_HEAD.pack(now_ns()) + reply, db=self.dbs["applied"])

    def forget_applied(self, kind: bytes, txids: list[str]) -> int:
        """The sender of ``txids`` will never send them again: drop their records."""
        n = 0
        for txid in txids:
            if self.txn.delete(kind + txid.encode(), db=self.dbs["applied"]):
                n += 1
        return n

    def add_confirm(self, kind: bytes, txid: str, shard_id: int) -> None:
        """Owe shard ``shard_id`` the confirmation that ``txid`` is never sent again."""
        self.txn.put(kind + txid.encode(), SHARD_ID.pack(shard_id), db=self.dbs["confirm"])

    def confirms(self, limit: int) -> list[tuple[bytes, str, int]]:
        """(kind, txid, receiving shard) of confirmations owed, up to ``limit``."""
        with self.txn.cursor(db=self.dbs["confirm"]) as cur:
            return [(bytes(k[:1]), bytes(k[1:]).decode(), SHARD_ID.unpack(v)[0]) for k, v in _take(cur, limit)]

    def delete_confirm(self, kind: bytes, txid: str) -> None:
        self.txn.delete(kind + txid.encode(), db=self.dbs["confirm"])

    # ---------------------------------------------------------- work queues

    def add_outbox(self, item: OutboxItem) -> None:
        self.txn.put(item.txid.encode(), item.pack(), db=self.dbs["outbox"])

    def outbox(self, limit: int) -> list[OutboxItem]:
        with self.txn.cursor(db=self.dbs["outbox"]) as cur:
            return [OutboxItem.unpack(k, v) for k, v in _take(cur, limit)]

    def outbox_has(self, txid: str) -> bool:
        return self.txn.get(txid.encode(), db=self.dbs["outbox"]) is not None

    def delete_outbox(self, txid: str) -> None:
        self.txn.delete(txid.encode(), db=self.dbs["outbox"])

    def add_reclaim(self, node: Inode, from_size: int, *, freed: bool) -> ReclaimItem:
        self.guard_ino(node.ino)
        item = ReclaimItem(node.ino, from_size, node.chunk_size, node.generation, freed, node.layout)
        self.txn.put(item.key(), item.pack(), db=self.dbs["reclaim"])
        # a shrink is cut by its own request (reclaimer.py); the background only
        # clears what a crash left, well after that request is over
        self.schedule_reclaim(item.key(), 0 if freed else now_ns() + SHRINK_LEFTOVER_AFTER_NS, 0)
        return item

    def reclaim_items(self, limit: int) -> list[ReclaimItem]:
        with self.txn.cursor(db=self.dbs["reclaim"]) as cur:
            return [ReclaimItem.unpack(k, v) for k, v in _take(cur, limit)]

    def _guard_reclaim_key(self, key: bytes) -> None:
        """The background's reclaim rows are rows of the item's inode's partition (moves copy them)."""
        if self.frozen:
            self.guard_ino(U64.unpack_from(key)[0])

    def schedule_reclaim(self, key: bytes, due_ns: int, attempts: int) -> None:
        self._guard_reclaim_key(key)
        self.txn.put(DUE_KEY.pack(max(0, due_ns)) + key, ATTEMPTS.pack(attempts), db=self.dbs["reclaim_due"])

    def due_reclaim(self, due_by_ns: int, limit: int) -> list[tuple[int, int, ReclaimItem | None, bytes]]:
        """(due ns, attempts, item or None if gone, item key) of queued work due by ``due_by_ns``."""
        out: list[tuple[int, int, ReclaimItem | None, bytes]] = []
        rdb = self.dbs["reclaim"]
        with self.txn.cursor(db=self.dbs["reclaim_due"]) as cur:
            for k, v in cur:
                due = DUE_KEY.unpack_from(k)[0]
                if len(out) >= limit or due > due_by_ns:
                    break
                key = bytes(k[DUE_KEY.size:])
                raw = self.txn.get(key, db=rdb)
                out.append((due, ATTEMPTS.unpack(v)[0], None if raw is None else ReclaimItem.unpack(key, raw), key))
        return out

    def unschedule_reclaim(self, due_ns: int, key: bytes) -> None:
        self._guard_reclaim_key(key)
        self.txn.delete(DUE_KEY.pack(due_ns) + key, db=self.dbs["reclaim_due"])

    def update_reclaim(self, old: ReclaimItem, new: ReclaimItem) -> bool:
        """Replace ``old`` by ``new`` (fewer servers left to do), unless another item took the key."""
        key = old.key()
        self._guard_reclaim_key(key)
        if self.txn.get(key, db=self.dbs["reclaim"]) != old.pack():
            return False
        self.txn.put(key, new.pack(), db=self.dbs["reclaim"])
        return True

    def delete_reclaim(self, item: ReclaimItem) -> None:
        """Remove ``item`` from the queue, unless another item took its key meanwhile.

        A shrink to 0 and then the unlink of the same file queue two items
        under one key (ino, 0); whoever finishes the first must not remove
        the second, or the freed file's chunks would never be reclaimed.
        """
        key = item.key()
        self._guard_reclaim_key(key)
        if self.txn.get(key, db=self.dbs["reclaim"]) == item.pack():
            self.txn.delete(key, db=self.dbs["reclaim"])

    def index_background_work(self) -> tuple[int, int]:
        """Build the due-time indexes for a store written before they existed; (items, seals) indexed.

        Runs once, at start-up, when an index is empty but its records are not.
        """
        items = seals = 0
        if self.count("reclaim") and not self.count("reclaim_due"):
            with self.txn.cursor(db=self.dbs["reclaim"]) as cur:
                for k, _ in cur:
                    self.schedule_reclaim(bytes(k), 0, 0)
                    items += 1
        if self.count("sealed") and not self.count("seal_work"):
            now = now_ns()
            with self.txn.cursor(db=self.dbs["sealed"]) as cur:
                for k, v in cur:
                    final = v[8:9] == SEAL_FINAL
                    self.put_seal_work(now + (SEAL_COLLECT_AFTER_NS if final else 0), U64.unpack(k)[0],
                                       SEAL_COLLECT if final else SEAL_CHECK)
                    seals += 1
        return items, seals

    def intent(self, key: bytes) -> Intent | None:
        v = self.txn.get(key, db=self.dbs["intents"])
        return None if v is None else Intent.unpack(key, v)

    def put_intent(self, intent: Intent) -> None:
        self.guard_key(intent.key())
        self.txn.put(intent.key(), intent.pack(), db=self.dbs["intents"])

    def delete_intent(self, key: bytes) -> None:
        self.guard_key(key)
        self.txn.delete(key, db=self.dbs["intents"])

    def intents(self) -> list[Intent]:
        with self.txn.cursor(db=self.dbs["intents"]) as cur:
            return [Intent.unpack(k, v) for k, v in cur]

    def has_intents(self, parent: int) -> bool:
        """Is a cross-shard operation in flight on an entry of ``parent``?"""
        prefix = u64(parent)
        with self.txn.cursor(db=self.dbs["intents"]) as cur:
            return cur.set_range(prefix) and cur.key()[:8] == prefix

    def check_no_intent(self, parent: int, raw: bytes) -> None:
        """Refuse to touch an entry that a cross-shard operation has locked."""
        if self.txn.get(dentry_key(parent, raw), db=self.dbs["intents"]) is not None:
            raise FsError(errno.EAGAIN, "a cross-shard rename or link of this entry is in flight")


def _take(cur: lmdb.Cursor[bytes], limit: int) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    for kv in cur:
        if len(out) >= limit:
            break
        out.append(kv)
    return out
