"""kvserve tier 2: decode attention computed by an in-process daemon over blocks in its arena.

Blocks are put through the real client (shared memory), a batch of queries
goes through the Attend RPC, and the outputs are checked against full
attention computed here from the same K and V (float64). A block that is
gone gives its sequence a clear miss; a block removed or pushed out while a
batch is being computed changes nothing in that batch (it is leased).
"""
from __future__ import annotations

import asyncio
import os
import sys
from typing import Iterator

import numpy as np
import pytest

import kvserve.attention.serve as serve_mod
from kvserve import Namespace, block_hashes
from kvserve.attention.client import AttendResult, attend
from kvserve.attention.kernel import have_numba
from kvserve.attention.layout import KvLayout
from kvserve.client import KvClient
from kvserve.config import ServerConfig
from kvserve.errors import BadRequest, Status, Tier, UnknownNamespace
from kvserve.launch import ServerThread

sys.path.insert(0, os.path.dirname(__file__))
from test_kvserve_t1_attention import reference  # noqa: E402

NS = Namespace("llama-tiny", "fp32", "kvblock")
# 12 KiB blocks: 3 arena pages, with slabs of 3 KiB, two of which straddle a page boundary
LAYOUT = KvLayout(layers=2, kv_heads=2, head_dim=32, block_tokens=12)
MiB = 1 << 20


class Sequence:
    """One sequence's tokens, K and V (all layers); its full blocks keyed as a serving engine would."""

    def __init__(self, length: int, seed: int, prefix: "Sequence | None" = None) -> None:
        rng = np.random.default_rng(seed)
        shape = (LAYOUT.layers, length, LAYOUT.kv_heads, LAYOUT.head_dim)
        self.tokens = rng.integers(0, 50_000, length)
        self.k = rng.standard_normal(shape, dtype=np.float32)
        self.v = rng.standard_normal(shape, dtype=np.float32)
        if prefix is not None:  # shares prefix's full blocks: same tokens, same KV
            n = len(prefix.keys) * LAYOUT.block_tokens
            self.tokens[:n], self.k[:, :n], self.v[:, :n] = prefix.tokens[:n], prefix.k[:, :n], prefix.v[:, :n]
        self.keys = block_hashes(self.tokens, block_size=LAYOUT.block_tokens, namespace=NS)
        self.full = len(self.keys) * LAYOUT.block_tokens

    def blocks(self) -> list[np.ndarray]:
        bt = LAYOUT.block_tokens
        return [LAYOUT.pack(self.k[:, i * bt:(i + 1) * bt], self.v[:, i * bt:(i + 1) * bt])
                for i in range(len(self.keys))]

    def tail(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        return self.k[layer, self.full:], self.v[layer, self.full:]

    def expected(self, q: np.ndarray, layer: int) -> np.ndarray:
        return reference(q, self.k[layer], self.v[layer])


def run(c: KvClient, seqs: list[Sequence], q: np.ndarray, layer: int,
        keys: list[list[bytes]] | None = None) -> AttendResult:
    return attend(c, LAYOUT, q, keys if keys is not None else [s.keys for s in seqs], layer=layer,
                  tails=[s.tail(layer) for s in seqs])


def queries(n: int, q_heads: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, q_heads, LAYOUT.head_dim), dtype=np.float32)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(ServerConfig(dram_bytes=64 * MiB, max_object_bytes=MiB, namespaces=(NS.name,))) as s:
        yield s


@pytest.fixture
def client(server: ServerThread) -> Iterator[KvClient]:
    with KvClient(server.address, NS, shm=True) as c:
        yield c


def put(c: KvClient, seqs: list[Sequence]) -> None:
    for s in seqs:
        assert all(st.stored for st in c.put_batch(s.keys, s.blocks()))


@pytest.mark.parametrize("q_heads", [2, 4, 8])  # MHA, and GQA groups of 2 and 4
@pytest.mark.parametrize("layer", [0, 1])
def test_attend_matches_full_attention(client: KvClient, q_heads: int, layer: int) -> None:
    base = Sequence(40, seed=1)
    seqs = [base, Sequence(16, 2), Sequence(17, 3), Sequence(5, 4), Sequence(64, 5), Sequence(50, 6, prefix=base)]
    assert seqs[-1].keys[:2] == base.keys[:2]  # a shared prefix: the same blocks, leased once
    put(client, seqs)
    q = queries(len(seqs), q_heads, seed=q_heads + layer)
    res = run(client, seqs, q, layer)
    assert res.missing == {}
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(res.outputs[i], s.expected(q[i], layer), rtol=2e-5, atol=2e-6)
    full_blocks = sum(len(s.keys) for s in seqs)
    tails = sum(s.k.shape[1] - s.full for s in seqs)
    slab = LAYOUT.slab_floats * 4
    assert res.kv_bytes == 2 * (full_blocks * slab + tails * LAYOUT.row * 4)
    assert res.gathered_bytes == 2 * tails * LAYOUT.row * 4  # only the tails: the blocks were read in place


@pytest.mark.skipif(not have_numba(), reason="numba is not installed")
def test_a_daemon_with_the_numba_kernel_gives_the_same_outputs() -> None:
    with ServerThread(ServerConfig(dram_bytes=8 * MiB, max_object_bytes=MiB, attention_kernel="numba",
                                   attention_threads=2)) as srv, KvClient(srv.address, NS, shm=True) as c:
        seqs = [Sequence(n, 70 + n) for n in (1, 12, 13, 24, 50, 7)]
        put(c, seqs)
        q = queries(len(seqs), 8, seed=7)
        res = run(c, seqs, q, 1)
        for i, s in enumerate(seqs):
            np.testing.assert_allclose(res.outputs[i], s.expected(q[i], 1), rtol=2e-5, atol=2e-6)


def test_a_missing_block_is_a_clear_miss_for_its_sequence_only(client: KvClient) -> None:
    seqs = [Sequence(48, 11), Sequence(48, 12), Sequence(20, 13)]
    put(client, seqs)
    keys = [s.keys for s in seqs]
    keys[1] = keys[1][:2] + [os.urandom(16)]  # its third block was never stored
    q = queries(3, 4)
    res = run(client, seqs, q, 0, keys)
    assert res.missing == {1: 2}
    assert (res.outputs[1] == 0).all()
    for i in (0, 2):
        np.testing.assert_allclose(res.outputs[i], seqs[i].expected(q[i], 0), rtol=2e-5, atol=2e-6)


def test_evicted_blocks_are_misses_never_wrong_outputs() -> None:
    with ServerThread(ServerConfig(dram_bytes=MiB, max_object_bytes=64 * 1024, policy="lru")) as srv, \
            KvClient(srv.address, NS, shm=True) as c:
        seqs = [Sequence(64, 20 + i) for i in range(3)]
        put(c, seqs)
        filler = Sequence(12 * 86, 30)  # 1 MiB more: older blocks go
        blocks = filler.blocks()
        for i in range(0, 86, 8):
            assert all(st.stored for st in c.put_batch(filler.keys[i:i + 8], blocks[i:i + 8]))
        q = queries(3, 4)
        res = run(c, seqs, q, 1)
        for i, s in enumerate(seqs):
            tiers = c.exists(s.keys)
            gone = next((j for j, t in enumerate(tiers) if t is Tier.NONE), None)
            if gone is None:
                np.testing.assert_allclose(res.outputs[i], s.expected(q[i], 1), rtol=2e-5, atol=2e-6)
            else:
                assert res.missing[i] == gone and (res.outputs[i] == 0).all()
        assert res.missing  # the filler did push some of them out


def test_blocks_removed_and_pushed_out_during_a_batch_do_not_change_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with ServerThread(ServerConfig(dram_bytes=2 * MiB, max_object_bytes=64 * 1024, policy="lru")) as srv, \
            KvClient(srv.address, NS, shm=True) as c, KvClient(srv.address, NS, shm=True) as other:
        seqs = [Sequence(40, 40 + i) for i in range(4)]
        put(c, seqs)
        store = srv.server.store
        real = serve_mod.attend
        vandalised = []

        def racing(*args, **kwargs):  # type: ignore[no-untyped-def]
            """Runs in the worker thread between leasing and computing: another client strikes."""
            all_keys = [k for s in seqs for k in s.keys]
            removed = asyncio.run_coroutine_threadsafe(store.remove(NS.name, all_keys), srv.loop).result(30)
            filler = Sequence(12 * 256, 99)  # 3 MiB of new blocks into 2 MiB: everything unleased goes
            statuses = other.put_batch(filler.keys, filler.blocks())
            vandalised.append((removed, statuses))
            return real(*args, **kwargs)

        monkeypatch.setattr(serve_mod, "attend", racing)
        q = queries(4, 8)
        res = run(c, seqs, q, 0)
        (removed, statuses), = vandalised
        assert removed == [Status.OK] * len(removed)
        assert Status.OK in statuses and Status.NO_SPACE in statuses  # room taken, but never the leased pages
        assert res.missing == {}
        for i, s in enumerate(seqs):
            np.testing.assert_allclose(res.outputs[i], s.expected(q[i], 0), rtol=2e-5, atol=2e-6)
        monkeypatch.setattr(serve_mod, "attend", real)
        again = run(c, seqs, q, 0)  # now they are gone: misses
        assert again.missing == {i: 0 for i in range(4)} and (again.outputs == 0).all()


def test_a_block_split_over_arena_extents_is_gathered_correctly() -> None:
    with ServerThread(ServerConfig(dram_bytes=MiB, max_object_bytes=64 * 1024)) as srv, \
            KvClient(srv.address, NS, shm=True) as c:
        small = [os.urandom(16) for _ in range(255)]  # one page each: the arena is full
        c.put_batch(small, [np.full(4096, i, dtype=np.uint8) for i in range(255)])
        c.remove(small[::2])  # 128 free pages, none next to another
        seq = Sequence(33, 50)
        put(c, [seq])
        q = queries(1, 4)
        res = run(c, [seq], q, 1)
        assert res.missing == {}
        tail = (seq.k.shape[1] - seq.full) * LAYOUT.row * 4 * 2
        # each block got three one-page runs: layer 1's K slab (bytes 6144-9215) straddles two of
        # them and is gathered; its V slab (9216-12287) lies in one and is read in place
        assert len(seq.keys) == 2 and res.gathered_bytes - tail == 2 * LAYOUT.slab_floats * 4
        np.testing.assert_allclose(res.outputs[0], seq.expected(q[0], 1), rtol=2e-5, atol=2e-6)


def test_bad_attend_requests_are_refused_clearly(client: KvClient, server: ServerThread) -> None:
    seq = Sequence(32, 60)
    put(client, [seq])
    q = queries(1, 4)
    other = KvLayout(layers=1, kv_heads=2, head_dim=32, block_tokens=12)  # half the block size
    with pytest.raises(BadRequest, match="holds 12288 bytes"):
        attend(client, other, q, [seq.keys])
    with pytest.raises(BadRequest, match="multiple of kv_heads"):
        attend(client, LAYOUT, queries(1, 3), [seq.keys])
    with pytest.raises(BadRequest, match="layer 2"):
        attend(client, LAYOUT, q, [seq.keys], layer=2)
    with pytest.raises(ValueError, match="queries of shape"):
        attend(client, LAYOUT, queries(2, 4), [seq.keys])
    with pytest.raises(BadRequest, match="malformed key"):
        attend(client, LAYOUT, q, [[b"short"]])
    with KvClient(server.address, "another/fp32/kvblock/tp0of1") as stranger:
        with pytest.raises(UnknownNamespace):
            attend(stranger, LAYOUT, q, [seq.keys])
    # still serving, and an empty batch is no error
    assert attend(client, LAYOUT, np.zeros((0, 4, 32), np.float32), []).outputs.shape == (0, 4, 32)
    np.testing.assert_allclose(run(client, [seq], q, 0).outputs[0], seq.expected(q[0], 0), rtol=2e-5, atol=2e-6)
