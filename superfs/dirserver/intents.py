"""The coordinator's intent log: directory operations that span the dir server and shards.

An intent is written (durably) before the first shard is touched and dropped
in the transaction that finishes the operation, so after a crash every
operation that may have half-happened on some shard is listed here and the
coordinator can finish or undo it (see :mod:`superfs.dirserver.recovery`).

Intents are small JSON documents: they stay on this host, are read only by
this module, and are easy to inspect with ``mdb_dump`` when debugging.

Every operation asks which pending intents it must settle first, so the log
is also kept in memory, indexed by the directories each intent names (a
batch of mkdirs has hundreds in flight at once: decoding all of them for
every check took half of the dir server's CPU). The copy is changed inside
the transactions that change the log, so it may show an intent a moment
before it commits (harmless: settling one takes its operation's locks, then
reads the log itself); after a transaction that failed it is read again
from the log.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import struct
import threading
from dataclasses import dataclass
from typing import Literal

import lmdb

from superfs.dirserver.locks import LockKey, dir_key
from superfs.dirserver.store import DirStore
from superfs.routing import is_dir_ino

log = logging.getLogger(__name__)

Op = Literal["mkdir", "rmdir", "renamedir", "exchange"]
NEXT_INTENT_KEY = b"next_intent"
_U64 = struct.Struct(">Q")


@dataclass
class Intent:
    """One multi-server directory operation in flight.

    ``parent``/``name`` is the entry created (mkdir), removed (rmdir) or the
    source of a rename; ``ino`` the directory concerned. ``aborting`` is set
    once the coordinator decided to undo the operation, so that recovery
    undoes it too instead of completing something the caller was told failed.

    An exchange (RENAME_EXCHANGE) swaps (parent, name), which holds ``ino``
    of type ``ftype``, with (dst_parent, dst_name), which holds
    ``replaced_ino`` of type ``replaced_type``; at least one is a directory.
    """

    op: Op
    ino: int
    parent: int
    name: str
    dst_parent: int = 0
    dst_name: str = ""
    replaced_ino: int = 0
    aborting: bool = False
    ftype: int = 0
    replaced_type: int = 0
    id: int = 0

    def inos(self) -> set[int]:
        """Directories this operation changes or depends on."""
        return {i for i in (self.ino, self.parent, self.dst_parent, self.replaced_ino) if i}

    def lock_keys(self) -> tuple[list[LockKey], list[LockKey]]:
        """(exclusive, shared) locks to hold while settling it, as its operation did."""
        exclusive = [(self.parent, self.name)] + ([dir_key(self.ino)] if is_dir_ino(self.ino) else [])
        shared = [dir_key(self.parent)]
        if self.op in ("renamedir", "exchange"):
            exclusive.append((self.dst_parent, self.dst_name))
            if is_dir_ino(self.replaced_ino):
                exclusive.append(dir_key(self.replaced_ino))
            shared.append(dir_key(self.dst_parent))
        return exclusive, shared

    def removes(self) -> set[int]:
        """Directories this operation may delete."""
        if self.op == "rmdir":
            return {self.ino}
        if self.op == "renamedir" and self.replaced_ino:
            return {self.replaced_ino}
        return set()

    def conflicts(self, parents: set[int], subjects: set[int]) -> bool:
        """Must this intent be settled before an operation that adds or removes
        entries of ``parents`` and removes or moves the directories ``subjects``?"""
        if self.op in ("renamedir", "exchange"):
            return bool(self.inos() & (parents | subjects))
        if self.op == "rmdir":
            return self.ino in parents | subjects or self.parent in subjects
        return self.parent in subjects  # mkdir: only the removal of its parent waits

    def encode(self) -> bytes:
        # fields by hand: dataclasses.asdict deep-copies, a measurable part of a mkdir's CPU
        fields = {f: getattr(self, f) for f in _FIELDS}
        return json.dumps(fields, sort_keys=True).encode()

    @classmethod
    def decode(cls, intent_id: int, raw: bytes) -> "Intent":
        return cls(id=intent_id, **json.loads(raw))


_FIELDS = tuple(f.name for f in dataclasses.fields(Intent) if f.name != "id")


class IntentLog:
    """Intents persisted in the dir store's ``intents`` sub-database, and their copy in memory."""

    def __init__(self, store: DirStore) -> None:
        self.store = store
        self._db = store.db.db("intents")
        self._lock = threading.Lock()   # the copy is changed on the store's writer thread
        self._by_id: dict[int, Intent] = {}
        self._by_ino: dict[int, set[int]] = {}
        self.reload()
        store.db.after_failed_batch.append(self.reload)

    def reload(self) -> None:
        """Read the copy in memory again from the log."""
        with self.store.db.read() as txn:
            intents = [Intent.decode(_U64.unpack(k)[0], v) for k, v in txn.cursor(db=self._db)]
        with self._lock:
            self._by_id, self._by_ino = {}, {}
            for i in intents:
                self._keep(i)

    def _keep(self, intent: Intent) -> None:
        self._by_id[intent.id] = intent
        for ino in intent.inos():
            self._by_ino.setdefault(ino, set()).add(intent.id)

    def _forget(self, intent_id: int) -> None:
        old = self._by_id.pop(intent_id, None)
        if old is None:
            return
        for ino in old.inos():
            ids = self._by_ino.get(ino)
            if ids is not None:
                ids.discard(intent_id)
                if not ids:
                    del self._by_ino[ino]

    def add_txn(self, txn: lmdb.Transaction[bytes], intent: Intent) -> int:
        raw = self.store.get_meta_txn(txn, NEXT_INTENT_KEY)
        intent.id = _U64.unpack(raw)[0] if raw else 1
        self.store.put_meta_txn(txn, NEXT_INTENT_KEY, _U64.pack(intent.id + 1))
        txn.put(_U64.pack(intent.id), intent.encode(), db=self._db)
        with self._lock:
            self._keep(dataclasses.replace(intent))
        return intent.id

    def update_txn(self, txn: lmdb.Transaction[bytes], intent: Intent) -> None:
        txn.put(_U64.pack(intent.id), intent.encode(), db=self._db)
        with self._lock:
            self._forget(intent.id)
            self._keep(dataclasses.replace(intent))

    def drop_txn(self, txn: lmdb.Transaction[bytes], intent_id: int) -> None:
        txn.delete(_U64.pack(intent_id), db=self._db)
        with self._lock:
            self._forget(intent_id)

    def get(self, intent_id: int) -> Intent | None:
        """The intent as the log has it now (None: finished)."""
        with self.store.db.read() as txn:
            raw = txn.get(_U64.pack(intent_id), db=self._db)
        return None if raw is None else Intent.decode(intent_id, raw)

    def all(self) -> list[Intent]:
        with self._lock:
            return sorted(self._by_id.values(), key=lambda i: i.id)

    def _naming(self, inos: set[int]) -> list[Intent]:
        with self._lock:
            ids = set().union(*(self._by_ino.get(i, ()) for i in inos)) if inos else set()
            return [self._by_id[i] for i in sorted(ids)]

    def conflicting(self, parents: set[int], subjects: set[int]) -> list[Intent]:
        """Pending intents to settle first (see :meth:`Intent.conflicts`)."""
        return [i for i in self._naming(parents | subjects) if i.conflicts(parents, subjects)]

    def removing_list(self, ino: int) -> list[Intent]:
        """Pending removals (rmdir, or rename over it) of directory ``ino``."""
        return [i for i in self._naming({ino}) if ino in i.removes()]

    def removing(self, ino: int) -> bool:
        return bool(self.removing_list(ino))
