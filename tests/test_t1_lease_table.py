"""The dir server's lease bookkeeping as a pure state machine (superfs/dirserver/lease_table.py)."""
from __future__ import annotations

from superfs.dirserver.lease_table import Grant, LeaseTable, Recall, Want

A, B, C = b"a" * 16, b"b" * 16, b"c" * 16
D = 42


def table() -> LeaseTable:
    return LeaseTable(base=100, cap_ttl_s=30.0)


def test_an_exclusive_lease_is_granted_alone_and_recalled_for_any_other_use() -> None:
    t = table()
    assert t.decide(D, A, Want.EXCLUSIVE, 0.0) == Grant(100, fence=False)
    assert t.mode_of(D, A) == Want.EXCLUSIVE
    for want in Want:
        assert t.decide(D, B, want, 1.0) == Recall(frozenset({A})), want
    assert t.decide(D, A, Want.WRITE, 1.0) == Grant(100, fence=False)  # its own uses never conflict
    t.release(D, A)
    assert t.decide(D, B, Want.READ, 2.0) == Grant(100, fence=False)


def test_shared_leases_coexist_and_give_way_to_a_writer() -> None:
    t = table()
    assert isinstance(t.decide(D, A, Want.SHARED, 0.0), Grant)
    assert isinstance(t.decide(D, B, Want.SHARED, 0.0), Grant)
    assert isinstance(t.decide(D, C, Want.READ, 0.0), Grant)
    assert t.decide(D, C, Want.WRITE, 0.0) == Recall(frozenset({A, B}))
    assert t.decide(D, A, Want.EXCLUSIVE, 0.0) == Recall(frozenset({B}))  # an upgrade recalls the others


def test_a_live_capability_of_someone_else_makes_an_exclusive_grant_fence() -> None:
    t = table()
    assert t.decide(D, B, Want.READ, 0.0) == Grant(100, fence=False)
    g = t.decide(D, A, Want.EXCLUSIVE, 1.0)
    assert g == Grant(101, fence=True)  # B's capability (epoch 100) is refused by the shards from now on
    assert t.epoch(D) == 101
    # a capability that has expired does not need a fence
    t2 = table()
    t2.decide(D, B, Want.WRITE, 0.0)
    assert t2.decide(D, A, Want.EXCLUSIVE, 31.0) == Grant(100, fence=False)
    # a shared lease only fences against writers
    t3 = table()
    t3.decide(D, B, Want.READ, 0.0)
    assert t3.decide(D, A, Want.SHARED, 1.0) == Grant(100, fence=False)
    assert t3.decide(D, C, Want.WRITE, 1.0) == Recall(frozenset({A}))  # A caches: it must let go first
    t3.release(D, A)
    assert t3.decide(D, C, Want.WRITE, 1.0) == Grant(100, fence=False)
    assert t3.decide(D, A, Want.SHARED, 2.0) == Grant(101, fence=True)


def test_a_revoked_holder_is_fenced_off_and_forgotten() -> None:
    t = table()
    t.decide(D, A, Want.EXCLUSIVE, 0.0)
    t.decide(D + 1, A, Want.SHARED, 0.0)
    assert t.held_by(A) == {D, D + 1}
    assert t.revoke(D, A) == 101
    assert t.mode_of(D, A) is None and t.held_by(A) == {D + 1}
    assert t.decide(D, B, Want.EXCLUSIVE, 1.0) == Grant(101, fence=False)


def test_idle_directories_are_forgotten_unless_fenced() -> None:
    t = table()
    t.decide(D, A, Want.READ, 0.0)
    t.decide(D + 1, A, Want.EXCLUSIVE, 0.0)
    t.revoke(D + 1, A)  # fenced: its epoch must outlive the bookkeeping
    assert t.forget_idle(31.0) == 1
    assert D not in t.dirs and t.epoch(D + 1) == 101
