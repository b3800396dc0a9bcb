"""Tier 1: the data server's ChunkStore on a temp dir, no network.

Covers write/read semantics (offsets, zero-filled gaps, truncate), chunk
truncation, range deletes, paged and verifying listings, O(1) statistics,
checksum verification against bytes corrupted on disk, and durability across
close/reopen.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
from pathlib import Path
from typing import AsyncIterator

import pytest

from superfs.dataserver import chunk_store as chunk_store_mod
from superfs.dataserver.chunk_format import MAX_CHUNK, chunk_key
from superfs.dataserver.blocks import BLOCK
from superfs.dataserver.chunk_store import INLINE_READ_MAX, ChunkStore, CorruptBlocks
from superfs.errors import FsError

INO = (3 << 40) | 7


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ChunkStore]:
    s = ChunkStore.open(str(tmp_path / "chunks"))
    yield s
    s.close()


def _pattern(n: int, seed: int = 0) -> bytes:
    """Distinct, non-repeating bytes (so a slice is unique inside data.mdb)."""
    return os.urandom(n) if seed == 0 else bytes((i * 31 + seed) & 0xFF for i in range(n))


# ------------------------------------------------------------ write / read


async def test_round_trip_whole_chunk(store: ChunkStore) -> None:
    data = _pattern(100_000)
    assert await store.write(INO, 0, 0, data) == len(data)
    assert await store.read(INO, 0, 0, len(data)) == data
    assert await store.read(INO, 0, 10, 20) == data[10:30]
    assert store.read_now(INO, 0, 99_990, 1000) == data[99_990:]  # short tail
    assert await store.read(INO, 0, 100_000, 10) == b""  # at the end: exists, empty
    assert await store.read(INO, 0, 200_000, 10) == b""


async def test_missing_chunk_reads_as_none(store: ChunkStore) -> None:
    assert await store.read(INO, 5, 0, 4096) is None
    await store.write(INO, 0, 0, b"x")
    assert await store.read(INO, 1, 0, 1) is None
    assert await store.read(INO + 1, 0, 0, 1) is None


async def test_write_at_offset_zero_fills_gap(store: ChunkStore) -> None:
    assert await store.write(INO, 0, 1000, b"abc") == 1003
    got = await store.read(INO, 0, 0, 2000)
    assert got == bytes(1000) + b"abc"
    # growing an existing chunk past its end zero-fills the new gap too
    assert await store.write(INO, 0, 2000, b"z") == 2001
    got = await store.read(INO, 0, 0, 4000)
    assert got == bytes(1000) + b"abc" + bytes(997) + b"z"


async def test_overwrite_inside_keeps_the_rest(store: ChunkStore) -> None:
    base = _pattern(10_000, seed=3)
    await store.write(INO, 0, 0, base)
    assert await store.write(INO, 0, 100, b"HELLO") == 10_000  # no truncate: length stays
    want = bytearray(base)
    want[100:105] = b"HELLO"
    assert await store.read(INO, 0, 0, 10_000) == bytes(want)
    # a shorter write at offset 0 without truncate keeps the tail
    assert await store.write(INO, 0, 0, b"AB") == 10_000
    want[0:2] = b"AB"
    assert await store.read(INO, 0, 0, 10_000) == bytes(want)


async def test_truncate_flag_cuts_at_end_of_write(store: ChunkStore) -> None:
    await store.write(INO, 0, 0, _pattern(5000, seed=1))
    assert await store.write(INO, 0, 10, b"tail", truncate=True) == 14
    got = await store.read(INO, 0, 0, 5000)
    assert got == _pattern(5000, seed=1)[:10] + b"tail"
    assert await store.write(INO, 0, 0, b"new", truncate=True) == 3
    assert await store.read(INO, 0, 0, 100) == b"new"
    # an empty truncating write sets the length (zero-extending)
    assert await store.write(INO, 0, 8, b"", truncate=True) == 8
    assert await store.read(INO, 0, 0, 100) == b"new" + bytes(5)


async def test_empty_write_without_truncate_changes_nothing(store: ChunkStore) -> None:
    assert await store.write(INO, 0, 100, b"") == 0
    assert await store.read(INO, 0, 0, 1) is None
    await store.write(INO, 0, 0, b"abc")
    assert await store.write(INO, 0, 100, b"") == 3


async def test_concurrent_partial_writes_compose(store: ChunkStore) -> None:
    # Many read-modify-writes of one chunk in the same group commit must not
    # lose each other's bytes.
    piece = 1024
    parts = [bytes([i]) * piece for i in range(64)]
    await asyncio.gather(*(store.write(INO, 0, i * piece, p) for i, p in enumerate(parts)))
    assert await store.read(INO, 0, 0, 64 * piece) == b"".join(parts)
    assert store.stats().chunks == 1
    assert store.stats().bytes == 64 * piece


async def test_write_budget_bounds_bytes_in_flight(tmp_path: Path) -> None:
    s = ChunkStore.open(str(tmp_path / "c"), durable=False, write_budget_bytes=10_000)
    try:
        await asyncio.gather(*(s.write(INO, i, 0, b"w" * 4000) for i in range(20)))
        assert 4000 <= s.write_budget.peak <= 10_000
        assert await s.write(INO, 99, 0, bytes(50_000)) == 50_000  # larger than the budget: runs alone
        assert s.stats().chunks == 21 and s.write_budget.in_flight == 0
    finally:
        s.close()


async def test_large_chunk_read_path(store: ChunkStore) -> None:
    # Above INLINE_READ_MAX the read runs on a worker thread: same answers.
    data = _pattern(4 * INLINE_READ_MAX)
    await store.write(INO, 2, 0, data)
    assert await store.read(INO, 2, 0, len(data)) == data
    assert await store.read(INO, 2, len(data) - 5, 100) == data[-5:]
    results = await asyncio.gather(*(store.read(INO, 2, i * 1000, 1000) for i in range(20)))
    assert results == [data[i * 1000 : (i + 1) * 1000] for i in range(20)]


async def test_limits_are_einval_without_allocating(store: ChunkStore) -> None:
    for call in (
        store.write(INO, 0, 2**62, b"x"),
        store.write(INO, 0, MAX_CHUNK, b"x"),
        store.write(0, 0, 0, b"x"),
        store.read(INO, 0, 0, MAX_CHUNK + 1),
        store.read(INO, 0, 2**63, 1),
        store.read(0, 0, 0, 1),
        store.truncate(INO, 0, 2**40),
        store.delete(0, 0),
    ):
        with pytest.raises(FsError) as exc:
            await call
        assert exc.value.errno == errno.EINVAL
    # the largest legal chunk end is accepted
    assert await store.write(INO, 0, MAX_CHUNK - 1, b"x") == MAX_CHUNK
    assert await store.read(INO, 0, MAX_CHUNK - 1, 10) == b"x"
    await store.delete(INO)


# --------------------------------------------------------- truncate / delete


async def test_truncate_chunk_down_and_up(store: ChunkStore) -> None:
    data = _pattern(8000, seed=5)
    await store.write(INO, 1, 0, data)
    await store.truncate(INO, 1, 3000)
    assert await store.read(INO, 1, 0, 10_000) == data[:3000]
    await store.truncate(INO, 1, 6000)
    assert await store.read(INO, 1, 0, 10_000) == data[:3000] + bytes(3000)
    await store.truncate(INO, 1, 0)
    assert await store.read(INO, 1, 0, 10) == b""  # still exists, now empty
    assert store.stats().bytes == 0 and store.stats().chunks == 1


async def test_truncate_missing_chunk_is_noop(store: ChunkStore) -> None:
    await store.truncate(INO, 9, 4096)
    assert await store.read(INO, 9, 0, 1) is None
    assert store.stats().chunks == 0


async def test_delete_chunks_from_index(store: ChunkStore) -> None:
    for ino in (INO - 1, INO, INO + 1):
        for i in range(6):
            await store.write(ino, i, 0, b"%d" % i * 100)
    assert await store.delete(INO, 3) == 3
    for i in range(6):
        assert (await store.read(INO, i, 0, 1) is None) == (i >= 3)
    assert await store.delete(INO, 3) == 0  # idempotent
    assert await store.delete(INO, 0) == 3
    for ino in (INO - 1, INO + 1):  # neighbours untouched
        assert all([await store.read(ino, i, 0, 1) is not None for i in range(6)])
    assert store.stats().chunks == 12
    assert await store.delete(INO + 1) == 6  # the last records of the sub-db
    assert store.stats().chunks == 6
    assert store.stats().bytes == 6 * 100


async def test_delete_huge_file_in_batches(store: ChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunk_store_mod, "DELETE_BATCH", 3)
    await asyncio.gather(*(store.write(INO, i, 0, b"q" * 10) for i in range(10)))
    await store.write(INO + 1, 0, 0, b"keep")
    before = store.store.batches
    assert await store.delete(INO, 1) == 9
    assert store.store.batches - before == 3  # 3 + 3 + 3, the third finds the end
    assert await store.read(INO, 0, 0, 10) == b"q" * 10
    assert store.stats().chunks == 2 and store.stats().bytes == 14


# ------------------------------------------------------------------ listing


async def test_list_chunks_paging(store: ChunkStore) -> None:
    keys = [(ino, i) for ino in (INO, INO + 5) for i in (0, 1, 2, 10)] + [(1 << 63, 0)]
    for ino, i in keys:
        await store.write(ino, i, 0, b"d" * (i + 1))
    seen: list[tuple[int, int]] = []
    after = (0, 0)
    while True:
        page, more = store.list_now(*after, limit=3)
        assert len(page) <= 3
        seen += [(e.ino, e.index) for e in page]
        if not more:
            break
        after = (page[-1].ino, page[-1].index)
    assert seen == sorted(keys)
    everything, more = await store.list()
    assert not more and [(e.ino, e.index, e.length) for e in everything] == [(a, b, b + 1) for a, b in sorted(keys)]
    # the cursor is exclusive, and needs no existing key
    page, _ = store.list_now(INO, 1, limit=2)
    assert [(e.ino, e.index) for e in page] == [(INO, 2), (INO, 10)]
    page, _ = store.list_now(INO, 3, limit=1)
    assert [(e.ino, e.index) for e in page] == [(INO, 10)]
    page, more = store.list_now(1 << 63, 0)
    assert page == [] and not more


async def test_list_limit_default_and_cap(store: ChunkStore) -> None:
    await asyncio.gather(*(store.write(INO, i, 0, b"x") for i in range(1100)))
    page, more = store.list_now(limit=0)
    assert len(page) == 1000 and more
    page, more = store.list_now(limit=2**31)
    assert len(page) == 1100 and not more


# ------------------------------------------------------------- stats, disk


async def test_stats_track_every_mutation(store: ChunkStore) -> None:
    assert (store.stats().chunks, store.stats().bytes) == (0, 0)
    await store.write(INO, 0, 0, b"a" * 100)
    await store.write(INO, 1, 50, b"b" * 50)
    assert (store.stats().chunks, store.stats().bytes) == (2, 200)
    await store.write(INO, 0, 0, b"c" * 10, truncate=True)
    assert (store.stats().chunks, store.stats().bytes) == (2, 110)
    await store.truncate(INO, 1, 1000)
    assert (store.stats().chunks, store.stats().bytes) == (2, 1010)
    with pytest.raises(FsError):
        await store.write(INO, 2, 2**40, b"x")  # a failed mutation changes nothing
    await store.delete(INO, 1)
    assert (store.stats().chunks, store.stats().bytes) == (1, 10)
    assert store.stats().db_bytes > 0


async def test_chunks_share_a_few_sparse_files(tmp_path: Path) -> None:
    # Thousands of chunks must not become thousands of local files, nor take a slot's size each.
    s = ChunkStore.open(str(tmp_path / "c"), durable=False)
    try:
        await asyncio.gather(*(s.write(INO, i, 0, b"%08d" % i * 64) for i in range(2000)))
        assert sorted(os.listdir(tmp_path / "c")) == ["data.mdb", "lock.mdb", "slots"]
        assert len(os.listdir(tmp_path / "c" / "slots")) == 2  # 1024 slots per file
        assert s.stats().chunks == 2000
        assert s.slots.allocated_bytes() < 2000 * 64 * 1024  # sparse: 512 bytes do not take a 4 MiB slot
        assert [await s.read(INO, i, 0, 8) for i in (0, 1999)] == [b"00000000", b"00001999"]
    finally:
        s.close()


async def test_freed_slots_are_reused_and_their_space_returned(tmp_path: Path) -> None:
    s = ChunkStore.open(str(tmp_path / "c"), durable=False, reserve_bytes=8 << 20)  # keeps two freed 4 MiB slots
    try:
        for i in range(8):
            await s.write(INO, i, 0, os.urandom(1 << 20))
        used = s.slots.allocated_bytes()
        assert used >= 8 << 20
        await s.delete(INO, 4)
        # beyond the reserve, punched at once (nobody was reading): two of the four freed MiB return
        assert s.slots.allocated_bytes() <= used - (2 << 20) + BLOCK
        for i in range(4, 8):
            await s.write(INO + 1, i, 0, b"new")
        assert s.slots.file_count() == 1 and s.slots.allocated_bytes() < used
        assert await s.read(INO + 1, 5, 0, 1 << 20) == b"new"  # nothing of a reused slot's old bytes
        # a gap in a reused (dirty) slot reads as zeros
        await s.delete(INO + 1)
        await s.write(INO + 2, 0, 100_000, b"after a gap")
        assert await s.read(INO + 2, 0, 0, 1 << 20) == bytes(100_000) + b"after a gap"
    finally:
        s.close()


async def test_a_freed_slot_is_not_reused_under_a_reader(tmp_path: Path) -> None:
    s = ChunkStore.open(str(tmp_path / "c"), durable=False)
    try:
        old = os.urandom(200_000)
        await s.write(INO, 0, 0, old)
        head = s.head_of(chunk_key(INO, 0))
        with s.slots.pinned():  # a reader that found the old header
            await s.write(INO, 0, 0, b"replaced", truncate=True)  # copy on write: the old slot is released
            await s.write(INO, 1, 0, os.urandom(200_000))  # must not land in the old slot
            assert bytes(s._read_blocks(chunk_key(INO, 0), head, 0, len(old))) == old
        await s.write(INO, 2, 0, b"x")
        assert s.head_of(chunk_key(INO, 2)).slot == head.slot  # reused once the reader is gone
    finally:
        s.close()


async def test_values_survive_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "chunks")
    s = ChunkStore.open(path)
    big = _pattern(3 << 20)
    await s.write(INO, 0, 0, big)
    await s.write(INO, 1, 7, b"seven")
    await s.truncate(INO, 0, 2 << 20)
    s.close()
    s = ChunkStore.open(path)
    try:
        assert await s.read(INO, 0, 0, 4 << 20) == big[: 2 << 20]
        assert await s.read(INO, 1, 0, 100) == bytes(7) + b"seven"
        assert (s.stats().chunks, s.stats().bytes) == (2, (2 << 20) + 12)
    finally:
        s.close()


def _flip_byte_in_file(path: Path, needle: bytes) -> None:
    """Damage every copy of ``needle`` in the file (LMDB may keep stale copies in free pages)."""
    raw = bytearray(path.read_bytes())
    hits = 0
    at = raw.find(needle)
    while at >= 0:
        raw[at + len(needle) // 2] ^= 0x40
        hits += 1
        at = raw.find(needle, at + len(needle))
    assert hits >= 1, f"the chunk's bytes must be in {path} as they are"
    path.write_bytes(bytes(raw))


def _flip_byte_in_slots(store_dir: Path, needle: bytes) -> None:
    files = [f for f in (store_dir / "slots").iterdir() if needle in f.read_bytes()]
    assert len(files) == 1
    _flip_byte_in_file(files[0], needle)


@pytest.mark.parametrize("size", [3000, 1 << 20])  # one block (inline read path), 16 blocks (worker thread)
async def test_corruption_on_disk_is_detected(tmp_path: Path, caplog: pytest.LogCaptureFixture, size: int) -> None:
    path = tmp_path / "chunks"
    s = ChunkStore.open(str(path))
    victim = os.urandom(size)
    healthy = os.urandom(size)
    await s.write(INO, 4, 0, victim)
    await s.write(INO, 5, 0, healthy)
    s.close()
    mid = size // 2
    _flip_byte_in_slots(path, victim[mid:mid + 32])

    s = ChunkStore.open(str(path))
    try:
        with caplog.at_level(logging.ERROR, logger="superfs.dataserver"):
            with pytest.raises(CorruptBlocks) as exc:
                await s.read(INO, 4, mid, 10)  # any read of the damaged block
            assert exc.value.errno == errno.EIO and exc.value.blocks == [(mid + 16) // BLOCK]
            assert any(
                r.levelno == logging.ERROR and f"ino={INO} index=4" in r.getMessage() for r in caplog.records
            )
            with pytest.raises(FsError):
                s.read_now(INO, 4, 0, size)
            # a partial write must not launder the damage under a new checksum
            with pytest.raises(FsError) as exc2:
                await s.write(INO, 4, 1, b"x")
            assert exc2.value.errno == errno.EIO
            with pytest.raises(FsError):
                await s.truncate(INO, 4, mid + 100)  # keeps part of the damaged block
        if size > BLOCK:  # a read of other blocks hashes only those: it works
            assert await s.read(INO, 4, 0, 4096) == victim[:4096]
        assert await s.read(INO, 5, 0, size) == healthy

        page, _ = s.list_now(verify=True)
        assert [(e.index, e.corrupt) for e in page] == [(4, True), (5, False)]
        page, _ = s.list_now(verify=False)  # without verify nothing is hashed
        assert [e.corrupt for e in page] == [False, False]

        # a whole-chunk rewrite (what repair from another replica does) heals it
        await s.write(INO, 4, 0, victim, truncate=True)
        assert await s.read(INO, 4, 0, size) == victim
        page, _ = await s.list(verify=True)
        assert not any(e.corrupt for e in page)
    finally:
        s.close()


# ------------------------------------------- write stamps (fsck's guard for unsized bytes)


async def test_every_write_is_stamped_with_the_servers_clock_and_write_sequence(store: ChunkStore) -> None:
    seq0, _ = store.marker()
    await store.write(INO, 0, 0, b"a" * 100)
    await store.write(INO, 1, 0, b"b" * 100)
    await store.truncate(INO, 0, 50)
    entries, _ = store.list_now()
    by_index = {e.index: e for e in entries}
    assert by_index[0].write_seq == seq0 + 3 and by_index[1].write_seq == seq0 + 2
    assert all(e.written_ns > 0 for e in entries)
    assert store.marker()[0] == seq0 + 3 == store.stats().write_seq


async def test_a_guarded_delete_spares_chunks_written_since_a_marker_or_recently(store: ChunkStore) -> None:
    from superfs.dataserver.chunk_store import Spare
    for idx in range(4):
        await store.write(INO, idx, 0, b"old")
    marker, _ = store.marker()
    await store.write(INO, 2, 0, b"new")  # written after the marker
    assert await store.delete(INO, 0, spare=Spare(max_write_seq=marker)) == 3
    assert [e.index for e in store.list_now()[0]] == [2]
    # every chunk is seconds old at most: an age guard of an hour spares them all
    await store.write(INO, 5, 0, b"young")
    assert await store.delete(INO, 0, spare=Spare(min_age_ns=3600 * 10**9)) == 0
    assert not await store.truncate(INO, 5, 1, spare=Spare(min_age_ns=3600 * 10**9))
    assert await store.read(INO, 5, 0, 10) == b"young"
    assert await store.delete(INO, 0) == 2


# ------------------------------------------- blocks, slots, old stores (the layout of issue 17)


def _edge_sizes() -> list[int]:
    """Sizes and offsets around block and slot boundaries."""
    out = {0, 1, 4095, 4096}
    for base in (BLOCK, 2 * BLOCK, 4 * BLOCK, 1 << 20):
        out |= {base - 1, base, base + 1}
    return sorted(out)


async def test_random_writes_and_cuts_match_a_model(tmp_path: Path) -> None:
    """Writes, appends, gaps, overwrites and cuts at block edges read back as a plain bytearray says."""
    import random
    rng = random.Random(17)
    s = ChunkStore.open(str(tmp_path / "c"), durable=False, default_slot=256 * 1024)  # small slots: moves too
    edges = _edge_sizes()
    try:
        for idx in range(6):
            model = bytearray()
            exists = False
            for step in range(30):
                op = rng.random()
                if op < 0.65:
                    offset = rng.choice(edges + [len(model)] * 4)
                    n = rng.choice(edges[1:])
                    data = os.urandom(n)
                    trunc = rng.random() < 0.2
                    got = await s.write(INO, idx, offset, data, truncate=trunc)
                    if offset > len(model):
                        model.extend(bytes(offset - len(model)))
                    model[offset:offset + n] = data
                    if trunc:
                        del model[offset + n:]
                    exists = True
                elif exists:
                    length = rng.choice(edges + [len(model) // 2, len(model) + BLOCK + 3])
                    assert await s.truncate(INO, idx, length)
                    model = model[:length] + bytearray(max(0, length - len(model)))
                else:
                    continue
                assert got == len(model) or op >= 0.65
                assert s.head_of(chunk_key(INO, idx)).length == len(model), (idx, step)
                whole = await s.read(INO, idx, 0, MAX_CHUNK)
                assert whole == bytes(model), (idx, step)
                at = rng.choice(edges)
                assert await s.read(INO, idx, at, 5000) == bytes(model[at:at + 5000])
        page, _ = s.list_now(verify=True)
        assert not any(e.corrupt for e in page)
    finally:
        s.close()


async def test_appends_stay_in_place(tmp_path: Path) -> None:
    s = ChunkStore.open(str(tmp_path / "c"), durable=False)
    try:
        parts = [os.urandom(n) for n in (100_000, BLOCK, 3, 500_000)]
        pos = 0
        for p in parts:
            await s.write(INO, 0, pos, p)
            pos += len(p)
        slot = s.head_of(chunk_key(INO, 0)).slot
        assert slot is not None and [slot] == [s.head_of(chunk_key(INO, 0)).slot]
        assert await s.read(INO, 0, 0, pos) == b"".join(parts)
        assert s.slots.file_count() == 1
        # after a cut, an append may not reuse the bytes an older header still covers: it moves
        await s.truncate(INO, 0, 1000)
        await s.write(INO, 0, 1000, b"z" * 10)
        assert s.head_of(chunk_key(INO, 0)).slot != slot
        assert await s.read(INO, 0, 0, 2000) == parts[0][:1000] + b"z" * 10
    finally:
        s.close()


async def test_repair_blocks_takes_only_bytes_that_match_the_sum(tmp_path: Path) -> None:
    path = tmp_path / "chunks"
    s = ChunkStore.open(str(path))
    good = os.urandom(3 * BLOCK + 10)
    await s.write(INO, 0, 0, good)
    s.close()
    _flip_byte_in_slots(path, good[BLOCK + 100:BLOCK + 132])
    s = ChunkStore.open(str(path))
    try:
        with pytest.raises(CorruptBlocks) as exc:
            await s.read(INO, 0, 0, len(good))
        head = exc.value.head
        assert exc.value.blocks == [1]
        assert s.repair_blocks(INO, 0, head, {1: os.urandom(BLOCK)}) == 0  # not the replica's bytes
        assert s.repair_blocks(INO, 0, head, {1: good[BLOCK:2 * BLOCK]}) == 1
        assert await s.read(INO, 0, 0, len(good)) == good
        await s.write(INO, 0, 0, b"new", truncate=True)
        assert s.repair_blocks(INO, 0, head, {1: good[BLOCK:2 * BLOCK]}) == 0  # rewritten meanwhile
        assert await s.read(INO, 0, 0, 10) == b"new"
    finally:
        s.close()


async def test_an_unacknowledged_write_leaves_nothing_behind(tmp_path: Path) -> None:
    """Bytes put in a slot whose header never committed (a crash) are cleared when the store opens."""
    path = str(tmp_path / "c")
    s = ChunkStore.open(path)
    await s.write(INO, 0, 0, b"kept" * 1000)
    plan = s.begin_write(INO, 1, 0, 300_000)
    plan.feed(b"\xee" * 300_000)
    slot = plan.slot
    s.slots.sync(slot)
    s._readers.shutdown()
    s._writers.shutdown()
    s.store.close()  # "crash": the plan never commits
    s.slots.close()
    s = ChunkStore.open(path)
    try:
        assert await s.read(INO, 1, 0, 10) is None
        assert await s.read(INO, 0, 0, 4) == b"kept"
        plan2 = s.begin_write(INO, 2, 1000, 10)  # the same slot again: it must read as zeros around the write
        assert plan2.slot == slot
        plan2.feed(b"0123456789")
        plan2.commit()
        assert await s.read(INO, 2, 0, 2000) == bytes(1000) + b"0123456789"
    finally:
        s.close()


async def test_a_store_of_the_old_layout_is_read_and_migrated(tmp_path: Path) -> None:
    """Chunks whose bytes are LMDB values (stores before slot files) read in place, then move."""
    import xxhash
    from superfs.dataserver import chunk_format as fmt
    from superfs.lmdb_store import LmdbStore
    path = str(tmp_path / "c")
    old = LmdbStore(path, ["chunk_head", "chunk_data", "meta"])
    chunks = {i: os.urandom(n) for i, n in enumerate((10, BLOCK + 5, 700_000))}

    def fill(txn) -> None:  # type: ignore[no-untyped-def]
        for i, data in chunks.items():
            key = fmt.chunk_key(INO, i)
            txn.put(key, data, db=old.db("chunk_data"))
            txn.put(key, fmt.encode_legacy_head(fmt.XXH3_64, len(data), xxhash.xxh3_64_intdigest(data), 5, i + 1),
                    db=old.db("chunk_head"))
        txn.put(b"chunks", fmt.encode_counter(3), db=old.db("meta"))
        txn.put(b"bytes", fmt.encode_counter(sum(map(len, chunks.values()))), db=old.db("meta"))
        txn.put(b"write_seq", fmt.encode_counter(3), db=old.db("meta"))
        txn.put(b"identity", b"", db=old.db("meta"))

    old.write_now(fill)
    old.close()
    s = ChunkStore.open(path)
    try:
        assert s.legacy_chunks == 3
        for i, data in chunks.items():
            assert await s.read(INO, i, 0, MAX_CHUNK) == data
        # a partial write moves a chunk into a slot, keeping its other bytes
        await s.write(INO, 2, 5, b"XY")
        assert not s.head_of(chunk_key(INO, 2)).legacy
        assert await s.read(INO, 2, 0, 10) == chunks[2][:5] + b"XY" + chunks[2][7:10]
        assert await s.migrate() == 2
        assert all(not s.head_of(chunk_key(INO, i)).legacy for i in chunks)
        assert await s.read(INO, 1, 0, MAX_CHUNK) == chunks[1]
        entries, _ = s.list_now(verify=True)
        assert [(e.index, e.write_seq > 3, e.corrupt) for e in entries] == [(0, True, False), (1, True, False),
                                                                             (2, True, False)]
        with s.store.read() as txn:
            assert txn.stat(s.data_db)["entries"] == 0  # no bytes left in LMDB
        assert (s.stats().chunks, s.stats().bytes) == (3, sum(map(len, chunks.values())))
    finally:
        s.close()
