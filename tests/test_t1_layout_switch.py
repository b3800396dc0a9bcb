"""Tier 1: the pieces a chunk move is built of (issue 21, items 3 and 4).

The shard's compare-and-swap of a file's layout (superfs/shard/layout_ops.py),
a data server's write fence (superfs/dataserver/write_fences.py), the
placement plan of the mover (superfs/rebalance/plan.py) and the data
server states of the cluster map (superfs/dirserver/cluster_map.py).
"""
from __future__ import annotations

import errno
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from superfs import capability
from superfs.dataserver.write_fences import WriteFences
from superfs.dirserver import cluster_map
from superfs.errors import FsError
from superfs.shard import file_ops, layout_ops
from superfs.shard.records import Inode, encode_name
from superfs.shard.store import FileMetaStore, ShardTxn
from superfs.v1 import superfs_pb2 as pb

ALICE = pb.Creds(uid=1000, gid=1000)
CS = 1024


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FileMetaStore]:
    s = FileMetaStore(str(tmp_path / "shard"), durable=False)
    yield s
    s.close()


def w(store: FileMetaStore, fn: Callable[[ShardTxn], Any]) -> Any:
    return store.write_now(fn)


def chunked(store: FileMetaStore, name: str = "f") -> Inode:
    node = w(store, lambda t: file_ops.create_file(
        t, parent=1, raw=encode_name(name), partition=3, mode=0o644, ftype=pb.REGULAR, target=b"",
        exclusive=True, truncate=False, creds=ALICE, data=b"x" * 100, inline_threshold=65536)).node
    return w(store, lambda t: file_ops.convert_to_chunked(t, node.ino, creds=ALICE, layout=[1, 2],
                                                          expect_generation=node.generation, chunk_size=CS))


def switch(store: FileMetaStore, node: Inode, new: list[int], expect: list[int] | None = None,
           cut: int | None = None) -> Inode:
    return w(store, lambda t: layout_ops.switch_layout(
        t, node.ino, expect_layout=list(node.layout) if expect is None else expect,
        expect_cut_generation=node.cut_generation if cut is None else cut, layout=new))


def test_switch_replaces_the_layout_when_nothing_changed(store: FileMetaStore) -> None:
    node = chunked(store)
    out = switch(store, node, [1, 2, 3])
    assert out.layout == (1, 2, 3)
    with store.read() as t:
        assert t.require_inode(node.ino).layout == (1, 2, 3)


def test_switch_fails_cleanly_after_another_switch_a_shrink_or_an_unlink(store: FileMetaStore) -> None:
    node = chunked(store)
    switch(store, node, [1, 3])
    with pytest.raises(FsError) as e:  # the mover read [1, 2]: someone got there first
        switch(store, node, [2, 3])
    assert e.value.errno == errno.EAGAIN
    w(store, lambda t: file_ops.set_size(t, node.ino, size=5 * CS, mtime_ns=0, creds=ALICE, written=[(0, 5)],
                                         seen_generation=node.generation))
    with store.read() as t:
        now = t.require_inode(node.ino)
    w(store, lambda t: file_ops.set_attr(t, node.ino, mask=file_ops.SET_SIZE, mode=0, uid=0, gid=0, size=CS,
                                         atime_ns=0, mtime_ns=0, creds=ALICE, inline_threshold=65536))
    with pytest.raises(FsError) as e:  # a shrink since the mover read it: its copies may hold cut bytes
        switch(store, now, [1, 2])
    assert e.value.errno == errno.EAGAIN
    with store.read() as t:
        assert t.require_inode(node.ino).layout == (1, 3)


def test_switch_refuses_bad_layouts_and_inline_files(store: FileMetaStore) -> None:
    node = chunked(store)
    for bad in ([], [1, 1]):
        with pytest.raises(FsError) as e:
            switch(store, node, bad)
        assert e.value.errno == errno.EINVAL
    small = w(store, lambda t: file_ops.create_file(
        t, parent=1, raw=encode_name("small"), partition=3, mode=0o644, ftype=pb.REGULAR, target=b"",
        exclusive=True, truncate=False, creds=ALICE, data=b"x", inline_threshold=65536)).node
    with pytest.raises(FsError) as e:
        w(store, lambda t: layout_ops.switch_layout(t, small.ino, expect_layout=[], expect_cut_generation=0,
                                                    layout=[1]))
    assert e.value.errno == errno.EINVAL
    with pytest.raises(FsError) as e:
        w(store, lambda t: layout_ops.switch_layout(t, 999999, expect_layout=[1], expect_cut_generation=0,
                                                    layout=[1]))
    assert e.value.errno == errno.ENOENT


# ------------------------------------------------------------------ fences

def test_a_fence_refuses_capabilities_signed_before_its_hold_ends() -> None:
    secret = b"s" * 32
    fences = WriteFences()
    old = capability.sign_chunk(secret, ino=7, rights=6)
    fences.check(old, 7)  # no fence: anything valid goes
    fences.fence(7, hold_ns=2_000_000_000)
    with pytest.raises(FsError) as e:
        fences.check(old, 7)
    assert e.value.errno == errno.ESTALE
    fences.check(old, 8)  # other files are not fenced
    with pytest.raises(FsError):  # signed now, within the hold: still the old layout's
        fences.check(capability.sign_chunk(secret, ino=7, rights=6), 7)
    later = capability.sign_chunk(secret, ino=7, rights=6, ttl_ns=capability.CHUNK_CAP_TTL_NS + 3_000_000_000)
    fences.check(later, 7)  # as one signed after the hold (the switch) expires
    mover = capability.sign_chunk(secret, ino=7, rights=6)
    fences.fence(7, hold_ns=2_000_000_000, admit_mac=mover.mac)
    fences.check(mover, 7)  # the mover's own capability still writes (its copies)
    with pytest.raises(FsError):
        fences.check(old, 7)
    fences.fence(7, hold_ns=0)  # the mover switched: capabilities signed from now on go through
    fences.check(capability.sign_chunk(secret, ino=7, rights=6, ttl_ns=capability.CHUNK_CAP_TTL_NS + 1_000_000), 7)
    with pytest.raises(FsError) as e:
        fences.fence(7, hold_ns=-1)
    assert e.value.errno == errno.EINVAL


def test_fences_past_a_thousand_still_refuse_old_capabilities() -> None:
    """Pruning (over 1,024 fences) dropped every fence set with no hold, the one a mover sets
    after its switch: in a drain of that many files, writers with the old layout got through."""
    secret = b"s" * 32
    fences = WriteFences()
    old = {ino: capability.sign_chunk(secret, ino=ino, rights=6) for ino in range(1, 1101)}
    for ino in old:
        fences.fence(ino, hold_ns=0)   # each file switched: signed from now on goes through
    fences.fence(5000, hold_ns=0)      # one more: the prune runs
    for ino in (1, 500, 1100):
        with pytest.raises(FsError) as e:
            fences.check(old[ino], ino)
        assert e.value.errno == errno.ESTALE


def test_fences_restored_after_a_restart_hold_until_their_floor() -> None:
    secret = b"s" * 32
    a = WriteFences()
    floor = a.fence(7, hold_ns=1_000_000_000)
    b = WriteFences()   # the restarted server, given what the first kept on disk
    assert b.restore({7: (floor, b""), 8: (1, b"")}) == 1   # 8's floor passed long ago: dropped
    with pytest.raises(FsError):
        b.check(capability.sign_chunk(secret, ino=7, rights=6), 7)
    b.check(capability.sign_chunk(secret, ino=8, rights=6), 8)


# --------------------------------------------------------------- map states

def test_data_server_states_are_kept_across_a_re_registration() -> None:
    m = pb.ClusterMap(epoch=1, num_partitions=1, partition_shard=[0])
    assert cluster_map.register(m, "data", pb.ServerInfo(id=3, address="127.0.0.1:1"))
    m.data_servers[0].state = "draining"
    assert cluster_map.register(m, "data", pb.ServerInfo(id=3, address="127.0.0.1:2"))  # restarted elsewhere
    assert m.data_servers[0].state == "draining" and m.data_servers[0].address == "127.0.0.1:2"


# --------------------------------------------------------------------- plan

def _map(states: dict[int, str], r: int = 2) -> pb.ClusterMap:
    return pb.ClusterMap(replicas=r, data_servers=[pb.ServerInfo(id=i, address=f"h:{i}", state=s)
                                                   for i, s in states.items()])


def test_plan_moves_only_chunks_whose_placement_changes_and_keeps_r() -> None:
    from superfs import routing
    from superfs.rebalance import plan
    moves = plan.chunk_moves(7, range(200), [0, 1, 2], [0, 2], 2)
    assert moves and all(1 in m.old and 1 not in m.new and len(m.new) == 2 for m in moves)
    assert {m.index for m in moves} == {i for i in range(200) if 1 in routing.chunk_replicas(7, i, [0, 1, 2], 2)}
    grown = plan.chunk_moves(7, range(300), [0, 1], [0, 1, 2], 2)
    assert all(m.add == (2,) and len(m.drop) == 1 for m in grown)
    assert 150 < len(grown) < 250  # the new server ends with two thirds of the chunks, as the others


def test_plan_targets_states_and_shares() -> None:
    from superfs.rebalance import plan
    cmap = _map({0: "", 1: "draining", 2: "active", 3: "dead", 4: "removed"})
    assert plan.active(cmap) == [0, 2] and plan.readable(cmap) == {0, 1, 2}
    assert plan.drain_target([0, 1, 3], cmap, {}) == [0, 2]  # topped up to R with an active server
    assert plan.rebalance_target(cmap) == [0, 2]
    assert plan.within_tolerance({0: 100, 1: 109}, 0.1) and not plan.within_tolerance({0: 100, 1: 130}, 0.1)
    f = pb.FileInfo(attr=pb.Attr(ino=(5 << 40) | 1, size=10 * CS), inline=False, layout=[0, 3], chunk_size=CS,
                    written=[pb.ChunkRange(start=0, end=4)], written_state=pb.WRITTEN_EXACT)
    assert plan.chunk_indices(f) == [0, 1, 2, 3]
    assert plan.under_replicated(f, cmap) == 4  # every chunk has a copy on the dead server
    f.layout[:] = [0, 2]
    assert plan.under_replicated(f, cmap) == 0


def test_the_throttle_waits_for_the_bytes_beyond_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from superfs.rebalance import mover
    asked: list[float] = []

    async def sleep(s: float) -> None:
        asked.append(s)

    monkeypatch.setattr(mover.asyncio, "sleep", sleep)
    t = mover.Throttle(1.0)  # 1 MiB/s
    asyncio.run(t.take(3 << 20))
    assert len(asked) == 1 and 2.0 < asked[0] <= 3.0  # three MiB at once: wait out about three seconds
    asyncio.run(mover.Throttle(0).take(1 << 30))
    assert len(asked) == 1  # 0: unlimited


def test_the_mover_lease_is_held_by_one_at_a_time() -> None:
    from superfs.dirserver.mover_lease import MoverLease
    lease = MoverLease()
    assert lease.acquire("a", 30) and lease.acquire("a", 30)  # renewed
    assert not lease.acquire("b", 30) and lease.holder == "a"
    lease.release("b")  # not its holder: nothing
    assert lease.holder == "a"
    lease.release("a")
    assert lease.acquire("b", 30)
    lease.until = 0.0  # lapsed
    assert lease.acquire("a", 30) and lease.holder == "a"
    with pytest.raises(FsError) as e:
        lease.acquire("", 30)
    assert e.value.errno == errno.EINVAL
    kept = MoverLease(lease.record())   # a restarted dir server, from what the first one kept
    assert kept.holder == "a" and 29 < kept.expires_in() <= 30
    assert not kept.acquire("b", 30)
    lease.release("a")
    assert not MoverLease(lease.record()).holder   # given back: free after a restart too
    assert not MoverLease(b'{"holder": "a", "until_ns": 1}').holder   # lapsed long ago
