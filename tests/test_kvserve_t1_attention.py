"""kvserve tier 1: the decode-attention kernel against references, with no daemon.

The references are written here from the definition, in float64: plain
numpy full attention over the whole K and V of each sequence, and torch's
scaled_dot_product_attention when torch is installed. The kernel (numba and
numpy) must agree to float32 tolerance for odd lengths, lengths on and next
to block boundaries, tails that are not in blocks, and every grouped-query
ratio from multi-head to multi-query.
"""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from kvserve.attention.kernel import Segments, attend, have_numba
from kvserve.attention.layout import KvLayout
from kvserve.attention.serve import locate, slice_object

KERNELS = ["numpy"] + (["numba"] if have_numba() else [])
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """softmax(q K^T / sqrt(d)) V for one sequence: q [hq, d], k and v [n, hkv, d]; float64."""
    group = q.shape[0] // k.shape[1]
    kk = np.repeat(k.astype(np.float64), group, axis=1)  # query head h reads KV head h // group
    vv = np.repeat(v.astype(np.float64), group, axis=1)
    s = np.einsum("hd,nhd->hn", q.astype(np.float64), kk) / math.sqrt(q.shape[1])
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return np.einsum("hn,nhd->hd", p, vv)


class Batch:
    """Sequences of given lengths, cut into blocks of ``bt`` tokens laid out head-major in one flat
    'arena' (blocks of all sequences interleaved, as a store would place them), the rest as tails."""

    def __init__(self, lengths: list[int], kv_heads: int, q_heads: int, head_dim: int, bt: int, seed: int = 0,
                 tails_in_gather: bool = True) -> None:
        rng = np.random.default_rng(seed)
        self.lengths, self.kvh, self.qh, self.d, self.bt = lengths, kv_heads, q_heads, head_dim, bt
        self.k = [rng.standard_normal((n, kv_heads, head_dim), dtype=np.float32) for n in lengths]
        self.v = [rng.standard_normal((n, kv_heads, head_dim), dtype=np.float32) for n in lengths]
        self.q = rng.standard_normal((len(lengths), q_heads, head_dim), dtype=np.float32)
        arena: list[np.ndarray] = [np.zeros(17, dtype=np.float32)]  # an offset that is not 0
        gather: list[np.ndarray] = []
        pos, gpos = 17, 0
        start, ks, vs, ns, hss = [0], [], [], [], []

        def head_major(x: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(-1)

        where = {}
        blocks = sorted(((i, j) for i, n in enumerate(lengths) for j in range(n // bt)),
                        key=lambda ij: (ij[1], ij[0]))  # block 0 of every sequence, then block 1, ...
        for i, j in blocks:
            for kind, src in (("k", self.k[i]), ("v", self.v[i])):
                arena.append(head_major(src[j * bt:(j + 1) * bt]))
                where[(i, j, kind)] = pos
                pos += arena[-1].size
        for i, n in enumerate(lengths):
            for j in range(n // bt):
                ks.append(where[(i, j, "k")])
                vs.append(where[(i, j, "v")])
                ns.append(bt)
                hss.append(bt * head_dim)
            tail = n % bt
            if tail:
                lo = (n // bt) * bt
                for src, out in ((self.k[i], ks), (self.v[i], vs)):
                    data = head_major(src[lo:])
                    if tails_in_gather:
                        gather.append(data)
                        out.append(-1 - gpos)
                        gpos += data.size
                    else:
                        arena.append(data)
                        out.append(pos)
                        pos += data.size
                ns.append(tail)
                hss.append(tail * head_dim)
            start.append(len(ns))
        self.arena = np.concatenate(arena)
        self.gather = np.concatenate(gather) if gather else np.zeros(0, dtype=np.float32)
        self.segs = Segments(*(np.array(x, dtype=np.int64) for x in (start, ks, vs, ns, hss)))

    def run(self, kernel: str, threads: int = 1) -> np.ndarray:
        return attend(self.arena, self.gather, self.segs, self.q, kv_heads=self.kvh, head_dim=self.d,
                      kernel=kernel, threads=threads)

    def expected(self, i: int) -> np.ndarray:
        return reference(self.q[i], self.k[i], self.v[i])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("kv_heads,q_heads", [(4, 4), (4, 8), (2, 8), (1, 8), (2, 14)])
def test_gqa_ratios_and_odd_lengths_match_full_attention(kernel: str, kv_heads: int, q_heads: int) -> None:
    bt = 16
    lengths = [1, 7, 15, 16, 17, 31, 32, 33, 100, 129]  # around block boundaries, and odd
    b = Batch(lengths, kv_heads, q_heads, 32, bt, seed=kv_heads * 100 + q_heads)
    out = b.run(kernel)
    for i in range(len(lengths)):
        np.testing.assert_allclose(out[i], b.expected(i), rtol=2e-5, atol=2e-6, err_msg=f"sequence {i}")


@pytest.mark.parametrize("kernel", KERNELS)
def test_blocks_only_tails_only_and_tails_in_the_arena(kernel: str) -> None:
    bt = 64
    lengths = [64, 128, 640, 63, 1, 65]  # whole blocks only, tails only, both
    for in_gather in (True, False):
        b = Batch(lengths, 2, 4, 64, bt, seed=3, tails_in_gather=in_gather)
        out = b.run(kernel)
        for i in range(len(lengths)):
            np.testing.assert_allclose(out[i], b.expected(i), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("kernel", KERNELS)
def test_large_scores_do_not_overflow(kernel: str) -> None:
    b = Batch([300, 5], 2, 4, 16, 32, seed=5)
    b.q *= 40.0  # scores of several hundred: exp() would overflow without the running maximum
    b.arena *= 3.0
    b.gather *= 3.0
    for arr in b.k + b.v:
        arr *= 3.0
    out = b.run(kernel)
    assert np.isfinite(out).all()
    for i in range(2):  # scores near 500 keep ~1e-5 of float32 precision, which exp() scales up
        np.testing.assert_allclose(out[i], b.expected(i), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("kernel", KERNELS)
def test_threads_and_kernels_agree(kernel: str) -> None:
    b = Batch([33, 500, 17, 250, 1, 64, 77], 4, 16, 64, 32, seed=9)
    one = b.run(kernel, threads=1)
    np.testing.assert_array_equal(one, b.run(kernel, threads=3))
    np.testing.assert_allclose(one, b.run(KERNELS[-1]), rtol=2e-5, atol=2e-6)


def test_an_empty_sequence_gets_zeros_and_bad_shapes_are_refused() -> None:
    segs = Segments(np.array([0, 0], dtype=np.int64), *(np.zeros(0, dtype=np.int64) for _ in range(4)))
    out = attend(np.zeros(4, np.float32), np.zeros(0, np.float32), segs, np.ones((1, 2, 2), np.float32),
                 kv_heads=1, head_dim=2)
    assert (out == 0).all()
    with pytest.raises(ValueError, match="not a multiple"):
        attend(np.zeros(4, np.float32), np.zeros(0, np.float32), segs, np.ones((1, 3, 2), np.float32),
               kv_heads=2, head_dim=2)
    with pytest.raises(ValueError, match="kernel must be one of"):
        attend(np.zeros(4, np.float32), np.zeros(0, np.float32), segs, np.ones((1, 2, 2), np.float32),
               kv_heads=1, head_dim=2, kernel="cuda")


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("kv_heads,q_heads", [(8, 8), (8, 32), (1, 16)])
def test_matches_torch_scaled_dot_product_attention(kv_heads: int, q_heads: int) -> None:
    import torch
    import torch.nn.functional as F

    b = Batch([1, 255, 256, 257, 1000], kv_heads, q_heads, 64, 128, seed=11)
    out = b.run("numpy")
    group = q_heads // kv_heads
    for i in range(len(b.lengths)):
        q = torch.from_numpy(b.q[i]).to(torch.float64)[:, None, :]                   # [hq, 1, d]
        k = torch.from_numpy(b.k[i]).to(torch.float64).transpose(0, 1)               # [hkv, n, d]
        v = torch.from_numpy(b.v[i]).to(torch.float64).transpose(0, 1)
        k, v = k.repeat_interleave(group, dim=0), v.repeat_interleave(group, dim=0)  # GQA
        want = F.scaled_dot_product_attention(q, k, v)[:, 0, :].numpy()
        np.testing.assert_allclose(out[i], want, rtol=2e-5, atol=2e-6)


def test_layout_offsets_and_packing() -> None:
    lay = KvLayout(layers=3, kv_heads=2, head_dim=4, block_tokens=5)
    k = np.arange(3 * 5 * 2 * 4, dtype=np.float32).reshape(3, 5, 2, 4)
    v = -k
    raw = lay.pack(k, v)
    assert raw.nbytes == lay.block_bytes == 3 * 2 * 5 * 2 * 4 * 4
    floats = raw.view(np.float32)
    for layer in range(3):  # head-major slabs: head h's tokens at h * head_stride
        ko, vo = lay.k_offset(layer) // 4, lay.v_offset(layer) // 4
        assert lay.head_stride == 5 * 4
        np.testing.assert_array_equal(floats[ko:ko + lay.slab_floats].reshape(2, 5, 4), k[layer].transpose(1, 0, 2))
        np.testing.assert_array_equal(floats[vo:vo + lay.slab_floats].reshape(2, 5, 4), v[layer].transpose(1, 0, 2))
    with pytest.raises(ValueError, match="layer 3"):
        lay.check_layer(3)
    with pytest.raises(ValueError, match="shape"):
        lay.pack(k[:1], v[:1])


def test_slabs_are_found_in_one_extent_or_gathered_from_several() -> None:
    arena = np.arange(100, dtype=np.uint8)
    extents = [(10, 8), (40, 8), (70, 8)]  # an object of 24 bytes in three pieces
    assert locate(extents, 0, 8) == 10 and locate(extents, 8, 8) == 40 and locate(extents, 17, 4) == 71
    assert locate(extents, 4, 8) is None and locate(extents, 20, 8) is None
    got = slice_object(extents, arena, 4, 16)
    np.testing.assert_array_equal(got, np.r_[14:18, 40:48, 70:74].astype(np.uint8))
