"""Name operations of the shard store: unlink, link, rename, listing, reservations.

A name (directory entry) lives on the shard owning its partition; the inode
it points to usually lives on the same shard but may not (after a rename or
link across shards). Every function here is one transaction. The steps of a
cross-shard rename or link are separate functions (begin_*/finish_*), each
its own transaction; crossshard.py runs the network calls between them.

Link counts stay exact across shards: a link removed here from an inode
that lives elsewhere becomes an outbox item written in the same transaction
and delivered by txid (AdjustNlink is idempotent), and every RemoteLink and
AdjustNlink records its txid with its reply in the ``applied`` log, in the
same transaction as its effect. The sender's transaction that ends its use
of a txid (the intent or outbox item goes) notes that it owes the receiver
the confirmation that lets it forget the record (store.py, ``confirm``).
"""
from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from superfs.errors import FsError
from superfs.filetypes import FILE_TYPES
from superfs.perms import CredsLike, check_hardlink, check_sticky
from superfs.shard.records import DIRECTORY, REGULAR, U64, Inode, Intent
from superfs.shard.store import ShardTxn
from superfs.shard.txn_base import now_ns
from superfs.shard.txn_work import APPLIED_EXCHANGE, APPLIED_NLINK, APPLIED_REMOTE_LINK

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
# An applied-log reply meaning "this txid was refused for good" (a rename's
# roll-forward found another target than the one its intent expected).
REFUSED = b"refused"
LINK_MAX = 65000
LIST_DEFAULT = 1000
LIST_MAX = 10000
EXCHANGED = struct.Struct(">QB")  # an exchange's applied reply: the ino and type the entry held


@dataclass(frozen=True)
class DirGuard:
    """The facts of a parent directory, from its verified capability: the sticky
    bit, and the group a setgid directory gives new files (None: the creator's)."""

    sticky: bool = False
    owner_uid: int = 0
    group: int | None = None

    def needs_owner(self, creds: CredsLike) -> bool:
        return self.sticky and creds.uid not in (0, self.owner_uid)

    def check(self, creds: CredsLike, file_owner: int | None) -> None:
        if not self.needs_owner(creds):
            return
        if file_owner is None:
            raise FsError(errno.EPERM, "sticky directory: the file's owner is unknown")
        check_sticky(self.sticky, self.owner_uid, file_owner, creds)


def _owner(t: ShardTxn, ino: int, owners: dict[int, int]) -> int | None:
    node = t.inode(ino)
    return node.uid if node is not None else owners.get(ino)


def _file_entry(t: ShardTxn, parent: int, raw: bytes) -> tuple[int, int]:
    found = t.entry(parent, raw)
    if found is None:
        raise FsError(errno.ENOENT, "no such file")
    return found


def unlink(t: ShardTxn, parent: int, raw: bytes, *, creds: CredsLike, guard: DirGuard,
           owners: dict[int, int], txid: str) -> tuple[int, int | None]:
    """Remove a file name. Returns (ino, links left, or None if the inode is remote)."""
    ino, ftype = _file_entry(t, parent, raw)
    if ftype == DIRECTORY:
        raise FsError(errno.EISDIR, "is a directory")
    t.check_no_intent(parent, raw)
    guard.check(creds, _owner(t, ino, owners))
    t.delete_entry(parent, raw)
    return ino, t.drop_link(ino, txid)


def link(t: ShardTxn, ino: int, parent: int, raw: bytes, creds: CredsLike) -> Inode:
    """A new name for a local inode (protected hardlinks: see perms.check_hardlink)."""
    _check_new_name(t, parent, raw)
    node = t.require_inode(ino)
    check_hardlink(node.mode, node.uid, node.gid, creds)
    if node.nlink >= LINK_MAX:
        raise FsError(errno.EMLINK, "too many links")
    node.nlink += 1
    node.ctime_ns = now_ns()
    t.put_inode(node)
    t.put_entry(parent, raw, ino, node.ftype)
    return node


def _check_new_name(t: ShardTxn, parent: int, raw: bytes) -> None:
    t.check_not_sealed(parent)
    if t.entry(parent, raw) is not None:
        raise FsError(errno.EEXIST, "file exists")
    t.check_no_intent(parent, raw)


def _replace(t: ShardTxn, parent: int, raw: bytes, ino: int, *, no_replace: bool,
             txid: str) -> tuple[int, bool]:
    """Point (parent, name) at ``ino``. Returns (replaced ino or 0, whether anything changed).

    The replaced inode loses exactly one link, here or through the outbox.
    Renaming onto another name of the same inode changes nothing (POSIX).
    """
    t.check_not_sealed(parent)
    found = t.entry(parent, raw)
    t.check_no_intent(parent, raw)
    if found is None:
        return 0, True
    old_ino, old_type = found
    if old_type == DIRECTORY:
        raise FsError(errno.EISDIR, "destination is a directory")
    if no_replace:
        raise FsError(errno.EEXIST, "destination exists")
    if old_ino == ino:
        return ino, False
    t.drop_link(old_ino, f"{txid}/replaced")
    return old_ino, True


def check_rename_flags(flags: int) -> None:
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE):
        raise FsError(errno.EINVAL, f"unknown rename flags {flags:#x}")
    if flags & RENAME_NOREPLACE and flags & RENAME_EXCHANGE:
        raise FsError(errno.EINVAL, "RENAME_NOREPLACE and RENAME_EXCHANGE exclude each other")


def _rename_source(t: ShardTxn, parent: int, raw: bytes, *, creds: CredsLike, guard: DirGuard,
                   owners: dict[int, int]) -> tuple[int, int]:
    ino, ftype = _file_entry(t, parent, raw)
    if ftype == DIRECTORY:
        raise FsError(errno.EINVAL, "directories are renamed through the dir server")
    t.check_no_intent(parent, raw)
    guard.check(creds, _owner(t, ino, owners))
    return ino, ftype


def rename_local(t: ShardTxn, src_parent: int, src_raw: bytes, dst_parent: int, dst_raw: bytes, *,
                 flags: int, creds: CredsLike, src_guard: DirGuard, dst_guard: DirGuard,
                 owners: dict[int, int], txid: str) -> None:
    """Rename (or exchange) when both names live on this shard: one transaction."""
    check_rename_flags(flags)
    if flags & RENAME_EXCHANGE:
        exchange_local(t, src_parent, src_raw, dst_parent, dst_raw, creds=creds, src_guard=src_guard,
                       dst_guard=dst_guard, owners=owners)
        return
    ino, ftype = _rename_source(t, src_parent, src_raw, creds=creds, guard=src_guard, owners=owners)
    if (src_parent, src_raw) == (dst_parent, dst_raw):
        if flags & RENAME_NOREPLACE:
            raise FsError(errno.EEXIST, "destination exists")
        return
    dst = t.entry(dst_parent, dst_raw)
    if dst is not None and dst[1] != DIRECTORY and dst[0] != ino:
        dst_guard.check(creds, _owner(t, dst[0], owners))
    _, changed = _replace(t, dst_parent, dst_raw, ino, no_replace=bool(flags & RENAME_NOREPLACE), txid=txid)
    if not changed:
        return
    t.put_entry(dst_parent, dst_raw, ino, ftype)
    t.delete_entry(src_parent, src_raw)
    _renamed(t, ino)


def begin_rename(t: ShardTxn, src_parent: int, src_raw: bytes, dst_parent: int, dst_name: str, *,
                 flags: int, creds: CredsLike, guard: DirGuard, owners: dict[int, int],
                 txid: str, expect_ino: int) -> Intent:
    """Step 1 of a cross-shard rename: check the source and lock it with an intent.

    ``expect_ino`` is what the destination entry held when the caller asked
    (0: nothing): the only target the rename may ever be completed onto.
    """
    check_rename_flags(flags)
    ino, ftype = _rename_source(t, src_parent, src_raw, creds=creds, guard=guard, owners=owners)
    intent = Intent("rename", txid, ino, ftype, src_parent, src_raw, dst_parent, dst_name, flags, now_ns(),
                    expect_ino)
    t.put_intent(intent)
    return intent


def retarget_intent(t: ShardTxn, intent: Intent, expect_ino: int) -> Intent:
    """The destination changed before the live request's RemoteLink was applied: expect the new one."""
    current = t.intent(intent.key())
    if current is None or current.txid != intent.txid:
        raise FsError(errno.EAGAIN, "the rename's intent is gone")
    current.expect_ino = expect_ino
    t.put_intent(current)
    return current


def finish_rename(t: ShardTxn, intent: Intent, replaced_ino: int, peer: int) -> None:
    """Step 3: the destination (shard ``peer``) holds the name; drop the source and the intent."""
    current = t.intent(intent.key())
    if current is None or current.txid != intent.txid:
        return  # finished already (by the roll-forward loop)
    found = t.entry(intent.parent, intent.raw_name)
    if found is not None and found[0] == intent.ino and replaced_ino != intent.ino:
        t.delete_entry(intent.parent, intent.raw_name)
        _renamed(t, intent.ino)
    t.delete_intent(intent.key())
    t.add_confirm(APPLIED_REMOTE_LINK, intent.txid, peer)


def _renamed(t: ShardTxn, ino: int) -> None:
    """A renamed file's ctime moves (as Linux's file systems do), if its inode is here."""
    node = t.inode(ino)
    if node is not None:
        node.ctime_ns = now_ns()
        t.put_inode(node)


def drop_intent(t: ShardTxn, intent: Intent, recorded_on: int | None = None) -> None:
    """The other shard refused for good: forget the intent, leave the names as they were.

    ``recorded_on``: the shard that recorded its refusal under the txid (to be
    confirmed like an applied step).
    """
    current = t.intent(intent.key())
    if current is not None and current.txid == intent.txid:
        t.delete_intent(intent.key())
        if recorded_on is not None:
            t.add_confirm(APPLIED_REMOTE_LINK if intent.kind == "rename" else APPLIED_NLINK, intent.txid,
                          recorded_on)


# ------------------------------------------------------------- RENAME_EXCHANGE
#
# renameat2(RENAME_EXCHANGE) swaps what two existing names point at. Both on
# this shard: one transaction. On two shards the source shard coordinates as
# for a rename (crossshard.py): begin_rename writes the intent (with
# RENAME_EXCHANGE in its flags), remote_exchange on the destination shard
# points that entry at the source's inode and answers what it held
# (idempotent by txid), finish_exchange points the source entry at that.
# Anything with a directory is the dir server's (dirserver/exchange.py),
# which re-points each name with repoint_entry.

def exchange_local(t: ShardTxn, src_parent: int, src_raw: bytes, dst_parent: int, dst_raw: bytes, *,
                   creds: CredsLike, src_guard: DirGuard, dst_guard: DirGuard, owners: dict[int, int]) -> None:
    a_ino, a_type = _rename_source(t, src_parent, src_raw, creds=creds, guard=src_guard, owners=owners)
    if (src_parent, src_raw) == (dst_parent, dst_raw):
        return
    b_ino, b_type = _rename_source(t, dst_parent, dst_raw, creds=creds, guard=dst_guard, owners=owners)
    if a_ino == b_ino:
        return  # two names of one file: nothing changes
    t.put_entry(src_parent, src_raw, b_ino, b_type)
    t.put_entry(dst_parent, dst_raw, a_ino, a_type)
    _renamed(t, a_ino)
    _renamed(t, b_ino)


def remote_exchange(t: ShardTxn, parent: int, raw: bytes, *, ino: int, ftype: int, txid: str) -> tuple[int, int]:
    """Step 2 of a cross-shard exchange: the entry takes (ino, ftype); returns what it held. By txid."""
    done = t.applied(APPLIED_EXCHANGE, txid)
    if done is not None:
        return EXCHANGED.unpack(done)
    if ftype not in FILE_TYPES:
        raise FsError(errno.EINVAL, "an exchange through the shards carries files only")
    old_ino, old_type = _file_entry(t, parent, raw)
    if old_type == DIRECTORY:
        raise FsError(errno.EISDIR, "a directory has that name now")  # exchanged through the dir server
    t.check_no_intent(parent, raw)
    if old_ino != ino:
        t.put_entry(parent, raw, ino, ftype)
        _renamed(t, ino)
    t.record_applied(APPLIED_EXCHANGE, txid, EXCHANGED.pack(old_ino, old_type))
    return old_ino, old_type


def finish_exchange(t: ShardTxn, intent: Intent, ino: int, ftype: int) -> None:
    """Step 3: the source entry takes what the destination held; the intent goes."""
    current = t.intent(intent.key())
    if current is None or current.txid != intent.txid:
        return  # finished already (by the roll-forward loop)
    found = t.entry(intent.parent, intent.raw_name)
    if found is not None and found[0] == intent.ino and ino != intent.ino:
        t.put_entry(intent.parent, intent.raw_name, ino, ftype)
        _renamed(t, ino)
    t.delete_intent(intent.key())


def repoint_entry(t: ShardTxn, parent: int, raw: bytes, *, ino: int, ftype: int, new_ino: int,
                  new_type: int) -> None:
    """A dir server's exchange step: (parent, name) from (ino, ftype) to (new_ino, new_type).

    Idempotent: done if the entry points there already. ENOENT if it holds
    anything else (the file was removed or renamed meanwhile: the dir server
    gives up); EAGAIN while a cross-shard operation holds the name.
    """
    found = t.entry(parent, raw)
    if found == (new_ino, new_type):
        return
    if found is None:
        raise FsError(errno.ENOENT, "the name is gone")
    t.check_no_intent(parent, raw)
    if found != (ino, ftype):
        raise FsError(errno.ENOENT, "the name points elsewhere now")
    t.put_entry(parent, raw, new_ino, new_type)
    if new_type != DIRECTORY:
        _renamed(t, new_ino)


def begin_link(t: ShardTxn, ino: int, parent: int, raw: bytes, txid: str) -> Intent:
    """Step 1 of a link to a remote inode: reserve the new name with an intent."""
    _check_new_name(t, parent, raw)
    intent = Intent("link", txid, ino, REGULAR, parent, raw, created_ns=now_ns())
    t.put_intent(intent)
    return intent


def finish_link(t: ShardTxn, intent: Intent, ftype: int, home: int) -> int:
    """Step 3: the home shard (``home``) counted the link; insert the name.

    Returns 0, or the errno for the caller when the name cannot be inserted
    any more (only if the intent was lost); the extra link is then given
    back through the outbox, in this same transaction.
    """
    current = t.intent(intent.key())
    if current is None or current.txid != intent.txid:
        found = t.entry(intent.parent, intent.raw_name)
        return 0 if found is not None and found[0] == intent.ino else errno.EEXIST
    t.delete_intent(intent.key())
    t.add_confirm(APPLIED_NLINK, intent.txid, home)
    err = errno.ENOENT if t.is_sealed(intent.parent) else 0
    if not err and t.entry(intent.parent, intent.raw_name) is not None:
        err = errno.EEXIST
    if err:
        t.drop_link(intent.ino, f"{intent.txid}/undo")
        return err
    t.put_entry(intent.parent, intent.raw_name, intent.ino, ftype)
    return 0


def remote_link(t: ShardTxn, parent: int, raw: bytes, *, ino: int, ftype: int, replace: bool,
                no_replace: bool, txid: str, expect_ino: int | None = None,
                record_refusal: bool = False) -> int | None:
    """Insert (or, for a rename, replace) an entry on behalf of another shard; by txid.

    Returns the replaced ino (0: none), or None when the entry does not hold
    ``expect_ino`` (0: no entry) any more: nothing was changed, and with
    ``record_refusal`` this txid is refused from now on (a rename rolled back).
    """
    done = t.applied(APPLIED_REMOTE_LINK, txid)
    if done is not None:
        return None if done == REFUSED else U64.unpack(done)[0]
    if ftype not in FILE_TYPES:
        raise FsError(errno.EINVAL, "RemoteLink carries files, symlinks and special files only")
    if expect_ino is not None:
        found = t.entry(parent, raw)
        if (found[0] if found is not None else 0) != expect_ino:
            if record_refusal:
                t.record_applied(APPLIED_REMOTE_LINK, txid, REFUSED)
            return None
    replaced, changed = _replace(t, parent, raw, ino, no_replace=no_replace or not replace, txid=txid)
    if changed:
        t.put_entry(parent, raw, ino, ftype)
        _renamed(t, ino)
    t.record_applied(APPLIED_REMOTE_LINK, txid, U64.pack(replaced))
    return replaced


def adjust_nlink(t: ShardTxn, ino: int, delta: int, txid: str) -> Inode:
    """Add ``delta`` links to a local inode, once per txid; freed at zero."""
    done = t.applied(APPLIED_NLINK, txid)
    if done is not None:
        return Inode.from_attr_reply(done)
    node = t.require_inode(ino)
    if delta > 0 and node.nlink + delta > LINK_MAX:
        raise FsError(errno.EMLINK, "too many links")
    node = t.adjust_local_nlink(node, delta)
    t.record_applied(APPLIED_NLINK, txid, node.attr_reply())
    return node


def reserve_dir(t: ShardTxn, parent: int, raw: bytes, ino: int) -> None:
    """Hold a directory's name on the shard that would hold a file of that name."""
    found = t.entry(parent, raw)
    if found is not None:
        if found == (ino, DIRECTORY):
            return
        raise FsError(errno.EEXIST, "the name is taken")
    if t.is_sealed(parent):
        raise FsError(errno.ENOENT, "parent directory is being removed")
    t.check_no_intent(parent, raw)
    t.put_entry(parent, raw, ino, DIRECTORY)


def release_dir(t: ShardTxn, parent: int, raw: bytes, ino: int) -> None:
    """Drop a reservation; absent (already released) or someone else's: nothing to do."""
    if t.entry(parent, raw) == (ino, DIRECTORY):
        t.delete_entry(parent, raw)


def seal_dir(t: ShardTxn, dir_ino: int) -> bool:
    """Refuse new names in ``dir_ino`` if it has none here. False: not empty, not sealed.

    A link into the directory still in flight (an intent) counts as an entry.
    """
    if t.has_children(dir_ino) or t.has_intents(dir_ino):
        return False
    t.seal(dir_ino)
    return True


def unseal_dir(t: ShardTxn, dir_ino: int) -> None:
    t.unseal(dir_ino)


def list_files(t: ShardTxn, parent: int, after: bytes, limit: int,
               with_attrs: bool) -> tuple[list[tuple[bytes, int, int]], list[Inode | None], bool]:
    limit = LIST_DEFAULT if limit == 0 else min(limit, LIST_MAX)
    entries, more = t.scan_entries(parent, after, limit)
    nodes: list[Inode | None] = []
    if with_attrs:
        nodes = [None if ftype == DIRECTORY else t.inode(ino) for _, ino, ftype in entries]
    return entries, nodes, more


def stats(t: ShardTxn) -> dict[str, int]:
    inline, logical = t.sum_sizes()
    return {"files": t.count("inodes"), "dentries": t.count("dentries"),
            "inline_bytes": inline, "logical_bytes": logical}
