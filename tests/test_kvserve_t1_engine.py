"""kvserve tier 1: pure bookkeeping (policies, tier index, allocator, expiring handles).

No memory, no network: these are the decisions every tier (and the replay
simulator) is built on, so they are tested on their own.
"""
from __future__ import annotations

import random

import pytest

from kvserve.allocator import ExtentAllocator
from kvserve.config import ServerConfig, config_from_mapping, parse_size
from kvserve.leases import TtlTable
from kvserve.policy import LruPolicy, S3FifoPolicy, make_policy
from kvserve.tier_index import TierIndex

# ------------------------------------------------------------------ policies


def test_lru_evicts_least_recently_used() -> None:
    p: LruPolicy[str] = LruPolicy()
    for k in "abcd":
        p.insert(k, 1)
    p.access("a")
    assert [p.victim(), p.victim()] == ["b", "c"]
    p.remove("d")
    assert p.victim() == "a"
    assert p.victim() is None and len(p) == 0


def test_lru_passes_over_skipped_keys() -> None:
    p: LruPolicy[str] = LruPolicy()
    for k in "abc":
        p.insert(k, 1)
    assert p.victim(skip=lambda k: k in "ab") == "c"
    assert p.victim(skip=lambda k: True) is None
    assert "a" in p and "b" in p


def _survivors_of_a_scan(name: str) -> int:
    """Objects of a reused working set still cached after a scan of objects used once."""
    p = make_policy(name)

    def put(k: int) -> None:
        p.insert(k, 1)
        while len(p) > 20:
            p.victim()

    for k in range(10):
        put(k)
        p.access(k)
    for k in range(100, 200):
        put(k)
    return sum(1 for k in range(10) if k in p)


def test_s3fifo_keeps_reused_objects_through_a_scan() -> None:
    assert _survivors_of_a_scan("s3fifo") == 10
    assert _survivors_of_a_scan("lru") == 0


def test_s3fifo_ghost_readmits_to_main() -> None:
    p: S3FifoPolicy[int] = S3FifoPolicy()
    for k in range(20):
        p.insert(k, 1)
    first = p.victim()
    assert first == 0  # the oldest object, never hit
    p.insert(first, 1)  # wanted again soon after leaving: straight to main
    evicted = [p.victim() for _ in range(19)]
    assert first not in evicted


def test_policies_with_skip_never_evict_busy_and_terminate() -> None:
    for name in ("lru", "s3fifo"):
        p = make_policy(name)
        for k in range(50):
            p.insert(k, 1)
            if k % 3 == 0:
                p.access(k)
        busy = set(range(0, 50, 2))
        out = []
        while (v := p.victim(skip=busy.__contains__)) is not None:
            out.append(v)
        assert sorted(out) == [k for k in range(50) if k not in busy]
        assert len(p) == len(busy)


def test_unknown_policy() -> None:
    with pytest.raises(ValueError):
        make_policy("belady")


# ---------------------------------------------------------------- tier index


def test_tier_index_evicts_for_space_pinned_last_busy_never() -> None:
    t: TierIndex[str] = TierIndex(100, make_policy("lru"))
    for k in "abcde":
        t.add(k, 20)
    assert t.free == 0
    pinned = {"a", "b"}
    out = t.evict_for(40, pinned=pinned.__contains__)
    assert [k for k, _ in out or []] == ["c", "d"]
    t.add("f", 20)
    t.add("g", 20)
    busy = {"e", "f", "g"}
    out = t.evict_for(40, busy=busy.__contains__, pinned=pinned.__contains__, busy_bytes=60)
    assert sorted(k for k, _ in out or []) == ["a", "b"]  # only pinned ones were left
    assert t.evict_for(60, busy=busy.__contains__, busy_bytes=60) is None  # cannot: everything busy
    assert len(t) == 3


def test_tier_index_reservations_count_against_capacity() -> None:
    t: TierIndex[str] = TierIndex(100, make_policy("lru"))
    t.reserve(70)
    t.add("a", 30)
    assert t.free == 0
    assert t.evict_for(40) is None  # reserved space cannot be evicted
    t.unreserve(70)
    assert t.free == 70
    unbounded: TierIndex[str] = TierIndex(None, make_policy("lru"))
    unbounded.add("x", 10**15)
    assert unbounded.evict_for(10**15) == []


# ----------------------------------------------------------------- allocator


def test_allocator_best_fit_and_merge() -> None:
    a = ExtentAllocator(1, 100)
    x, y, z = a.alloc(10), a.alloc(20), a.alloc(10)
    assert x == [(1, 10)] and y == [(11, 20)] and z == [(31, 10)]
    a.free(y)
    assert a.alloc(20) == [(11, 20)]  # the hole is reused exactly
    a.free(x)
    a.free([(11, 20)])
    a.free(z)
    assert a.free_runs() == [(1, 100)] and a.free_pages == 100


def test_allocator_gathers_when_fragmented() -> None:
    a = ExtentAllocator(0, 10)
    runs = [a.alloc(1) for _ in range(10)]
    for r in runs[::2]:
        a.free(r)  # five holes of one page
    got = a.alloc(5)
    assert got is not None and sum(n for _, n in got) == 5 and len(got) == 5
    assert a.alloc(1) is None
    with pytest.raises(ValueError):
        a.free(runs[1] + runs[1])  # double free


def test_allocator_random_workload_keeps_accounts() -> None:
    rng = random.Random(3)
    a = ExtentAllocator(1, 1000)
    live: list[list[tuple[int, int]]] = []
    for _ in range(3000):
        if live and rng.random() < 0.5:
            a.free(live.pop(rng.randrange(len(live))))
        else:
            runs = a.alloc(rng.randint(1, 40))
            if runs is not None:
                live.append(runs)
        used = sorted(r for runs in live for r in runs)
        for (s1, n1), (s2, _) in zip(used, used[1:]):
            assert s1 + n1 <= s2  # no overlap
        assert a.free_pages == 1000 - sum(n for _, n in used)


# -------------------------------------------------------------------- leases


def test_ttl_table_expires_entries() -> None:
    now = [0.0]
    t: TtlTable[str] = TtlTable(5.0, clock=lambda: now[0])
    h1 = t.add("a")
    now[0] = 3.0
    h2 = t.add("b")
    now[0] = 6.0
    assert t.expired() == [(h1, "a")]
    assert t.pop(h1) is None and t.get(h2) == "b"
    now[0] = 9.0
    assert t.expired() == [(h2, "b")] and len(t) == 0


# -------------------------------------------------------------------- config


def test_config_sizes_and_unknown_keys() -> None:
    assert parse_size("64MiB") == 64 << 20 and parse_size("1.5GB") == 1_500_000_000 and parse_size(4096) == 4096
    for bad in ("lots", "-1", "5 parsecs"):
        with pytest.raises(ValueError):
            parse_size(bad)
    cfg = config_from_mapping({"dram_bytes": "256MiB", "policy": "lru", "namespaces": ["m/bf16/default/tp0of1"]})
    assert cfg.dram_bytes == 256 << 20 and cfg.namespaces == ("m/bf16/default/tp0of1",)
    with pytest.raises(ValueError, match="unknown configuration keys: dram"):
        config_from_mapping({"dram": "1GiB"})
    with pytest.raises(ValueError):
        ServerConfig(policy="random")
    with pytest.raises(ValueError):
        ServerConfig(dram_bytes=1 << 20, max_object_bytes=2 << 20)
