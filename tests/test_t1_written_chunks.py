"""Tier 1: which chunks of a file were written, as the shard records them (issue 13, item 8).

The chunk-range algebra (superfs/chunkranges.py), the inode record's format
(old records still read, as "unknown"), and what each operation does to the
record: the move to chunks, SetSize reports, shrinks, and a report from a
writer whose view predates a shrink.
"""
from __future__ import annotations

import errno
import stat
import struct
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from superfs import chunkranges
from superfs.errors import FsError
from superfs.shard import file_ops
from superfs.shard.records import CHUNKED_HEAD, INODE_HEAD, SERVER_ID, Inode, encode_name
from superfs.shard.store import FileMetaStore, ShardTxn
from superfs.v1 import superfs_pb2 as pb

ALICE = pb.Creds(uid=1000, gid=1000)
CS = 1024
UNKNOWN, SUPERSET, EXACT = pb.WRITTEN_UNKNOWN, pb.WRITTEN_SUPERSET, pb.WRITTEN_EXACT


# ------------------------------------------------------------------ ranges

def test_ranges_merge_cut_and_cover() -> None:
    assert chunkranges.of_bytes(0, 1, CS) == (0, 1)
    assert chunkranges.of_bytes(CS - 1, 2, CS) == (0, 2)
    assert chunkranges.of_bytes(5 * CS, CS, CS) == (5, 6)
    assert chunkranges.chunks_below(0, CS) == 0 and chunkranges.chunks_below(CS + 1, CS) == 2
    assert chunkranges.normalize([(5, 6), (0, 2), (2, 3), (9, 9), (1, 4)]) == ((0, 4), (5, 6))
    rs, coarse = chunkranges.add(((0, 2),), [(4, 5), (2, 3)])
    assert rs == ((0, 3), (4, 5)) and not coarse
    assert chunkranges.cut(rs, 4) == ((0, 3),) and chunkranges.cut(rs, 2) == ((0, 2),)
    assert chunkranges.cut(rs, 0) == ()
    assert [chunkranges.covers(rs, i) for i in range(6)] == [True, True, True, False, True, False]
    assert not chunkranges.covers((), 0)


def test_ranges_past_the_limit_fill_the_smallest_gaps() -> None:
    scattered = [(10 * i, 10 * i + 1) for i in range(5)] + [(41, 42)]  # gaps of 9, and one of 0 at 40..41
    rs, coarse = chunkranges.add((), scattered, limit=4)
    assert coarse and len(rs) == 4
    for a, b in scattered:  # a superset: nothing written is ever left out
        assert all(chunkranges.covers(rs, i) for i in range(a, b))


# ------------------------------------------------------------------ records

def test_records_keep_the_ranges_and_old_records_read_as_unknown() -> None:
    node = Inode(7, stat.S_IFREG | 0o644, 1, 1000, 1000, 5 * CS, 1, 2, 3, 9, inline=False, chunk_size=CS,
                 layout=(1, 2), written=((0, 2), (4, 5)), written_state=EXACT, cut_generation=6)
    assert Inode.unpack(7, node.pack()) == node
    node.written_state = SUPERSET
    assert Inode.unpack(7, node.pack()) == node
    node.repair_generation = 11   # after the ranges, with a flag of its own
    assert Inode.unpack(7, node.pack()) == node
    node.written_state = UNKNOWN
    node.written, node.cut_generation = (), 0
    assert Inode.unpack(7, node.pack()) == node
    node.repair_generation = 0
    node.written, node.written_state, node.cut_generation = ((0, 2), (4, 5)), SUPERSET, 6
    # a record from before the ranges existed: the same bytes an unknown one packs to
    old = INODE_HEAD.pack(node.mode, 1, 1000, 1000, 5 * CS, 1, 2, 3, 9, 0) + CHUNKED_HEAD.pack(CS, 2) + \
        SERVER_ID.pack(1) + SERVER_ID.pack(2)
    back = Inode.unpack(7, old)
    assert (back.written_state, back.written, back.layout) == (UNKNOWN, (), (1, 2))
    assert Inode(7, node.mode, 1, 1000, 1000, 5 * CS, 1, 2, 3, 9, inline=False, chunk_size=CS,
                 layout=(1, 2)).pack() == old
    # and code that predates them reads a new record's head and layout unchanged
    mode, *_, flags = INODE_HEAD.unpack_from(node.pack())
    assert mode == node.mode and not flags & 1
    assert struct.unpack_from("<IH", node.pack(), INODE_HEAD.size) == (CS, 2)


# --------------------------------------------------------------- operations

@pytest.fixture
def store(tmp_path: Path) -> Iterator[FileMetaStore]:
    s = FileMetaStore(str(tmp_path / "shard"), durable=False)
    yield s
    s.close()


def w(store: FileMetaStore, fn: Callable[[ShardTxn], Any]) -> Any:
    return store.write_now(fn)


def chunked(store: FileMetaStore, data: bytes) -> Inode:
    """A file created with ``data`` inline, then moved to 1 KiB chunks."""
    node = w(store, lambda t: file_ops.create_file(
        t, parent=1, raw=encode_name(f"f{len(data)}"), partition=3, mode=0o644, ftype=pb.REGULAR, target=b"",
        exclusive=True, truncate=False, creds=ALICE, data=data, inline_threshold=65536)).node
    return w(store, lambda t: file_ops.convert_to_chunked(t, node.ino, creds=ALICE, layout=[1, 2],
                                                          expect_generation=node.generation, chunk_size=CS))


def set_size(store: FileMetaStore, node: Inode, size: int, written: list[tuple[int, int]] | None,
             seen: int | None = None) -> Inode:
    gen = node.generation if seen is None else seen
    return w(store, lambda t: file_ops.set_size(t, node.ino, size=size, mtime_ns=0, creds=ALICE, written=written,
                                                seen_generation=gen))


def shrink(store: FileMetaStore, node: Inode, size: int) -> Inode:
    out, _ = w(store, lambda t: file_ops.set_attr(t, node.ino, mask=file_ops.SET_SIZE, mode=0, uid=0, gid=0,
                                                  size=size, atime_ns=0, mtime_ns=0, creds=ALICE,
                                                  inline_threshold=65536))
    return out


def test_after_fsck_fenced_a_file_an_older_writer_cannot_grow_it(store: FileMetaStore) -> None:
    node = chunked(store, b"x" * 100)
    old_view = node.generation
    with pytest.raises(FsError) as e:   # the file changed since fsck's scan: no fence
        w(store, lambda t: file_ops.fence_writers(t, node.ino, size=node.size + 1, generation=node.generation))
    assert e.value.errno == errno.ESTALE
    fenced = w(store, lambda t: file_ops.fence_writers(t, node.ino, size=node.size, generation=node.generation))
    assert fenced.repair_generation == fenced.generation > old_view
    with pytest.raises(FsError) as e:   # pushed before the fence: growing over cut bytes is refused
        set_size(store, fenced, 4 * CS, [(1, 4)], seen=old_view)
    assert e.value.errno == errno.EIO
    assert set_size(store, fenced, 100, None, seen=old_view).size == 100   # not growing: nothing cut
    assert set_size(store, fenced, 4 * CS, [(1, 4)]).size == 4 * CS       # a writer that saw the fence


def test_the_move_to_chunks_records_the_chunks_the_inline_bytes_filled(store: FileMetaStore) -> None:
    assert (lambda n: (n.written, n.written_state))(chunked(store, b"x" * 2500)) == (((0, 3),), EXACT)
    assert (lambda n: (n.written, n.written_state))(chunked(store, b"")) == ((), EXACT)


def test_reports_extend_shrinks_cut_and_stale_reports_lose_exactness(store: FileMetaStore) -> None:
    node = chunked(store, b"x" * 100)
    node = set_size(store, node, 10 * CS, [(8, 10)])
    assert (node.written, node.written_state) == (((0, 1), (8, 10)), EXACT)
    node = set_size(store, node, 10 * CS, [(3, 4), (12, 20)])  # past the size: clamped to it
    assert node.written == ((0, 1), (3, 4), (8, 10))
    before = node.generation
    node = shrink(store, node, 3 * CS + 5)
    assert (node.written, node.written_state, node.cut_generation) == (((0, 1), (3, 4)), EXACT, node.generation)
    node = shrink(store, w(store, lambda t: t.require_inode(node.ino)), 6 * CS)  # growing cuts nothing
    assert node.written == ((0, 1), (3, 4))
    # a writer whose chunks were written from a view older than the cut: they may be gone, not exact
    node = set_size(store, node, 6 * CS, [(5, 6)], seen=before)
    assert (node.written, node.written_state) == (((0, 1), (3, 4), (5, 6)), SUPERSET)
    # down to nothing: known exactly again
    node = shrink(store, node, 0)
    assert (node.written, node.written_state) == ((), EXACT)
    node = set_size(store, node, CS, [(0, 1)])
    assert (node.written, node.written_state) == (((0, 1),), EXACT)


def test_a_client_that_reports_nothing_makes_the_record_unknown(store: FileMetaStore) -> None:
    node = set_size(store, chunked(store, b"x"), 4 * CS, None)
    assert (node.written, node.written_state) == ((), UNKNOWN)
    node = set_size(store, node, 5 * CS, [(4, 5)])  # still unknown: earlier chunks may hold bytes
    assert node.written_state == UNKNOWN
    node = shrink(store, node, 2 * CS)
    assert node.written_state == UNKNOWN
    assert shrink(store, node, 0).written_state == EXACT


def test_many_scattered_writes_coarsen_to_a_superset(store: FileMetaStore) -> None:
    node = set_size(store, chunked(store, b""), 1000 * CS, [(2 * i, 2 * i + 1) for i in range(100)])
    assert len(node.written) == chunkranges.MAX_RANGES and node.written_state == SUPERSET
    assert all(chunkranges.covers(node.written, 2 * i) for i in range(100))


def test_bad_reports_are_einval(store: FileMetaStore) -> None:
    node = chunked(store, b"x")
    for bad in ([(3, 3)], [(5, 2)], [(0, 1)] * (file_ops.MAX_REPORTED_RANGES + 1)):
        with pytest.raises(FsError) as e:
            set_size(store, node, CS, bad)
        assert e.value.errno == errno.EINVAL


def test_ranges_subtract() -> None:
    assert chunkranges.subtract(((0, 4), (6, 8)), (2, 3)) == ((0, 2), (3, 4), (6, 8))
    assert chunkranges.subtract(((0, 4),), (0, 4)) == ()
    assert chunkranges.subtract(((1, 2),), (5, 6)) == ((1, 2),)
