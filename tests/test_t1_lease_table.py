"""The dir server's lease bookkeeping as a pure state machine (superfs/dirserver/lease_table.py)."""
from __future__ import annotations

from superfs.dirserver.lease_table import Grant, LeaseTable, Recall, Want

A, B, C = b"a" * 16, b"b" * 16, b"c" * 16
D = 42


def dec(t: LeaseTable, *args: object) -> Grant | Recall | tuple[int, bool]:
    """A decision; a grant as (epoch, fence) (its number is checked where it matters)."""
    d = t.decide(*args)  # type: ignore[arg-type]
    return (d.epoch, d.fence) if isinstance(d, Grant) else d


def table() -> LeaseTable:
    return LeaseTable(base=100, cap_ttl_s=30.0)


def test_an_exclusive_lease_is_granted_alone_and_recalled_for_any_other_use() -> None:
    t = table()
    assert dec(t, D, A, Want.EXCLUSIVE, 0.0) == (100, False)
    assert t.mode_of(D, A) == Want.EXCLUSIVE
    for want in Want:
        assert dec(t, D, B, want, 1.0) == Recall(frozenset({A})), want
    assert dec(t, D, A, Want.WRITE, 1.0) == (100, False)  # its own uses never conflict
    t.release(D, A)
    assert dec(t, D, B, Want.READ, 2.0) == (100, False)


def test_shared_leases_coexist_and_give_way_to_a_writer() -> None:
    t = table()
    assert isinstance(t.decide(D, A, Want.SHARED, 0.0), Grant)
    assert isinstance(t.decide(D, B, Want.SHARED, 0.0), Grant)
    assert isinstance(t.decide(D, C, Want.READ, 0.0), Grant)
    assert dec(t, D, C, Want.WRITE, 0.0) == Recall(frozenset({A, B}))
    assert dec(t, D, A, Want.EXCLUSIVE, 0.0) == Recall(frozenset({B}))  # an upgrade recalls the others


def test_a_live_capability_of_someone_else_makes_an_exclusive_grant_fence() -> None:
    t = table()
    assert dec(t, D, B, Want.READ, 0.0) == (100, False)
    g = dec(t, D, A, Want.EXCLUSIVE, 1.0)
    assert g == (101, True)  # B's capability (epoch 100) is refused by the shards from now on
    assert t.epoch(D) == 101
    # a capability that has expired does not need a fence
    t2 = table()
    dec(t2, D, B, Want.WRITE, 0.0)
    assert dec(t2, D, A, Want.EXCLUSIVE, 31.0) == (100, False)
    # a shared lease only fences against writers
    t3 = table()
    dec(t3, D, B, Want.READ, 0.0)
    assert dec(t3, D, A, Want.SHARED, 1.0) == (100, False)
    assert dec(t3, D, C, Want.WRITE, 1.0) == Recall(frozenset({A}))  # A caches: it must let go first
    t3.release(D, A)
    assert dec(t3, D, C, Want.WRITE, 1.0) == (100, False)
    assert dec(t3, D, A, Want.SHARED, 2.0) == (101, True)


def test_a_revoked_holder_is_fenced_off_and_forgotten() -> None:
    t = table()
    dec(t, D, A, Want.EXCLUSIVE, 0.0)
    dec(t, D + 1, A, Want.SHARED, 0.0)
    assert t.held_by(A) == {D, D + 1}
    assert t.revoke(D, A) == 101
    assert t.mode_of(D, A) is None and t.held_by(A) == {D + 1}
    assert dec(t, D, B, Want.EXCLUSIVE, 1.0) == (101, False)


def test_idle_directories_are_forgotten_unless_fenced() -> None:
    t = table()
    dec(t, D, A, Want.READ, 0.0)
    dec(t, D + 1, A, Want.EXCLUSIVE, 0.0)
    t.revoke(D + 1, A)  # fenced: its epoch must outlive the bookkeeping
    assert t.forget_idle(31.0) == 1
    assert D not in t.dirs and t.epoch(D + 1) == 101


def test_a_recall_takes_back_only_the_grant_it_names() -> None:
    t = table()
    first = t.decide(D, A, Want.EXCLUSIVE, 0.0)
    assert isinstance(first, Grant) and first.number > 0
    t.release(D, A, first.number)
    second = t.decide(D, A, Want.EXCLUSIVE, 1.0)
    assert isinstance(second, Grant) and second.number > first.number
    t.release(D, A, first.number)  # a late answer to the first grant's recall
    assert t.mode_of(D, A) == Want.EXCLUSIVE
    t.release(D, A, second.number)
    assert t.mode_of(D, A) is None
    caps = t.decide(D, B, Want.READ, 2.0)
    assert isinstance(caps, Grant) and caps.number == 0
