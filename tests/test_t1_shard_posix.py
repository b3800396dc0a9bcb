"""Tier 1: the POSIX rules the shard engine applies, on a temp dir, no network.

Special files (FIFOs, sockets, devices) as metadata only: their type and
device number survive the on-disk record; only root makes devices; bytes
and sizes belong to regular files.
"""
from __future__ import annotations

import errno
import stat
from typing import Any, Callable

import pytest

from superfs.errors import FsError
from superfs.shard import file_ops, name_ops
from superfs.shard.name_ops import DirGuard
from superfs.shard.records import Inode, encode_name
from superfs.shard.store import FileMetaStore, ShardTxn
from superfs.v1 import superfs_pb2 as pb

THRESHOLD = 4096
ROOT = pb.Creds(uid=0, gid=0)
ALICE = pb.Creds(uid=1000, gid=1000)


@pytest.fixture
def store(tmp_path: Any) -> Any:
    s = FileMetaStore(str(tmp_path / "shard"), durable=False)
    yield s
    s.close()


def w(store: FileMetaStore, fn: Callable[[ShardTxn], Any]) -> Any:
    return store.write_now(fn)


def errno_of(store: FileMetaStore, fn: Callable[[ShardTxn], Any]) -> int:
    with pytest.raises(FsError) as ei:
        w(store, fn)
    return ei.value.errno


def create(store: FileMetaStore, parent: int, name: str, ftype: int, *, creds: pb.Creds = ALICE,
           mode: int = 0o644, rdev: int = 0, exclusive: bool = True) -> file_ops.CreateResult:
    return w(store, lambda t: file_ops.create_file(
        t, parent=parent, raw=encode_name(name), partition=3, mode=mode, ftype=ftype, target=b"",
        exclusive=exclusive, truncate=False, creds=creds, data=b"", inline_threshold=THRESHOLD, rdev=rdev))


@pytest.mark.parametrize("ftype,fmt", [(pb.FIFO, stat.S_IFIFO), (pb.SOCKET, stat.S_IFSOCK),
                                       (pb.CHAR_DEVICE, stat.S_IFCHR), (pb.BLOCK_DEVICE, stat.S_IFBLK)])
def test_special_files_are_stored_with_type_and_rdev(store: FileMetaStore, ftype: int, fmt: int) -> None:
    dev = (8 << 8) | 1 if ftype in (pb.CHAR_DEVICE, pb.BLOCK_DEVICE) else 0
    node = create(store, 10, "s", ftype, creds=ROOT, mode=0o4640, rdev=(8 << 8) | 1).node
    assert node is not None
    assert (node.mode, node.ftype, node.rdev, node.size, node.nlink) == (fmt | 0o4640, ftype, dev, 0, 1)
    with store.read() as t:
        again = t.inode(node.ino)
        ino, etype, found, _ = file_ops.lookup_file(t, 10, b"s", False)
    assert again == node and (ino, etype) == (node.ino, ftype)
    assert Inode.unpack(node.ino, node.pack()) == node
    # a second create of the name, exclusive or not, finds it taken
    for exclusive in (True, False):
        assert errno_of(store, lambda t: file_ops.create_file(
            t, parent=10, raw=b"s", partition=3, mode=0o644, ftype=pb.REGULAR, target=b"", exclusive=exclusive,
            truncate=False, creds=ROOT, data=b"", inline_threshold=THRESHOLD)) == errno.EEXIST


def test_only_root_makes_devices(store: FileMetaStore) -> None:
    for ftype in (pb.CHAR_DEVICE, pb.BLOCK_DEVICE):
        with pytest.raises(FsError) as ei:
            create(store, 10, "d", ftype, rdev=1)
        assert ei.value.errno == errno.EPERM
    assert create(store, 10, "f", pb.FIFO).created  # FIFOs and sockets are anyone's
    assert create(store, 10, "s", pb.SOCKET).created
    with pytest.raises(FsError) as ei:
        create(store, 10, "x", pb.DIRECTORY)
    assert ei.value.errno == errno.EINVAL


def test_special_files_have_no_bytes(store: FileMetaStore) -> None:
    node = create(store, 10, "f", pb.FIFO, mode=0o666).node
    assert node is not None
    ino = node.ino
    assert errno_of(store, lambda t: file_ops.write_inline(
        t, ino, offset=0, data=b"x", truncate_to_end=False, creds=ALICE, inline_threshold=THRESHOLD)) == errno.EINVAL
    assert errno_of(store, lambda t: file_ops.read_inline(t, ino, offset=0, length=1, creds=ALICE)) == errno.EINVAL
    assert errno_of(store, lambda t: file_ops.set_attr(
        t, ino, mask=file_ops.SET_SIZE, mode=0, uid=0, gid=0, size=0, atime_ns=0, mtime_ns=0, creds=ALICE,
        inline_threshold=THRESHOLD)) == errno.EINVAL
    # but they have owners, modes and names like any file
    node, _ = w(store, lambda t: file_ops.set_attr(
        t, ino, mask=file_ops.SET_MODE, mode=0o600, uid=0, gid=0, size=0, atime_ns=0, mtime_ns=0, creds=ALICE,
        inline_threshold=THRESHOLD))
    assert node.mode == stat.S_IFIFO | 0o600
    w(store, lambda t: name_ops.link(t, ino, 10, b"g", ROOT))
    w(store, lambda t: name_ops.rename_local(t, 10, b"g", 11, b"h", flags=0, creds=ALICE, src_guard=DirGuard(),
                                             dst_guard=DirGuard(), owners={}, txid="t1"))
    assert w(store, lambda t: name_ops.remote_link(t, 12, b"r", ino=ino, ftype=pb.FIFO, replace=False,
                                                   no_replace=True, txid="t2")) == 0


def test_setgid_parent_gives_its_group(store: FileMetaStore) -> None:
    """``group`` (from a setgid directory's capability): new files take it; setgid is kept
    only for a member of that group, as Linux's mode_strip_sgid."""
    bob = pb.Creds(uid=1001, gid=1001, groups=[50])
    for name, creds, mode, want in [("a", ALICE, 0o2755, 0o755), ("b", bob, 0o2755, 0o2755),
                                    ("c", ALICE, 0o2644, 0o2644), ("d", ROOT, 0o2755, 0o2755)]:
        node = w(store, lambda t: file_ops.create_file(
            t, parent=10, raw=name.encode(), partition=3, mode=mode, ftype=pb.REGULAR, target=b"", exclusive=True,
            truncate=False, creds=creds, data=b"", inline_threshold=THRESHOLD, group=50)).node
        assert (node.uid, node.gid, stat.S_IMODE(node.mode)) == (creds.uid, 50, want), name
    fifo = create(store, 10, "f", pb.FIFO, creds=ALICE)
    assert fifo.node is not None and fifo.node.gid == ALICE.gid  # no group given: the creator's


def test_a_writer_may_drop_setid_bits_only(store: FileMetaStore) -> None:
    """The kernel's chmod before a non-owner's write or truncate (file_remove_privs): allowed for
    whoever may write, for dropping setuid/setgid only; any other chmod stays the owner's."""
    bob = pb.Creds(uid=1001, gid=1001, groups=[1000])  # in the group: chmod keeps setgid for him

    def chmod(ino: int, mode: int, creds: pb.Creds) -> Inode:
        return w(store, lambda t: file_ops.set_attr(
            t, ino, mask=file_ops.SET_MODE, mode=mode, uid=0, gid=0, size=0, atime_ns=0, mtime_ns=0, creds=creds,
            inline_threshold=THRESHOLD))[0]

    writable = create(store, 10, "w", pb.REGULAR, mode=0o6777).node
    readonly = create(store, 10, "r", pb.REGULAR, mode=0o6755).node
    assert writable is not None and readonly is not None
    assert stat.S_IMODE(chmod(writable.ino, 0o2777, bob).mode) == 0o2777   # setuid dropped
    assert stat.S_IMODE(chmod(writable.ino, 0o0777, bob).mode) == 0o0777   # then setgid
    assert stat.S_IMODE(chmod(writable.ino, 0o0777, bob).mode) == 0o0777   # nothing left: a no-op
    for mode in (0o0775, 0o4777, 0o1777):                                  # anything else: EPERM
        with pytest.raises(FsError) as ei:
            chmod(writable.ino, mode, bob)
        assert ei.value.errno == errno.EPERM
    with pytest.raises(FsError) as ei:
        chmod(readonly.ino, 0o0755, bob)                                   # may not write: EPERM
    assert ei.value.errno == errno.EPERM


# ------------------------------------------------------------ RENAME_EXCHANGE

def test_exchange_on_one_shard(store: FileMetaStore) -> None:
    a = create(store, 10, "a", pb.REGULAR).node
    b = create(store, 11, "b", pb.SOCKET).node
    assert a is not None and b is not None

    def xchg(sp: int, sn: bytes, dp: int, dn: bytes, creds: pb.Creds = ALICE, guard: DirGuard = DirGuard()) -> None:
        w(store, lambda t: name_ops.rename_local(t, sp, sn, dp, dn, flags=name_ops.RENAME_EXCHANGE, creds=creds,
                                                 src_guard=DirGuard(), dst_guard=guard, owners={}, txid="x"))

    xchg(10, b"a", 11, b"b")
    with store.read() as t:
        assert t.entry(10, b"a") == (b.ino, pb.SOCKET) and t.entry(11, b"b") == (a.ino, pb.REGULAR)
        assert t.inode(a.ino).ctime_ns > a.ctime_ns  # type: ignore[union-attr]
    for (sp, sn, dp, dn), want in [((10, b"a", 11, b"nope"), errno.ENOENT), ((10, b"nope", 11, b"b"), errno.ENOENT)]:
        assert errno_of(store, lambda t: name_ops.rename_local(
            t, sp, sn, dp, dn, flags=name_ops.RENAME_EXCHANGE, creds=ALICE, src_guard=DirGuard(),
            dst_guard=DirGuard(), owners={}, txid="y")) == want
    # sticky destination owned by someone else: EPERM, nothing changes
    carol = pb.Creds(uid=1002, gid=1002)
    create(store, 12, "c", pb.REGULAR, creds=carol)
    assert errno_of(store, lambda t: name_ops.rename_local(
        t, 10, b"a", 12, b"c", flags=name_ops.RENAME_EXCHANGE, creds=ALICE, src_guard=DirGuard(),
        dst_guard=DirGuard(sticky=True, owner_uid=0), owners={}, txid="z")) == errno.EPERM
    assert errno_of(store, lambda t: name_ops.check_rename_flags(3)) == errno.EINVAL


def test_cross_shard_exchange_steps_are_idempotent(store: FileMetaStore) -> None:
    """The destination's step by txid, the source's by its intent; a replay changes nothing."""
    a = create(store, 10, "a", pb.REGULAR).node
    b = create(store, 20, "b", pb.FIFO).node
    assert a is not None and b is not None
    intent = w(store, lambda t: name_ops.begin_rename(t, 10, b"a", 20, "b", flags=name_ops.RENAME_EXCHANGE,
                                                      creds=ALICE, guard=DirGuard(), owners={}, txid="tx",
                                                      expect_ino=b.ino))
    for _ in range(2):  # the destination's step, then its replay
        held = w(store, lambda t: name_ops.remote_exchange(t, 20, b"b", ino=a.ino, ftype=pb.REGULAR, txid="tx"))
        assert held == (b.ino, pb.FIFO)
    for _ in range(2):
        w(store, lambda t: name_ops.finish_exchange(t, intent, b.ino, pb.FIFO))
    with store.read() as t:
        assert t.entry(10, b"a") == (b.ino, pb.FIFO) and t.entry(20, b"b") == (a.ino, pb.REGULAR)
        assert t.intents() == []
    assert errno_of(store, lambda t: name_ops.remote_exchange(t, 20, b"gone", ino=a.ino, ftype=pb.REGULAR,
                                                              txid="t2")) == errno.ENOENT


def test_repoint_entry(store: FileMetaStore) -> None:
    f = create(store, 10, "f", pb.REGULAR).node
    assert f is not None
    for _ in range(2):  # idempotent
        w(store, lambda t: name_ops.repoint_entry(t, 10, b"f", ino=f.ino, ftype=pb.REGULAR, new_ino=5,
                                                  new_type=pb.DIRECTORY))
    with store.read() as t:
        assert t.entry(10, b"f") == (5, pb.DIRECTORY)
    assert errno_of(store, lambda t: name_ops.repoint_entry(t, 10, b"f", ino=f.ino, ftype=pb.REGULAR, new_ino=6,
                                                            new_type=pb.DIRECTORY)) == errno.ENOENT
    assert errno_of(store, lambda t: name_ops.repoint_entry(t, 10, b"none", ino=1, ftype=pb.REGULAR, new_ino=6,
                                                            new_type=pb.DIRECTORY)) == errno.ENOENT
