"""What fsck can find: one table of kinds, and the Finding record.

Each kind has a severity:

- ``error``: an inconsistency, a broken invariant (a name pointing at nothing,
  a link count that disagrees, a chunk with fewer healthy replicas than R...).
  Any error makes fsck exit 1.
- ``garbage``: bytes no file can see, left by writes that failed half-way
  (chunk data past the end of a file, chunks of a file that is still inline,
  a chunk on a server that is not one of its replicas). Reported, freed by
  ``--repair``, but not an inconsistency: fsck still exits 0.

Each kind also says what ``--repair`` does about it, or that it cannot.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Iterator

from superfs.fsck.spill import Spill

ERROR = "error"
GARBAGE = "garbage"


@dataclass(frozen=True)
class Kind:
    name: str
    severity: str
    what: str      # one line for the report's legend
    repair: str    # what --repair does ("" = it cannot)


KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("unreachable", ERROR, "a daemon could not be scanned: the check is incomplete", ""),
    Kind("pending", ERROR, "an operation spanning servers is still unfinished (a daemon it needs is down?)",
         "asks the daemons to finish it now"),
    Kind("dir-orphan", ERROR, "a directory whose parent does not exist, or that root does not reach", ""),
    Kind("dir-nlink", ERROR, "a directory's link count is not 2 + its subdirectories", "recounts it"),
    Kind("dir-unreserved", ERROR, "a directory whose name is not reserved on its shard",
         "reserves the name (impossible if a file has it)"),
    Kind("stale-reservation", ERROR, "a directory-name reservation without that directory",
         "releases the reservation"),
    Kind("sealed-live-dir", ERROR, "a live directory is sealed on a shard: creates in it fail",
         "unseals it"),
    Kind("entry-misplaced", ERROR, "an entry stored on a shard that does not own its partition", ""),
    Kind("entry-no-parent", ERROR, "a file whose parent directory does not exist",
         "moves it to /lost+found"),
    Kind("entry-dangling", ERROR, "a name pointing at an inode that does not exist", "removes the name"),
    Kind("inode-misplaced", ERROR, "an inode record on a shard that is not its home", ""),
    Kind("move-stuck", ERROR, "a partition move recorded in the cluster map did not advance while fsck ran "
         "(its rows on both shards are expected, and not reported, while a move goes on)", ""),
    Kind("inode-orphan", ERROR, "an inode with links but no name", "gives it a name in /lost+found"),
    Kind("inode-nlink", ERROR, "an inode's link count differs from the names pointing at it",
         "sets it to the number of names"),
    Kind("counter-behind", ERROR, "a partition's inode counter is behind an inode or a range delegated to a "
         "lease holder: a later create could reuse the number", ""),
    Kind("chunk-no-file", ERROR, "chunks of an inode that does not exist (and are not queued for reclaim)",
         "deletes them"),
    Kind("replica-missing", ERROR, "a chunk of a file lacks one of its R replicas",
         "copies it from a healthy replica"),
    Kind("replica-corrupt", ERROR, "a replica fails its checksum", "rewrites it from a healthy replica"),
    Kind("replica-differs", ERROR, "the replicas of a chunk hold different bytes within the file",
         "copies the replica readers see first over the others"),
    Kind("server-degraded", ERROR, "a data server lost its chunks and has not been rebuilt",
         "re-creates its replicas, then clears the flag"),
    Kind("chunk-past-eof", GARBAGE, "chunk bytes past the end of a file (a write that failed before "
         "its size was committed); invisible now, but a later sparse extension would show them",
         "cuts them off"),
    Kind("chunk-inline-file", GARBAGE, "chunks of a file whose bytes are inline (a failed move to chunks)",
         "deletes them"),
    Kind("chunk-misplaced", GARBAGE, "a chunk on a data server that is not one of its replicas", "deletes it"),
]}


@dataclass
class Finding:
    """One thing fsck found. ``key`` identifies it across two scans (for confirmation);
    ``fix`` holds what a repair needs."""

    kind: str
    key: tuple[Any, ...]
    message: str
    fix: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return KINDS[self.kind].severity

    @property
    def repairable(self) -> bool:
        return bool(KINDS[self.kind].repair) and not self.fix.get("cannot")

    def __str__(self) -> str:
        return f"[{self.severity}] {self.kind}: {self.message}"


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == ERROR]


# the order kinds are repaired in (repair.py); findings are stored in this order
ORDER = ["pending", "stale-reservation", "dir-unreserved", "dir-nlink", "sealed-live-dir",
         "entry-no-parent", "entry-dangling", "inode-orphan", "inode-nlink",
         "replica-missing", "replica-corrupt", "replica-differs", "server-degraded",
         "chunk-no-file", "chunk-past-eof", "chunk-inline-file", "chunk-misplaced",
         "unreachable", "entry-misplaced", "inode-misplaced", "dir-orphan", "counter-behind", "move-stuck"]
_RANK = {k: i for i, k in enumerate(ORDER)}
_RANK_KEY = struct.Struct(">H")
FLUSH_EVERY = 1000


def _key_bytes(f: Finding) -> bytes:
    return _RANK_KEY.pack(_RANK.get(f.kind, len(ORDER))) + json.dumps(list(f.key)).encode()


def _encode(f: Finding) -> bytes:
    return json.dumps({"kind": f.kind, "key": list(f.key), "message": f.message, "fix": f.fix}).encode()


def _decode(raw: bytes) -> Finding:
    d = json.loads(raw)
    return Finding(d["kind"], tuple(d["key"]), d["message"], d["fix"])


class FindingStore:
    """The findings of one scan, on disk (a broken cluster may have one per file), in repair order."""

    def __init__(self, spill: Spill) -> None:
        self.spill = spill
        self._buffer: list[Finding] = []
        self.errors = 0
        self.garbage = 0

    def add(self, f: Finding) -> None:
        self._buffer.append(f)
        if f.severity == ERROR:
            self.errors += 1
        else:
            self.garbage += 1
        if len(self._buffer) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        with self.spill.write() as txn:
            for f in self._buffer:
                txn.put(_key_bytes(f), _encode(f), db=self.spill.db("findings"))
        self._buffer = []

    def __len__(self) -> int:
        return self.errors + self.garbage

    def __iter__(self) -> Iterator[Finding]:
        self.flush()
        for _, v in self.spill.items("findings"):
            yield _decode(v)

    def has(self, f: Finding) -> bool:
        self.flush()
        return self.spill.get("findings", _key_bytes(f)) is not None

    def replace(self, f: Finding) -> None:
        self.flush()
        with self.spill.write() as txn:
            txn.put(_key_bytes(f), _encode(f), db=self.spill.db("findings"))

    def discard(self, f: Finding) -> None:
        self.flush()
        with self.spill.write() as txn:
            if txn.delete(_key_bytes(f), db=self.spill.db("findings")):
                if f.severity == ERROR:
                    self.errors -= 1
                else:
                    self.garbage -= 1

    def kinds(self, severity: str) -> list[str]:
        return sorted({f.kind for f in self if f.severity == severity})
