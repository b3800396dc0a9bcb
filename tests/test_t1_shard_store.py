"""Tier 1: the shard's store operations on a temp dir, no network.

Every operation of file_ops, name_ops and xattr_ops, with the errno Linux
would give for each fault, plus the properties the service relies on:
per-partition inode numbers, prefix-scan paging, idempotency by txid, and
the on-disk footprint of an empty file.
"""
from __future__ import annotations

import errno
import stat
from typing import Any, Callable

import pytest

from superfs.errors import FsError
from superfs.routing import ino_partition
from superfs.shard import file_ops, name_ops, xattr_ops
from superfs.shard.name_ops import DirGuard
from superfs.shard.records import DIRECTORY, REGULAR, SYMLINK, Inode, encode_name
from superfs.shard.store import FileMetaStore, ShardTxn
from superfs.shard.txn_work import APPLIED_NLINK, APPLIED_REMOTE_LINK
from superfs.v1 import superfs_pb2 as pb

THRESHOLD = 4096
ROOT = pb.Creds(uid=0, gid=0)
ALICE = pb.Creds(uid=1000, gid=1000)
BOB = pb.Creds(uid=1001, gid=1001, groups=[1000])
CAROL = pb.Creds(uid=1002, gid=1002)
NO_GUARD = DirGuard()


@pytest.fixture
def store(tmp_path: Any) -> Any:
    s = FileMetaStore(str(tmp_path / "shard"), durable=False)
    yield s
    s.close()


def w(store: FileMetaStore, fn: Callable[[ShardTxn], Any]) -> Any:
    return store.write_now(fn)


def r(store: FileMetaStore, fn: Callable[[ShardTxn], Any]) -> Any:
    with store.read() as t:
        return fn(t)


def errno_of(store: FileMetaStore, fn: Callable[[ShardTxn], Any]) -> int:
    with pytest.raises(FsError) as ei:
        w(store, fn)
    return ei.value.errno


def create(store: FileMetaStore, parent: int, name: str, *, creds: pb.Creds = ALICE, mode: int = 0o644,
           data: bytes = b"", exclusive: bool = True, truncate: bool = False, ftype: int = REGULAR,
           target: bytes = b"", partition: int = 3) -> file_ops.CreateResult:
    return w(store, lambda t: file_ops.create_file(
        t, parent=parent, raw=encode_name(name), partition=partition, mode=mode, ftype=ftype, target=target,
        exclusive=exclusive, truncate=truncate, creds=creds, data=data, inline_threshold=THRESHOLD))


def inode(store: FileMetaStore, ino: int) -> Inode | None:
    return r(store, lambda t: t.inode(ino))


# ------------------------------------------------------------------ create


def test_create_lookup_get(store: FileMetaStore) -> None:
    res = create(store, 10, "a.txt", data=b"hello", mode=0o100644 | 0o4000)
    assert res.created
    node = res.node
    assert node is not None
    assert node.mode == stat.S_IFREG | 0o4644  # type bits from the request are ignored
    assert (node.nlink, node.uid, node.gid, node.size, node.generation) == (1, 1000, 1000, 5, 1)
    assert node.inline and node.atime_ns == node.mtime_ns == node.ctime_ns > 0
    ino, ftype, found, data = r(store, lambda t: file_ops.lookup_file(t, 10, b"a.txt", True))
    assert (ino, ftype, data) == (node.ino, REGULAR, b"hello")
    assert found == node
    _, _, _, data = r(store, lambda t: file_ops.lookup_file(t, 10, b"a.txt", False))
    assert data == b""
    got, data = r(store, lambda t: file_ops.get_file(t, node.ino, True))
    assert got == node and data == b"hello"
    with pytest.raises(FsError) as ei:
        r(store, lambda t: file_ops.lookup_file(t, 10, b"missing", False))
    assert ei.value.errno == errno.ENOENT
    with pytest.raises(FsError) as ei:
        r(store, lambda t: file_ops.get_file(t, node.ino + 1, False))
    assert ei.value.errno == errno.ENOENT


def test_inos_are_allocated_per_partition(store: FileMetaStore) -> None:
    a = create(store, 1, "a", partition=5).node
    b = create(store, 1, "b", partition=5).node
    c = create(store, 1, "c", partition=700).node
    assert a and b and c
    assert ino_partition(a.ino) == ino_partition(b.ino) == 5
    assert ino_partition(c.ino) == 700
    assert b.ino == a.ino + 1
    assert c.ino & ((1 << 40) - 1) == 1  # each partition has its own sequence


def test_create_existing(store: FileMetaStore) -> None:
    first = create(store, 1, "f", data=b"abc").node
    assert first is not None
    assert errno_of(store, lambda t: file_ops.create_file(
        t, parent=1, raw=b"f", partition=3, mode=0o644, ftype=REGULAR, target=b"", exclusive=True,
        truncate=False, creds=ALICE, data=b"", inline_threshold=THRESHOLD)) == errno.EEXIST
    again = create(store, 1, "f", exclusive=False)
    assert not again.created and again.node is not None and again.node.ino == first.ino
    assert again.node.size == 3
    # O_TRUNC needs write permission on the file itself
    with pytest.raises(FsError) as ei:
        create(store, 1, "f", exclusive=False, truncate=True, creds=CAROL)
    assert ei.value.errno == errno.EACCES
    trunc = create(store, 1, "f", exclusive=False, truncate=True)
    assert trunc.node is not None and trunc.node.size == 0 and trunc.node.generation == 2
    assert r(store, lambda t: t.inline_data(first.ino)) == b""


def test_create_over_dir_symlink_sealed_and_too_big(store: FileMetaStore) -> None:
    w(store, lambda t: name_ops.reserve_dir(t, 1, b"d", 77))
    with pytest.raises(FsError) as ei:
        create(store, 1, "d", exclusive=False)
    assert ei.value.errno == errno.EISDIR
    with pytest.raises(FsError) as ei:
        create(store, 1, "d", exclusive=True)
    assert ei.value.errno == errno.EEXIST
    create(store, 1, "l", ftype=SYMLINK, target=b"/some/where")
    with pytest.raises(FsError) as ei:
        create(store, 1, "l", exclusive=False)
    assert ei.value.errno == errno.EEXIST
    with pytest.raises(FsError) as ei:
        create(store, 1, "big", data=b"x" * (THRESHOLD + 1))
    assert ei.value.errno == errno.EFBIG
    assert w(store, lambda t: name_ops.seal_dir(t, 99))
    with pytest.raises(FsError) as ei:
        create(store, 99, "x")
    assert ei.value.errno == errno.ENOENT
    with pytest.raises(FsError) as ei:
        create(store, 1, "dirtype", ftype=DIRECTORY)
    assert ei.value.errno == errno.EINVAL


def test_symlink(store: FileMetaStore) -> None:
    node = create(store, 1, "s", ftype=SYMLINK, target="tärget".encode(), mode=0o600).node
    assert node is not None
    assert node.mode == stat.S_IFLNK | 0o777 and node.size == len("tärget".encode())
    got = inode(store, node.ino)
    assert got is not None and got.symlink_target == "tärget".encode() and got.ftype == SYMLINK
    _, ftype, _, _ = r(store, lambda t: file_ops.lookup_file(t, 1, b"s", False))
    assert ftype == SYMLINK
    for target, err in ((b"", errno.ENOENT), (b"x" * 4096, errno.ENAMETOOLONG)):
        with pytest.raises(FsError) as ei:
            create(store, 1, "s2", ftype=SYMLINK, target=target)
        assert ei.value.errno == err
    assert errno_of(store, lambda t: file_ops.write_inline(
        t, node.ino, offset=0, data=b"x", truncate_to_end=False, creds=ALICE,
        inline_threshold=THRESHOLD)) == errno.EINVAL


# ------------------------------------------------------------ inline bytes


def write(store: FileMetaStore, ino: int, offset: int, data: bytes, *, creds: pb.Creds = ALICE,
          trunc: bool = False) -> Inode:
    return w(store, lambda t: file_ops.write_inline(t, ino, offset=offset, data=data, truncate_to_end=trunc,
                                                    creds=creds, inline_threshold=THRESHOLD))


def read(store: FileMetaStore, ino: int, offset: int, length: int, creds: pb.Creds = ALICE) -> bytes:
    return r(store, lambda t: file_ops.read_inline(t, ino, offset=offset, length=length, creds=creds))


def test_inline_write_read(store: FileMetaStore) -> None:
    node = create(store, 1, "f", data=b"hello world").node
    assert node is not None
    ino = node.ino
    after = write(store, ino, 6, b"there")
    assert after.size == 11 and after.generation == 2 and after.mtime_ns >= node.mtime_ns
    assert read(store, ino, 0, 100) == b"hello there"
    write(store, ino, 15, b"!")  # a gap reads as zeros
    assert read(store, ino, 0, 100) == b"hello there\0\0\0\0!"
    assert read(store, ino, 14, 5) == b"\0!"  # short at EOF
    assert read(store, ino, 100, 5) == b""
    after = write(store, ino, 0, b"new", trunc=True)
    assert after.size == 3 and read(store, ino, 0, 100) == b"new"
    for offset, data in ((THRESHOLD, b"x"), (2**63, b"x"), (0, b"y" * (THRESHOLD + 1))):
        with pytest.raises(FsError) as ei:
            write(store, ino, offset, data)
        assert ei.value.errno == errno.EFBIG
    with pytest.raises(FsError) as ei:
        read(store, ino, 0, 64 * 1024 * 1024 + 1)
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(FsError) as ei:
        write(store, ino, 0, b"x", creds=CAROL)
    assert ei.value.errno == errno.EACCES
    with pytest.raises(FsError) as ei:
        read(store, ino + 5, 0, 1)
    assert ei.value.errno == errno.ENOENT
    assert read(store, ino, 0, 3, creds=CAROL) == b"new"  # 0644: others may read
    w(store, lambda t: file_ops.set_attr(t, ino, mask=1, mode=0o600, uid=0, gid=0, size=0, atime_ns=0,
                                         mtime_ns=0, creds=ALICE, inline_threshold=THRESHOLD))
    with pytest.raises(FsError) as ei:
        read(store, ino, 0, 3, creds=CAROL)
    assert ei.value.errno == errno.EACCES
    assert read(store, ino, 0, 3, creds=ROOT) == b"new"


def test_inline_bytes_span_pieces(tmp_path: Any) -> None:
    """Inline bytes are stored in page-sized pieces; reads and writes cross them seamlessly."""
    store = FileMetaStore(str(tmp_path / "pieces"), durable=False)
    big = 60000
    try:
        payload = bytes(range(256)) * (10000 // 256 + 1)
        payload = payload[:10000]
        node = w(store, lambda t: file_ops.create_file(
            t, parent=1, raw=b"p", partition=0, mode=0o644, ftype=REGULAR, target=b"", exclusive=True,
            truncate=False, creds=ALICE, data=payload, inline_threshold=big)).node
        assert node is not None
        ino = node.ino
        assert r(store, lambda t: t.count("inline")) == 4  # 2 x 4080 + 1000 + 840
        got = r(store, lambda t: file_ops.read_inline(t, ino, offset=4000, length=5000, creds=ALICE))
        assert got == payload[4000:9000]
        w(store, lambda t: file_ops.write_inline(t, ino, offset=4075, data=b"#" * 10, truncate_to_end=False,
                                                 creds=ALICE, inline_threshold=big))
        expect = payload[:4075] + b"#" * 10 + payload[4085:]
        assert r(store, lambda t: t.inline_data(ino)) == expect
        w(store, lambda t: file_ops.write_inline(t, ino, offset=0, data=b"tiny", truncate_to_end=True,
                                                 creds=ALICE, inline_threshold=big))
        assert r(store, lambda t: t.count("inline")) == 1
        assert r(store, lambda t: t.inline_data(ino)) == b"tiny"
        other = w(store, lambda t: file_ops.create_file(
            t, parent=1, raw=b"q", partition=0, mode=0o644, ftype=REGULAR, target=b"", exclusive=True,
            truncate=False, creds=ALICE, data=b"neighbour", inline_threshold=big)).node
        assert other is not None and other.ino == ino + 1
        w(store, lambda t: name_ops.unlink(t, 1, b"p", creds=ALICE, guard=NO_GUARD, owners={}, txid="u"))
        assert r(store, lambda t: t.count("inline")) == 1  # the neighbour's piece is untouched
        assert r(store, lambda t: t.inline_data(other.ino)) == b"neighbour"
    finally:
        store.close()


def test_write_by_non_owner_clears_setuid(store: FileMetaStore) -> None:
    node = create(store, 1, "f", mode=0o6777).node
    assert node is not None
    assert write(store, node.ino, 0, b"x", creds=ROOT).mode & 0o6000 == 0o6000
    assert write(store, node.ino, 0, b"x", creds=CAROL).mode & 0o7777 == 0o777


# ---------------------------------------------------------------- setattr


def setattr_(store: FileMetaStore, ino: int, mask: int, creds: pb.Creds = ALICE, **kw: int) -> Inode:
    args = {"mode": 0, "uid": 0, "gid": 0, "size": 0, "atime_ns": 0, "mtime_ns": 0} | kw
    node, _ = w(store, lambda t: file_ops.set_attr(t, ino, mask=mask, creds=creds,
                                                   inline_threshold=THRESHOLD, **args))
    return node


def setattr_errno(store: FileMetaStore, ino: int, mask: int, creds: pb.Creds, **kw: int) -> int:
    with pytest.raises(FsError) as ei:
        setattr_(store, ino, mask, creds, **kw)
    return ei.value.errno


def test_setattr_permissions(store: FileMetaStore) -> None:
    node = create(store, 1, "f", mode=0o664, data=b"0123456789").node
    assert node is not None
    ino = node.ino
    assert setattr_(store, ino, 1, mode=0o100600).mode == stat.S_IFREG | 0o600
    assert setattr_errno(store, ino, 1, CAROL, mode=0o777) == errno.EPERM
    assert setattr_errno(store, ino, 2, ALICE, uid=1001) == errno.EPERM
    assert setattr_(store, ino, 2, ROOT, uid=1001).uid == 1001
    assert setattr_(store, ino, 2, ROOT, uid=1000).uid == 1000
    assert setattr_errno(store, ino, 4, ALICE, gid=5) == errno.EPERM  # not a member
    assert setattr_errno(store, ino, 4, BOB, gid=1000) == errno.EPERM  # member, not owner
    alice_in_5 = pb.Creds(uid=1000, gid=1000, groups=[5])
    assert setattr_(store, ino, 4, alice_in_5, gid=5).gid == 5
    # times
    assert setattr_(store, ino, 16 | 32, atime_ns=111, mtime_ns=222).atime_ns == 111
    assert setattr_errno(store, ino, 32, CAROL, mtime_ns=1) == errno.EPERM
    assert setattr_errno(store, ino, 128, CAROL) == errno.EACCES  # 0600: no write for others
    setattr_(store, ino, 1, mode=0o666)
    before = inode(store, ino)
    assert before is not None
    after = setattr_(store, ino, 64 | 128, CAROL)
    assert after.mtime_ns > 222 and after.ctime_ns >= before.ctime_ns
    assert setattr_errno(store, ino, 512, ALICE) == errno.EINVAL
    assert setattr_errno(store, ino + 1, 1, ALICE) == errno.ENOENT


def test_setattr_size_inline(store: FileMetaStore) -> None:
    node = create(store, 1, "f", mode=0o644, data=b"0123456789").node
    assert node is not None
    ino = node.ino
    cut = setattr_(store, ino, 8, size=4)
    assert cut.size == 4 and cut.generation == 2 and read(store, ino, 0, 100) == b"0123"
    grown = setattr_(store, ino, 8, size=8)
    assert grown.size == 8 and read(store, ino, 0, 100) == b"0123\0\0\0\0"
    write(store, ino, 2, b"ab")
    assert read(store, ino, 0, 100) == b"01ab\0\0\0\0"
    assert setattr_errno(store, ino, 8, ALICE, size=THRESHOLD + 1) == errno.EFBIG
    assert setattr_errno(store, ino, 8, CAROL, size=0) == errno.EACCES
    assert setattr_errno(store, ino, 8, ALICE, size=2**62) == errno.EFBIG


def test_chown_clears_setid(store: FileMetaStore) -> None:
    node = create(store, 1, "f", mode=0o6755).node
    assert node is not None
    assert setattr_(store, node.ino, 2 | 4, ROOT, uid=5, gid=5).mode & 0o7777 == 0o755
    node = create(store, 1, "g", mode=0o2644).node
    assert node is not None
    # setgid without group execute is mandatory locking, kept by chown
    assert setattr_(store, node.ino, 4, ROOT, gid=5).mode & 0o7777 == 0o2644
    # chmod by an owner outside the file's group drops setgid
    assert setattr_(store, node.ino, 1, ALICE, mode=0o2755).mode & 0o7777 == 0o755


# ------------------------------------------------------- chunked files


def convert(store: FileMetaStore, ino: int, gen: int, layout: list[int] | None = None,
            creds: pb.Creds = ALICE) -> Inode:
    return w(store, lambda t: file_ops.convert_to_chunked(
        t, ino, creds=creds, layout=[1, 2] if layout is None else layout, expect_generation=gen,
        chunk_size=1024))


def test_convert_set_size_and_reclaim_items(store: FileMetaStore) -> None:
    node = create(store, 1, "f", data=b"abc").node
    assert node is not None
    ino = node.ino
    with pytest.raises(FsError) as ei:
        convert(store, ino, gen=7)
    assert ei.value.errno == errno.EAGAIN
    with pytest.raises(FsError) as ei:
        convert(store, ino, gen=1, layout=[])
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(FsError) as ei:
        convert(store, ino, gen=1, creds=CAROL)
    assert ei.value.errno == errno.EACCES
    c = convert(store, ino, gen=1)
    assert not c.inline and c.layout == (1, 2) and c.chunk_size == 1024 and c.size == 3 and c.generation == 2
    assert r(store, lambda t: t.inline_data(ino)) == b""
    assert convert(store, ino, gen=99) == c  # already chunked: as is
    with pytest.raises(FsError) as ei:
        write(store, ino, 0, b"x")
    assert ei.value.errno == errno.EFBIG
    with pytest.raises(FsError) as ei:
        read(store, ino, 0, 1)
    assert ei.value.errno == errno.EFBIG

    def set_size(size: int, creds: pb.Creds = ALICE) -> Inode:
        return w(store, lambda t: file_ops.set_size(t, ino, size=size, mtime_ns=0, creds=creds))

    assert set_size(5000).size == 5000
    assert set_size(100).size == 5000  # never shrinks
    with pytest.raises(FsError) as ei:
        set_size(1, CAROL)
    assert ei.value.errno == errno.EACCES
    assert w(store, lambda t: file_ops.set_size(t, ino, size=6000, mtime_ns=42, creds=ALICE)).mtime_ns == 42
    shrunk, item = w(store, lambda t: file_ops.set_attr(
        t, ino, mask=8, mode=0, uid=0, gid=0, size=1500, atime_ns=0, mtime_ns=0, creds=ALICE,
        inline_threshold=THRESHOLD))
    assert shrunk.size == 1500 and not shrunk.inline  # chunked files may exceed the inline threshold
    assert item is not None and (item.ino, item.from_size, item.freed) == (ino, 1500, False)
    assert item.generation == shrunk.generation and item.layout == (1, 2) and item.chunk_size == 1024
    items = r(store, lambda t: t.reclaim_items(10))
    assert items == [item]
    # O_TRUNC of a chunked file: size 0, still chunked, one more item
    trunc = create(store, 1, "f", exclusive=False, truncate=True)
    assert trunc.node is not None and trunc.node.size == 0 and not trunc.node.inline
    assert trunc.reclaim is not None and trunc.reclaim.from_size == 0
    inline_only = create(store, 1, "g").node
    assert inline_only is not None
    with pytest.raises(FsError) as ei:
        w(store, lambda t: file_ops.set_size(t, inline_only.ino, size=1, mtime_ns=0, creds=ALICE))
    assert ei.value.errno == errno.EINVAL


# ------------------------------------------------------------------ unlink


def unlink(store: FileMetaStore, parent: int, name: str, *, creds: pb.Creds = ALICE,
           guard: DirGuard = NO_GUARD, txid: str = "t") -> tuple[int, int | None]:
    return w(store, lambda t: name_ops.unlink(t, parent, encode_name(name), creds=creds, guard=guard,
                                              owners={}, txid=txid))


def test_unlink_frees_inode_bytes_and_xattrs(store: FileMetaStore) -> None:
    node = create(store, 1, "f", data=b"data").node
    assert node is not None
    w(store, lambda t: xattr_ops.set_xattr(t, node.ino, "user.a", b"1", 0, ALICE))
    other = create(store, 1, "g").node
    assert other is not None
    w(store, lambda t: xattr_ops.set_xattr(t, other.ino, "user.b", b"2", 0, ALICE))
    assert unlink(store, 1, "f") == (node.ino, 0)
    assert inode(store, node.ino) is None
    assert r(store, lambda t: t.inline_data(node.ino)) == b""
    assert r(store, lambda t: xattr_ops.list_xattr(t, other.ino, ALICE)) == ["user.b"]
    assert r(store, lambda t: t.count("xattrs")) == 1
    with pytest.raises(FsError) as ei:
        unlink(store, 1, "f")
    assert ei.value.errno == errno.ENOENT
    assert r(store, lambda t: t.reclaim_items(10)) == []  # inline: nothing on data servers


def test_unlink_chunked_queues_reclaim(store: FileMetaStore) -> None:
    node = create(store, 1, "f", data=b"abc").node
    assert node is not None
    convert(store, node.ino, gen=1, layout=[4])
    unlink(store, 1, "f")
    items = r(store, lambda t: t.reclaim_items(10))
    assert len(items) == 1 and (items[0].ino, items[0].from_size, items[0].freed, items[0].layout) == (
        node.ino, 0, True, (4,))


def test_unlink_errors_and_sticky(store: FileMetaStore) -> None:
    w(store, lambda t: name_ops.reserve_dir(t, 1, b"d", 77))
    with pytest.raises(FsError) as ei:
        unlink(store, 1, "d")
    assert ei.value.errno == errno.EISDIR
    create(store, 1, "alices")
    sticky = DirGuard(sticky=True, owner_uid=0)
    with pytest.raises(FsError) as ei:
        unlink(store, 1, "alices", creds=CAROL, guard=sticky)
    assert ei.value.errno == errno.EPERM
    assert unlink(store, 1, "alices", creds=ALICE, guard=sticky)[1] == 0
    create(store, 1, "alices")
    assert unlink(store, 1, "alices", creds=pb.Creds(uid=7), guard=DirGuard(True, 7))[1] == 0


def test_unlink_of_remote_inode_goes_to_outbox(store: FileMetaStore) -> None:
    remote_ino = (900 + 1) << 40 | 5
    w(store, lambda t: t.put_entry(1, b"far", remote_ino, REGULAR))
    assert unlink(store, 1, "far", txid="tx-1") == (remote_ino, None)
    items = r(store, lambda t: t.outbox(10))
    assert [(i.txid, i.ino, i.delta) for i in items] == [("tx-1", remote_ino, -1)]
    w(store, lambda t: t.delete_outbox("tx-1"))
    assert r(store, lambda t: t.outbox(10)) == []


# -------------------------------------------------------------------- link


def test_link_local(store: FileMetaStore) -> None:
    node = create(store, 1, "f").node
    assert node is not None
    linked = w(store, lambda t: name_ops.link(t, node.ino, 2, b"g", ALICE))
    assert linked.nlink == 2
    _, ftype, _, _ = r(store, lambda t: file_ops.lookup_file(t, 2, b"g", False))
    assert ftype == REGULAR
    assert errno_of(store, lambda t: name_ops.link(t, node.ino, 2, b"g", ALICE)) == errno.EEXIST
    assert errno_of(store, lambda t: name_ops.link(t, node.ino + 9, 2, b"h", ALICE)) == errno.ENOENT
    w(store, lambda t: name_ops.seal_dir(t, 50))
    assert errno_of(store, lambda t: name_ops.link(t, node.ino, 50, b"h", ALICE)) == errno.ENOENT
    assert unlink(store, 1, "f") == (node.ino, 1)
    assert unlink(store, 2, "g") == (node.ino, 0)


def test_link_follows_protected_hardlinks(store: FileMetaStore) -> None:
    """As Linux with fs.protected_hardlinks=1: the owner, root, or a reader-writer of a plain file."""
    private = create(store, 1, "private", mode=0o600).node
    readable = create(store, 1, "readable", mode=0o644).node
    shared = create(store, 1, "shared", mode=0o666).node
    setuid = create(store, 1, "setuid", mode=0o4777).node
    link = create(store, 1, "symlink", ftype=SYMLINK, target=b"/x").node
    assert private and readable and shared and setuid and link
    for node in (private, readable, setuid, link):
        assert errno_of(store, lambda t: name_ops.link(t, node.ino, 2, b"stolen", CAROL)) == errno.EPERM
    assert w(store, lambda t: name_ops.link(t, shared.ino, 2, b"shared", CAROL)).nlink == 2
    assert w(store, lambda t: name_ops.link(t, private.ino, 2, b"own", ALICE)).nlink == 2
    assert w(store, lambda t: name_ops.link(t, private.ino, 2, b"root", ROOT)).nlink == 3
    assert inode(store, private.ino).nlink == 3  # type: ignore[union-attr]


# ------------------------------------------------------------------ rename


def rename(store: FileMetaStore, sp: int, sn: str, dp: int, dn: str, *, flags: int = 0,
           creds: pb.Creds = ALICE, src_guard: DirGuard = NO_GUARD, dst_guard: DirGuard = NO_GUARD) -> None:
    w(store, lambda t: name_ops.rename_local(
        t, sp, encode_name(sn), dp, encode_name(dn), flags=flags, creds=creds, src_guard=src_guard,
        dst_guard=dst_guard, owners={}, txid="r1"))


def rename_errno(store: FileMetaStore, *args: Any, **kw: Any) -> int:
    with pytest.raises(FsError) as ei:
        rename(store, *args, **kw)
    return ei.value.errno


def entry(store: FileMetaStore, parent: int, name: str) -> tuple[int, int] | None:
    return r(store, lambda t: t.entry(parent, encode_name(name)))


def test_rename_local(store: FileMetaStore) -> None:
    a = create(store, 1, "a", data=b"A").node
    b = create(store, 1, "b", data=b"B").node
    assert a and b
    rename(store, 1, "a", 2, "moved")
    assert entry(store, 1, "a") is None and entry(store, 2, "moved") == (a.ino, REGULAR)
    # replacing a file drops the replaced inode (once)
    rename(store, 2, "moved", 1, "b")
    assert entry(store, 1, "b") == (a.ino, REGULAR) and inode(store, b.ino) is None
    assert entry(store, 2, "moved") is None
    # same name: no-op; NOREPLACE onto itself: EEXIST as Linux
    rename(store, 1, "b", 1, "b")
    assert entry(store, 1, "b") == (a.ino, REGULAR)
    assert rename_errno(store, 1, "b", 1, "b", flags=1) == errno.EEXIST
    c = create(store, 1, "c").node
    assert c is not None
    assert rename_errno(store, 1, "b", 1, "c", flags=1) == errno.EEXIST
    assert rename_errno(store, 1, "b", 1, "c", flags=3) == errno.EINVAL  # NOREPLACE|EXCHANGE
    assert rename_errno(store, 1, "b", 1, "c", flags=8) == errno.EINVAL
    assert rename_errno(store, 1, "nope", 1, "c") == errno.ENOENT
    w(store, lambda t: name_ops.reserve_dir(t, 1, b"dir", 300))
    assert rename_errno(store, 1, "b", 1, "dir") == errno.EISDIR
    assert rename_errno(store, 1, "dir", 1, "x") == errno.EINVAL
    w(store, lambda t: name_ops.seal_dir(t, 60))
    assert rename_errno(store, 1, "b", 60, "x") == errno.ENOENT
    # hard links to one inode: rename does nothing
    w(store, lambda t: name_ops.link(t, c.ino, 1, b"c2", ROOT))
    rename(store, 1, "c", 1, "c2")
    assert entry(store, 1, "c") == entry(store, 1, "c2") == (c.ino, REGULAR)
    cn = inode(store, c.ino)
    assert cn is not None and cn.nlink == 2


def test_rename_sticky(store: FileMetaStore) -> None:
    create(store, 1, "a", creds=ALICE)
    create(store, 2, "b", creds=BOB)
    sticky = DirGuard(True, 0)
    assert rename_errno(store, 1, "a", 2, "x", creds=CAROL, src_guard=sticky) == errno.EPERM
    assert rename_errno(store, 1, "a", 2, "b", creds=ALICE, dst_guard=sticky) == errno.EPERM
    rename(store, 1, "a", 2, "b", creds=ALICE, src_guard=sticky, dst_guard=DirGuard(True, 1000))


# ------------------------------------------------- cross-shard pieces


def test_remote_link_is_idempotent(store: FileMetaStore) -> None:
    old = create(store, 1, "dst").node
    assert old is not None
    moving = (7 + 1) << 40 | 1  # lives on another shard

    def remote(txid: str, **kw: Any) -> int:
        args = {"ino": moving, "ftype": REGULAR, "replace": True, "no_replace": False} | kw
        return w(store, lambda t: name_ops.remote_link(t, 1, b"dst", txid=txid, **args))

    assert remote("x1") == old.ino
    assert inode(store, old.ino) is None  # the replaced inode lost its only link
    assert remote("x1") == old.ino  # replay: same answer, no second effect
    assert entry(store, 1, "dst") == (moving, REGULAR)
    assert remote("x2", ino=moving) == moving  # already there: nothing changes
    with pytest.raises(FsError) as ei:
        remote("x3", ino=moving + 1, no_replace=True)
    assert ei.value.errno == errno.EEXIST
    with pytest.raises(FsError) as ei:
        remote("x3b", ino=moving + 1, replace=False)
    assert ei.value.errno == errno.EEXIST
    # a replaced inode that lives elsewhere is owed its lost link
    assert remote("x4", ino=moving + 1) == moving
    assert [(i.txid, i.ino, i.delta) for i in r(store, lambda t: t.outbox(10))] == [("x4/replaced", moving, -1)]
    w(store, lambda t: name_ops.reserve_dir(t, 1, b"d", 55))
    assert errno_of(store, lambda t: name_ops.remote_link(
        t, 1, b"d", ino=moving, ftype=REGULAR, replace=True, no_replace=False, txid="x5")) == errno.EISDIR
    w(store, lambda t: name_ops.seal_dir(t, 66))
    assert errno_of(store, lambda t: name_ops.remote_link(
        t, 66, b"n", ino=moving, ftype=REGULAR, replace=True, no_replace=False, txid="x6")) == errno.ENOENT


def test_adjust_nlink_is_idempotent(store: FileMetaStore) -> None:
    node = create(store, 1, "f").node
    assert node is not None
    assert w(store, lambda t: name_ops.adjust_nlink(t, node.ino, 1, "a")).nlink == 2
    assert w(store, lambda t: name_ops.adjust_nlink(t, node.ino, 1, "a")).nlink == 2
    assert w(store, lambda t: name_ops.adjust_nlink(t, node.ino, -1, "b")).nlink == 1
    assert w(store, lambda t: name_ops.adjust_nlink(t, node.ino, -1, "c")).nlink == 0
    assert inode(store, node.ino) is None
    replay = w(store, lambda t: name_ops.adjust_nlink(t, node.ino, -1, "c"))
    assert replay.nlink == 0 and replay.ino == node.ino
    assert errno_of(store, lambda t: name_ops.adjust_nlink(t, node.ino, -1, "d")) == errno.ENOENT
    # records are forgotten on the sender's word only, never by age
    assert r(store, lambda t: t.applied(APPLIED_NLINK, "a")) is not None
    assert w(store, lambda t: t.forget_applied(APPLIED_NLINK, ["a", "b", "never-sent"])) == 2
    assert r(store, lambda t: t.applied(APPLIED_NLINK, "a")) is None
    assert r(store, lambda t: t.applied(APPLIED_NLINK, "c")) is not None


def test_rename_intent_locks_the_source(store: FileMetaStore) -> None:
    node = create(store, 1, "src").node
    assert node is not None
    intent = w(store, lambda t: name_ops.begin_rename(
        t, 1, b"src", 2, "dst", flags=0, creds=ALICE, guard=NO_GUARD, owners={}, txid="T", expect_ino=0))
    assert (intent.kind, intent.ino, intent.dst_name) == ("rename", node.ino, "dst")
    assert r(store, lambda t: t.intents()) == [intent]
    with pytest.raises(FsError) as ei:
        unlink(store, 1, "src")
    assert ei.value.errno == errno.EAGAIN
    assert rename_errno(store, 1, "src", 1, "other") == errno.EAGAIN
    assert errno_of(store, lambda t: name_ops.begin_rename(
        t, 1, b"src", 3, "x", flags=0, creds=ALICE, guard=NO_GUARD, owners={}, txid="T2", expect_ino=0)) == errno.EAGAIN
    w(store, lambda t: name_ops.finish_rename(t, intent, 0, 7))
    assert entry(store, 1, "src") is None and r(store, lambda t: t.intents()) == []
    # the destination shard is owed the word that "T" is never sent again
    assert r(store, lambda t: t.confirms(10)) == [(APPLIED_REMOTE_LINK, "T", 7)]
    w(store, lambda t: name_ops.finish_rename(t, intent, 0, 7))  # replay is harmless
    # a refused rename leaves the source in place
    create(store, 1, "src2")
    i2 = w(store, lambda t: name_ops.begin_rename(
        t, 1, b"src2", 2, "dst", flags=0, creds=ALICE, guard=NO_GUARD, owners={}, txid="T3", expect_ino=0))
    w(store, lambda t: name_ops.drop_intent(t, i2))
    assert entry(store, 1, "src2") is not None and r(store, lambda t: t.intents()) == []
    assert errno_of(store, lambda t: name_ops.begin_rename(
        t, 1, b"nope", 2, "dst", flags=0, creds=ALICE, guard=NO_GUARD, owners={}, txid="T4", expect_ino=0)) == errno.ENOENT


def test_remote_link_applies_only_onto_the_target_the_rename_expected(store: FileMetaStore) -> None:
    moving = (700 + 1) << 40 | 1
    other = create(store, 66, "t").node
    assert other is not None

    def link(txid: str, expect: int, record: bool = False) -> int | None:
        return w(store, lambda t: name_ops.remote_link(t, 66, b"t", ino=moving, ftype=REGULAR, replace=True,
                                                       no_replace=False, txid=txid, expect_ino=expect,
                                                       record_refusal=record))

    assert link("r1", 0) is None                   # expected no entry, there is one: nothing changes
    assert entry(store, 66, "t") == (other.ino, REGULAR)
    assert link("r2", 999, record=True) is None    # a roll-forward's refusal is recorded ...
    assert link("r2", other.ino) is None           # ... so the same txid stays refused
    assert entry(store, 66, "t") == (other.ino, REGULAR)
    assert link("r3", other.ino) == other.ino      # the expected target: replaced
    assert entry(store, 66, "t") == (moving, REGULAR)
    assert link("r3", 12345) == other.ino          # a replay answers as then, whatever is there now


def test_link_intent(store: FileMetaStore) -> None:
    far = (500 + 1) << 40 | 3
    intent = w(store, lambda t: name_ops.begin_link(t, far, 1, b"new", "L"))
    with pytest.raises(FsError) as ei:
        create(store, 1, "new")
    assert ei.value.errno == errno.EAGAIN  # the name is reserved for the link
    assert w(store, lambda t: name_ops.finish_link(t, intent, SYMLINK, 3)) == 0
    assert entry(store, 1, "new") == (far, SYMLINK)
    assert w(store, lambda t: name_ops.finish_link(t, intent, SYMLINK, 3)) == 0  # replay: already done
    assert errno_of(store, lambda t: name_ops.begin_link(t, far, 1, b"new", "L2")) == errno.EEXIST
    # the name got taken while the intent was lost: the extra link is given back
    i3 = w(store, lambda t: name_ops.begin_link(t, far, 1, b"n3", "L3"))
    w(store, lambda t: t.put_entry(1, b"n3", 12, DIRECTORY))
    assert w(store, lambda t: name_ops.finish_link(t, i3, REGULAR, 3)) == errno.EEXIST
    assert [(i.txid, i.delta) for i in r(store, lambda t: t.outbox(10))] == [("L3/undo", -1)]
    # a pending link counts as an entry when the dir server asks to seal
    i4 = w(store, lambda t: name_ops.begin_link(t, far, 20, b"n4", "L4"))
    assert not w(store, lambda t: name_ops.seal_dir(t, 20))
    w(store, lambda t: name_ops.drop_intent(t, i4))
    assert w(store, lambda t: name_ops.seal_dir(t, 20))


# -------------------------------------------------- reservations and seals


def test_dir_reservations_and_seals(store: FileMetaStore) -> None:
    w(store, lambda t: name_ops.reserve_dir(t, 1, b"d", 42))
    w(store, lambda t: name_ops.reserve_dir(t, 1, b"d", 42))  # idempotent by ino
    assert errno_of(store, lambda t: name_ops.reserve_dir(t, 1, b"d", 43)) == errno.EEXIST
    create(store, 1, "f")
    assert errno_of(store, lambda t: name_ops.reserve_dir(t, 1, b"f", 44)) == errno.EEXIST
    ino, ftype, node, _ = r(store, lambda t: file_ops.lookup_file(t, 1, b"d", True))
    assert (ino, ftype, node) == (42, DIRECTORY, None)
    w(store, lambda t: name_ops.release_dir(t, 1, b"d", 43))  # someone else's ino: untouched
    assert entry(store, 1, "d") == (42, DIRECTORY)
    w(store, lambda t: name_ops.release_dir(t, 1, b"f", 44))  # a file: untouched
    assert entry(store, 1, "f") is not None
    w(store, lambda t: name_ops.release_dir(t, 1, b"d", 42))
    w(store, lambda t: name_ops.release_dir(t, 1, b"d", 42))
    assert entry(store, 1, "d") is None
    # seal: refuses when this shard has entries, idempotent otherwise
    assert not w(store, lambda t: name_ops.seal_dir(t, 1))
    assert not r(store, lambda t: t.is_sealed(1))
    assert w(store, lambda t: name_ops.seal_dir(t, 2))
    assert w(store, lambda t: name_ops.seal_dir(t, 2))
    assert errno_of(store, lambda t: name_ops.reserve_dir(t, 2, b"x", 45)) == errno.ENOENT
    w(store, lambda t: name_ops.unseal_dir(t, 2))
    w(store, lambda t: name_ops.unseal_dir(t, 2))
    create(store, 2, "now-ok")
    # an entry of dir 3 must not make dir 2 look non-empty, nor the other way round
    assert w(store, lambda t: name_ops.seal_dir(t, 3))


# ---------------------------------------------------------------- listing


def test_list_files_pages_by_prefix(store: FileMetaStore) -> None:
    names = [f"n{i:05d}" for i in range(2500)]

    def fill(t: ShardTxn) -> None:
        for n in names:
            t.put_entry(7, n.encode(), 100, REGULAR)
        for n in ("a", "zz"):
            t.put_entry(6, n.encode(), 101, REGULAR)
            t.put_entry(8, n.encode(), 102, REGULAR)

    w(store, fill)
    seen: list[str] = []
    after = b""
    while True:
        entries, nodes, more = r(store, lambda t: name_ops.list_files(t, 7, after, 1000, False))
        assert nodes == []
        seen += [n.decode() for n, _, _ in entries]
        if not more:
            break
        after = entries[-1][0]
    assert seen == names
    entries, _, more = r(store, lambda t: name_ops.list_files(t, 7, b"", 0, False))
    assert len(entries) == 1000 and more
    entries, _, more = r(store, lambda t: name_ops.list_files(t, 7, b"n02498", 5, False))
    assert [e[0] for e in entries] == [b"n02499"] and not more
    entries, _, more = r(store, lambda t: name_ops.list_files(t, 7, b"", 99999, False))
    assert len(entries) == 2500 and not more  # capped at 10000
    entries, _, more = r(store, lambda t: name_ops.list_files(t, 9, b"", 10, False))
    assert entries == [] and not more
    entries, _, more = r(store, lambda t: name_ops.list_files(t, 8, b"", 1, False))
    assert entries == [(b"a", 102, REGULAR)] and more


def test_list_files_with_attrs(store: FileMetaStore) -> None:
    f = create(store, 5, "file").node
    assert f is not None
    w(store, lambda t: name_ops.reserve_dir(t, 5, b"dir", 9))
    w(store, lambda t: t.put_entry(5, b"remote", (30 + 1) << 40 | 1, REGULAR))
    entries, nodes, more = r(store, lambda t: name_ops.list_files(t, 5, b"", 10, True))
    assert [e[0] for e in entries] == [b"dir", b"file", b"remote"] and not more
    assert nodes[0] is None and nodes[1] == f and nodes[2] is None


# ------------------------------------------------------------------ xattrs


def test_xattrs(store: FileMetaStore) -> None:
    node = create(store, 1, "f", mode=0o640).node
    assert node is not None
    ino = node.ino

    def setx(name: str, value: bytes, flags: int = 0, creds: pb.Creds = ALICE) -> None:
        w(store, lambda t: xattr_ops.set_xattr(t, ino, name, value, flags, creds))

    def err(fn: Callable[[ShardTxn], Any]) -> int:
        return errno_of(store, fn)

    setx("user.a", b"1")
    setx("user.b", b"")
    assert r(store, lambda t: xattr_ops.get_xattr(t, ino, "user.a", ALICE)) == b"1"
    assert r(store, lambda t: xattr_ops.get_xattr(t, ino, "user.b", BOB)) == b""  # group may read
    assert r(store, lambda t: xattr_ops.list_xattr(t, ino, ALICE)) == ["user.a", "user.b"]
    assert err(lambda t: xattr_ops.get_xattr(t, ino, "user.zz", ALICE)) == errno.ENODATA
    assert err(lambda t: xattr_ops.set_xattr(t, ino, "user.a", b"2", 1, ALICE)) == errno.EEXIST
    assert err(lambda t: xattr_ops.set_xattr(t, ino, "user.c", b"2", 2, ALICE)) == errno.ENODATA
    setx("user.a", b"2", 2)
    assert err(lambda t: xattr_ops.set_xattr(t, ino, "", b"2", 0, ALICE)) == errno.ERANGE
    assert err(lambda t: xattr_ops.set_xattr(t, ino, "u" * 256, b"2", 0, ALICE)) == errno.ERANGE
    assert err(lambda t: xattr_ops.set_xattr(t, ino, "user.big", b"x" * 65537, 0, ALICE)) == errno.E2BIG
    setx("user.max", b"x" * 65536)
    assert err(lambda t: xattr_ops.set_xattr(t, ino, "user.a", b"2", 0, BOB)) == errno.EACCES  # needs write
    assert err(lambda t: xattr_ops.get_xattr(t, ino, "user.a", CAROL)) == errno.EACCES
    assert err(lambda t: xattr_ops.remove_xattr(t, ino, "user.a", BOB)) == errno.EACCES
    assert err(lambda t: xattr_ops.set_xattr(t, ino, "trusted.a", b"2", 0, ALICE)) == errno.EPERM
    assert err(lambda t: xattr_ops.set_xattr(t, ino, "security.a", b"2", 0, ALICE)) == errno.EPERM
    assert err(lambda t: xattr_ops.set_xattr(t, ino, "x.a", b"2", 0, ALICE)) == errno.EOPNOTSUPP
    setx("trusted.t", b"t", creds=ROOT)
    setx("security.s", b"s", creds=ROOT)
    assert r(store, lambda t: xattr_ops.get_xattr(t, ino, "security.s", CAROL)) == b"s"
    assert err(lambda t: xattr_ops.get_xattr(t, ino, "trusted.t", ALICE)) == errno.ENODATA
    assert "trusted.t" not in r(store, lambda t: xattr_ops.list_xattr(t, ino, CAROL))
    assert "trusted.t" in r(store, lambda t: xattr_ops.list_xattr(t, ino, ROOT))
    w(store, lambda t: xattr_ops.remove_xattr(t, ino, "user.a", ROOT))
    assert err(lambda t: xattr_ops.remove_xattr(t, ino, "user.a", ALICE)) == errno.ENODATA
    assert err(lambda t: xattr_ops.get_xattr(t, ino + 1, "user.a", ALICE)) == errno.ENOENT


# ------------------------------------------------------------ stats, size


def test_stats(store: FileMetaStore) -> None:
    create(store, 1, "a", data=b"12345")
    create(store, 1, "b", data=b"")
    w(store, lambda t: name_ops.reserve_dir(t, 1, b"d", 8))
    assert r(store, name_ops.stats) == {"files": 2, "dentries": 3, "inline_bytes": 5, "logical_bytes": 5}


def test_durable_store_survives_reopen(tmp_path: Any) -> None:
    path = str(tmp_path / "durable")
    s = FileMetaStore(path)
    node = s.write_now(lambda t: file_ops.create_file(
        t, parent=1, raw=b"keep", partition=0, mode=0o644, ftype=REGULAR, target=b"", exclusive=True,
        truncate=False, creds=ALICE, data=b"kept", inline_threshold=THRESHOLD)).node
    s.close()
    s = FileMetaStore(path)
    try:
        with s.read() as t:
            assert file_ops.lookup_file(t, 1, b"keep", True)[3] == b"kept"
        nxt = s.write_now(lambda t: t.allocate_ino(0))
        assert nxt == node.ino + 1  # the partition counter is persistent
    finally:
        s.close()


def test_footprint_of_empty_files(tmp_path: Any) -> None:
    """Loose guard on bytes per empty file; superfs.shard.footprint reports the exact number."""
    s = FileMetaStore(str(tmp_path / "fp"), durable=False)
    try:
        base = s.db_bytes()
        n = 20000

        def fill(t: ShardTxn, start: int) -> None:
            for i in range(start, start + 2000):
                file_ops.create_file(t, parent=2 + i % 20, raw=f"file-{i:08d}.jpg".encode(), partition=i % 64,
                                     mode=0o644, ftype=REGULAR, target=b"", exclusive=True, truncate=False,
                                     creds=ALICE, data=b"", inline_threshold=THRESHOLD)

        for start in range(0, n, 2000):
            s.write_now(lambda t, start=start: fill(t, start))
        per_file = (s.db_bytes() - base) / n
        assert per_file < 400, per_file
    finally:
        s.close()
