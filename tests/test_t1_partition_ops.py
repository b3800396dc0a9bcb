"""Tier 1: a partition's rows on a shard store (moving partitions), no network.

Export from one store and import into another gives byte-identical rows
(equal digests) for every per-partition key space and leaves other
partitions alone; drop removes exactly the partition's rows; a frozen
partition refuses every change in the store itself.
"""
from __future__ import annotations

import errno
from dataclasses import replace
from typing import Any

import pytest

from superfs.errors import FsError, is_misrouted
from superfs.routing import entry_partition
from superfs.shard import file_ops, name_ops, partition_ops, xattr_ops
from superfs.shard.name_ops import DirGuard
from superfs.shard.records import encode_name
from superfs.shard.store import FileMetaStore
from superfs.v1 import superfs_pb2 as pb

N = 16
ROOT = pb.Creds(uid=0, gid=0)
HOLDER = b"h" * 16


@pytest.fixture
def stores(tmp_path: Any) -> Any:
    a = FileMetaStore(str(tmp_path / "a"), durable=False)
    b = FileMetaStore(str(tmp_path / "b"), durable=False)
    for s in (a, b):
        s.num_partitions = N
    yield a, b
    a.close()
    b.close()


def _create(store: FileMetaStore, parent: int, name: str, data: bytes = b"x") -> int:
    p = entry_partition(parent, name, N)
    res = store.write_now(lambda t: file_ops.create_file(
        t, parent=parent, raw=encode_name(name), partition=p, mode=0o644, ftype=1, target=b"",
        exclusive=True, truncate=False, creds=ROOT, data=data, inline_threshold=4096))
    return int(res.node.ino)


def _fill(store: FileMetaStore) -> dict[int, list[str]]:
    """Files in every partition, with xattrs, a delegated range, a fence and a seal."""
    by_part: dict[int, list[str]] = {}
    for i in range(200):
        name = f"f{i}"
        ino = _create(store, 7, name, data=bytes([i % 251]) * (i * 37 % 4000))
        if i % 5 == 0:
            store.write_now(lambda t: xattr_ops.set_xattr(t, ino, "user.a", b"v%d" % i, 0, ROOT))
        by_part.setdefault(entry_partition(7, name, N), []).append(name)
    store.write_now(lambda t: t.delegate_inos(3, HOLDER, 100))
    store.write_now(lambda t: t.set_fence(7, 42))
    store.write_now(lambda t: name_ops.seal_dir(t, 99))
    return by_part


def _export_all(store: FileMetaStore, p: int, limit: int) -> list[tuple[str, bytes, bytes]]:
    rows: list[tuple[str, bytes, bytes]] = []
    db, after, more = "", b"", True
    while more:
        with store.read() as t:
            page, db, after, more = partition_ops.export_rows(t, p, N, db, after, limit)
        rows += page
    return rows


def _digest(store: FileMetaStore, p: int) -> tuple[int, bytes]:
    with store.read() as t:
        return partition_ops.digest_rows(t, p, N)


@pytest.mark.parametrize("limit", [1, 7, 10000])
def test_copy_is_byte_identical_and_only_that_partition(stores: Any, limit: int) -> None:
    a, b = stores
    _fill(a)
    for p in (3, 5):
        rows = _export_all(a, p, limit)
        assert len({(db, k) for db, k, _ in rows}) == len(rows)  # paging neither repeats nor skips
        b.write_now(lambda t: partition_ops.import_rows(t, rows, p, N))
        assert _digest(a, p) == _digest(b, p) and _digest(a, p)[0] > 0
    assert _digest(b, 4)[0] == 0  # nothing of another partition came along
    with b.read() as t:
        assert t.fence(7) == 42 and t.is_sealed(99)  # shared rows merged in
        assert t.last_seq(3) >= 100  # the counter came with partition 3, past its delegated range


def test_drop_removes_exactly_the_partition(stores: Any) -> None:
    a, _ = stores
    by_part = _fill(a)
    before = {p: _digest(a, p) for p in range(N)}
    n = a.write_now(lambda t: partition_ops.drop_rows(t, 3, N))
    assert n == before[3][0] and _digest(a, 3)[0] == 0
    assert all(_digest(a, p) == before[p] for p in range(N) if p != 3)
    with a.read() as t:
        assert t.fence(7) == 42 and t.is_sealed(99)  # shared rows stay
        for name in by_part.get(3, []):
            assert t.entry(7, encode_name(name)) is None


@pytest.mark.parametrize("limit", [1, 5, 64])
def test_drop_in_bounded_steps_removes_the_same_rows(stores: Any, limit: int) -> None:
    """A shard drops a big partition in short transactions: each step deletes at most ``limit``
    rows of the indexed tables, and the steps together delete what one full drop does."""
    a, _ = stores
    by_part = _fill(a)
    before = {p: _digest(a, p) for p in range(N)}
    p = max(by_part, key=lambda q: len(by_part[q]))
    total, steps = 0, 0
    while True:
        with a.read() as t:
            left = sum(1 for db in partition_ops.partition_index.CODES
                       for _ in partition_ops.partition_index.keys(t.txn, t.dbs, p, db, b""))
        k = a.write_now(lambda t: partition_ops.drop_rows(t, p, N, limit))
        assert k <= limit or left < limit   # the last step also takes the small tables
        total += k
        steps += 1
        if k < limit:
            break
    assert total == before[p][0] and _digest(a, p)[0] == 0
    assert steps > 1 or before[p][0] < limit
    assert all(_digest(a, q) == before[q] for q in range(N) if q != p)
    with a.read() as t:
        assert t.fence(7) == 42 and t.is_sealed(99)


def test_a_frozen_partition_refuses_every_change(stores: Any) -> None:
    a, _ = stores
    by_part = _fill(a)
    p = next(q for q, names in by_part.items() if len(names) >= 2)
    name = by_part[p][0]
    with a.read() as t:
        ino = t.entry(7, encode_name(name))[0]
    # work queued for the background (a freed file's chunks): its rows are the partition's too
    item = a.write_now(lambda t: t.add_reclaim(t.inode(ino), 0, freed=True))
    before = _digest(a, p)
    a.frozen = frozenset({p})
    attempts = [
        lambda t: file_ops.create_file(t, parent=7, raw=encode_name(f"{name}x"), partition=p, mode=0o644, ftype=1,
                                       target=b"", exclusive=True, truncate=False, creds=ROOT, data=b"",
                                       inline_threshold=4096),
        lambda t: name_ops.unlink(t, 7, encode_name(name), creds=ROOT, guard=DirGuard(), owners={}, txid="t1"),
        lambda t: file_ops.write_inline(t, ino, offset=0, data=b"new", truncate_to_end=False, creds=ROOT,
                                        inline_threshold=4096),
        lambda t: xattr_ops.set_xattr(t, ino, "user.b", b"1", 0, ROOT),
        lambda t: t.delegate_inos(p, HOLDER, 10),
        lambda t: t.allocate_ino(p),
        lambda t: t.delete_reclaim(item),                      # the background finishing it
        lambda t: t.unschedule_reclaim(0, item.key()),
        lambda t: t.update_reclaim(item, replace(item, layout=())),  # or postponing it
        lambda t: t.schedule_reclaim(item.key(), 1, 1),
    ]
    for fn in attempts:
        with pytest.raises(FsError) as e:
            a.write_now(fn)
        assert e.value.errno == errno.ESTALE and is_misrouted(e.value)
    assert _digest(a, p) == before
    a.frozen = frozenset()
    a.write_now(lambda t: t.allocate_ino(p))  # unfrozen: changes go through again


def test_import_refuses_rows_of_another_partition(stores: Any) -> None:
    a, b = stores
    _fill(a)
    rows = [r for r in _export_all(a, 3, 100) if r[0] == "dentries"]
    with pytest.raises(FsError) as e:
        b.write_now(lambda t: partition_ops.import_rows(t, rows, 4, N))
    assert e.value.errno == errno.EINVAL


# ---------------------------------------------------- the by_partition index


def _churn(store: FileMetaStore, names: list[str]) -> None:
    """Unlinks, renames, links and inline rewrites: every path that changes an indexed row."""
    g = DirGuard()
    for i, name in enumerate(names):
        raw = encode_name(name)
        if i % 4 == 0:
            store.write_now(lambda t: name_ops.unlink(t, 7, raw, creds=ROOT, guard=g, owners={}, txid=f"u{i}"))
        elif i % 4 == 1:
            store.write_now(lambda t: name_ops.rename_local(t, 7, raw, 8, encode_name(f"moved{i}"), flags=0,
                                                            creds=ROOT, src_guard=g, dst_guard=g, owners={},
                                                            txid=f"r{i}"))
        elif i % 4 == 2:
            ino = store.write_now(lambda t: t.entry(7, raw))[0]
            store.write_now(lambda t: name_ops.link(t, ino, 9, encode_name(f"link{i}"), ROOT))
            store.write_now(lambda t: file_ops.write_inline(t, ino, offset=0, data=b"y" * (i * 91 % 4000),
                                                            truncate_to_end=True, creds=ROOT,
                                                            inline_threshold=4096))


def _index_rows(store: FileMetaStore) -> list[bytes]:
    from superfs.shard import partition_index
    with store.read() as t, t.txn.cursor(db=t.dbs[partition_index.DB]) as cur:
        return [bytes(k) for k in cur.iternext(keys=True, values=False)]


def _scanned(store: FileMetaStore, p: int) -> list[tuple[str, bytes, bytes]]:
    """Partition p's rows found the old way, by scanning every table."""
    rows: list[tuple[str, bytes, bytes]] = []
    db, after, more = "", b"", True
    while more:
        with store.read() as t:
            t.index_n = 0
            page, db, after, more = partition_ops.export_rows(t, p, N, db, after, 10000)
        rows += page
    return rows


def test_the_index_kept_by_every_write_is_the_index_built_from_the_rows(stores: Any) -> None:
    from superfs.shard import partition_index
    a, _ = stores
    names = [n for ns in _fill(a).values() for n in ns]
    _churn(a, names)
    kept = _index_rows(a)
    assert len(kept) > 300
    a.write_now(lambda t: partition_index.build(t.txn, t.dbs, N))
    assert _index_rows(a) == kept   # not one entry missing or left over
    for p in range(N):
        assert _export_all(a, p, 10000) == _scanned(a, p)
    n = a.write_now(lambda t: partition_ops.drop_rows(t, 5, N))
    owned = [r for r in _scanned(a, 5) + _export_all(a, 5, 10000) if r[0] in partition_ops.OWNED_DBS]
    assert n > 0 and owned == []   # (rows every shard keeps, seals and fences, stay)
    assert [k for k in _index_rows(a) if k[:4] == (5).to_bytes(4, "big")] == []


def test_a_store_without_an_index_gets_one_when_it_learns_the_partition_count(tmp_path: Any) -> None:
    s = FileMetaStore(str(tmp_path / "old"), durable=False)   # as a store of the version before the index
    for i in range(60):
        _create(s, 7, f"f{i}", data=b"z" * i)
    assert s.index_n == 0 and _index_rows(s) == []
    s.num_partitions = N                                      # the shard saw the cluster map
    assert s.index_n == N
    for p in range(N):
        assert _export_all(s, p, 10000) == _scanned(s, p)
    s.close()
    s = FileMetaStore(str(tmp_path / "old"), durable=False)   # reopened: kept up from the first write
    assert s.index_n == N
    for i in range(60, 90):
        _create(s, 7, f"f{i}")
    s.num_partitions = N
    for p in range(N):
        assert _export_all(s, p, 10000) == _scanned(s, p)
    s.close()


def test_a_batch_step_keeps_the_freeze_and_the_index(stores: Any) -> None:
    """A batched operation runs in a nested transaction (shard/batch.py): a frozen partition must
    refuse it there too, and what it writes must be indexed."""
    from superfs.shard import partition_index
    a, _ = stores
    a.frozen = frozenset({3})
    names = {entry_partition(7, f"b{i}", N): f"b{i}" for i in range(200)}

    def create(t: Any, name: str) -> None:
        file_ops.create_file(t, parent=7, raw=encode_name(name), partition=entry_partition(7, name, N), mode=0o644,
                             ftype=1, target=b"", exclusive=True, truncate=False, creds=ROOT, data=b"d",
                             inline_threshold=4096)

    def steps(t: Any) -> None:
        for p, name in ((3, names[3]), (4, names[4])):
            child = a.lmdb.env.begin(write=True, parent=t.txn)
            try:
                if p == 3:
                    with pytest.raises(FsError) as e:
                        create(t.nested(child), name)
                    assert is_misrouted(e.value)
                else:
                    create(t.nested(child), name)
            finally:
                child.commit()

    a.write_now(steps)
    a.frozen = frozenset()
    with a.read() as t:
        assert t.entry(7, encode_name(names[3])) is None and t.entry(7, encode_name(names[4])) is not None
    kept = _index_rows(a)
    a.write_now(lambda t: partition_index.build(t.txn, t.dbs, N))
    assert _index_rows(a) == kept and len(kept) >= 2
