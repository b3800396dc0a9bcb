"""kvserve tier 1: the store engine (DRAM arena, two-phase puts, leases), no network.

Calls KvStore directly on the test's event loop, with a real shared-memory
arena, so each guarantee is checked where it is made: a partial put is
invisible, bad bytes never become an object, a leased object is not evicted
or overwritten, pinned objects go last, abandoned handles are reclaimed.
"""
from __future__ import annotations

import os
from typing import AsyncIterator

import numpy as np
import pytest

from kvserve.arena import Arena, checksum_of
from kvserve.config import ServerConfig
from kvserve.errors import BadRequest, Status, Tier, UnknownNamespace
from kvserve.leases import TtlTable
from kvserve.store import KvStore, PutSpec

NS = "m/bf16/default/tp0of1"
PAGE = 4096


def key(i: int) -> bytes:
    return i.to_bytes(16, "big")


def blob(i: int, size: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, size, dtype=np.uint8)


def make_store(dram_pages: int = 64, **kw: object) -> KvStore:
    cfg = ServerConfig(dram_bytes=dram_pages * PAGE, page_bytes=PAGE, max_object_bytes=dram_pages * PAGE,
                       prefault=False, namespaces=(NS,), **kw)  # type: ignore[arg-type]
    return KvStore(cfg, Arena.create(cfg.dram_bytes + PAGE, prefault=False))


@pytest.fixture
async def store() -> AsyncIterator[KvStore]:
    s = make_store()
    yield s
    await s.close()
    s.arena.close()


async def put(store: KvStore, i: int, data: np.ndarray, *, pin: bool = False) -> Status:
    (status, slot), = await store.reserve(NS, [PutSpec(key(i), len(data), checksum_of(data), pin)])
    if slot is None:
        return status
    store.arena.write(slot.extents, data)
    return store.commit(store.park([slot]))[0]


async def read(store: KvStore, i: int) -> bytes | None:
    found, = await store.acquire(NS, [key(i)])
    if found is None:
        return None
    assert found.obj is not None
    try:
        return store.arena.to_bytes(found.obj.extents)
    finally:
        store.release([found])


async def test_put_is_invisible_until_commit(store: KvStore) -> None:
    data = blob(1, 3 * PAGE + 5)
    (status, slot), = await store.reserve(NS, [PutSpec(key(1), len(data), checksum_of(data))])
    assert status is Status.OK and slot is not None
    handle = store.park([slot])
    store.arena.write_at(slot.extents, 0, data[:PAGE])  # half written
    assert store.exists(NS, [key(1)]) == [Tier.NONE]
    assert await read(store, 1) is None
    store.arena.write_at(slot.extents, PAGE, data[PAGE:])
    assert store.commit(handle) == [Status.OK]
    assert await read(store, 1) == data.tobytes()
    assert await put(store, 1, data) is Status.EXISTS
    with pytest.raises(BadRequest):
        store.commit(handle)  # a handle commits once


async def test_bad_bytes_never_become_an_object(store: KvStore) -> None:
    data = blob(2, 10_000)
    (_, slot), = await store.reserve(NS, [PutSpec(key(2), len(data), checksum_of(data))])
    assert slot is not None
    wrong = data.copy()
    wrong[5000] ^= 1
    store.arena.write(slot.extents, wrong)
    free_before = store.dram.index.free
    assert store.commit(store.park([slot])) == [Status.CORRUPT]
    assert await read(store, 2) is None
    assert store.dram.index.free == free_before + slot.charge  # the space came back


async def test_aborted_put_leaves_nothing(store: KvStore) -> None:
    data = blob(3, 5000)
    (_, slot), = await store.reserve(NS, [PutSpec(key(3), len(data), checksum_of(data))])
    assert slot is not None
    store.arena.write(slot.extents, data)
    assert store.commit(store.park([slot]), abort=True) == [Status.ABORTED]
    assert await read(store, 3) is None and store.dram.index.reserved == 0


async def test_a_leased_object_is_neither_evicted_nor_overwritten() -> None:
    store = make_store(dram_pages=16, policy="lru")
    try:
        data = blob(10, 4 * PAGE)
        assert await put(store, 10, data) is Status.OK
        found, = await store.acquire(NS, [key(10)])
        assert found is not None and found.obj is not None
        for i in range(11, 30):  # 19 more objects of 4 pages through a 16-page DRAM
            assert await put(store, i, blob(i, 4 * PAGE)) is Status.OK
        assert store.exists(NS, [key(10)]) == [Tier.DRAM]
        assert store.arena.to_bytes(found.obj.extents) == data.tobytes()
        store.release([found])
        for i in range(30, 34):
            await put(store, i, blob(i, 4 * PAGE))
        assert store.exists(NS, [key(10)]) == [Tier.NONE]  # evicted once let go
    finally:
        await store.close()
        store.arena.close()


async def test_no_space_when_everything_is_leased() -> None:
    store = make_store(dram_pages=8)
    try:
        for i in range(4):
            assert await put(store, i, blob(i, 2 * PAGE)) is Status.OK
        held = await store.acquire(NS, [key(i) for i in range(4)])
        assert await put(store, 9, blob(9, PAGE)) is Status.NO_SPACE
        store.release(held)
        assert await put(store, 9, blob(9, PAGE)) is Status.OK
    finally:
        await store.close()
        store.arena.close()


async def test_pinned_objects_are_evicted_last() -> None:
    store = make_store(dram_pages=8, policy="lru")
    try:
        assert await put(store, 0, blob(0, 2 * PAGE), pin=True) is Status.OK
        for i in range(1, 20):
            await put(store, i, blob(i, 2 * PAGE))
        assert store.exists(NS, [key(0)]) == [Tier.DRAM]
        assert store.pin(NS, [key(0), key(99)], False) == [Status.OK, Status.MISSING]
        for i in range(20, 24):
            await put(store, i, blob(i, 2 * PAGE))
        assert store.exists(NS, [key(0)]) == [Tier.NONE]
        # with only pinned objects left, they do make room
        for i in range(30, 34):
            assert await put(store, i, blob(i, 2 * PAGE), pin=True) is Status.OK
        assert await put(store, 40, blob(40, 2 * PAGE)) is Status.OK
    finally:
        await store.close()
        store.arena.close()


async def test_chains_are_evicted_from_their_tail() -> None:
    store = make_store(dram_pages=10, policy="lru")
    try:
        datas = [blob(i, PAGE) for i in range(8)]
        specs = [PutSpec(key(i), PAGE, checksum_of(d)) for i, d in enumerate(datas)]
        outcomes = await store.reserve(NS, specs)
        for (_, slot), d in zip(outcomes, datas):
            assert slot is not None
            store.arena.write(slot.extents, d)
        assert store.commit(store.park([s for _, s in outcomes if s is not None])) == [Status.OK] * 8
        await put(store, 100, blob(100, 4 * PAGE))  # needs two more pages
        assert store.exists(NS, [key(i) for i in range(8)]) == [Tier.DRAM] * 6 + [Tier.NONE] * 2
        found = await store.acquire(NS, [key(i) for i in range(8)], prefix=True)
        assert len(found) == 6
        store.release(found)
    finally:
        await store.close()
        store.arena.close()


async def test_remove_while_leased_keeps_the_readers_bytes(store: KvStore) -> None:
    data = blob(5, 3 * PAGE)
    await put(store, 5, data)
    found, = await store.acquire(NS, [key(5)])
    assert found is not None and found.obj is not None
    assert await store.remove(NS, [key(5), key(6)]) == [Status.OK, Status.MISSING]
    assert await read(store, 5) is None
    await put(store, 6, blob(6, 60 * PAGE))  # wants the whole arena: must not take the leased pages
    assert store.arena.to_bytes(found.obj.extents) == data.tobytes()
    store.release([found])
    assert store.dram.alloc.free_pages + store.dram.index.used // PAGE == store.dram.alloc.total_pages


async def test_abandoned_leases_and_reservations_expire(store: KvStore) -> None:
    now = [0.0]
    store.leases = TtlTable(10.0, clock=lambda: now[0])
    store.reservations = TtlTable(10.0, clock=lambda: now[0])
    await put(store, 7, blob(7, PAGE))
    found = await store.acquire(NS, [key(7)])
    handle = store.hold(found)
    (_, slot), = await store.reserve(NS, [PutSpec(key(8), PAGE, 0)])
    assert slot is not None
    rhandle = store.park([slot])
    assert store.dram.leased_bytes == PAGE and store.dram.index.reserved == PAGE
    now[0] = 11.0
    store.sweep()
    assert store.dram.leased_bytes == 0 and store.dram.index.reserved == 0
    store.release_handles([handle])  # a late release is harmless
    with pytest.raises(BadRequest):
        store.commit(rhandle)


async def test_prefix_lookup_stops_at_the_first_missing_key(store: KvStore) -> None:
    for i in (0, 1, 2, 4):
        await put(store, i, blob(i, 100))
    found = await store.acquire(NS, [key(i) for i in range(5)], prefix=True)
    assert [f.oid[1] for f in found if f is not None] == [key(0), key(1), key(2)]
    store.release(found)
    assert store.dram.leased_bytes == 0  # the lease on key 4 was given back


async def test_request_validation(store: KvStore) -> None:
    with pytest.raises(UnknownNamespace):
        await store.acquire("other/bf16/default/tp0of1", [key(1)])
    with pytest.raises(BadRequest):
        await store.acquire("bad namespace", [key(1)])
    for bad in (b"", b"short", os.urandom(17), os.urandom(64)):
        with pytest.raises(BadRequest):
            await store.acquire(NS, [bad])
    with pytest.raises(BadRequest):
        await store.acquire(NS, [key(1)] * (store.cfg.max_keys + 1))
    (status, slot), = await store.reserve(NS, [PutSpec(key(1), store.cfg.max_object_bytes + 1, 0)])
    assert status is Status.TOO_LARGE and slot is None
    assert await put(store, 1, blob(1, 10)) is Status.OK  # and the store still works
