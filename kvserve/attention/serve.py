"""The daemon's side of Attend: decode attention over blocks in its own DRAM tier, in place.

For a batch: every block the sequences name is looked up once and leased
(``KvStore.acquire``): a leased object is never evicted, and if it is
removed meanwhile its pages stay allocated until the lease goes, so the
bytes read are always the committed ones. A block the store does not hold
makes its sequence a clear miss (status MISSING, the index of the block, a
zero output row): the other sequences are computed. Then each block's K and
V slabs of the requested layer are located in the arena and handed to the
kernel as offsets, read where they are: nothing is copied, except a slab
that straddles two extents of the arena (rare: the allocator places
same-size blocks in one run), a block held only outside DRAM, and the
request's tail tokens, which go to a small gather buffer (turned head-major
like the blocks). The kernel runs on worker threads (it releases the GIL),
one batch at a time, so the daemon's event loop keeps serving gets and puts
meanwhile.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from kvserve.attention.kernel import Segments, attend
from kvserve.attention.layout import DTYPE, KvLayout
from kvserve.errors import BadRequest, Status
from kvserve.store import Found, KvStore
from kvserve.v1 import kvserve_pb2 as pb

log = logging.getLogger(__name__)

Extent = tuple[int, int]


def locate(extents: Sequence[Extent], start: int, length: int) -> int | None:
    """Arena byte offset of bytes [start, start+length) of an object, if they are in one extent."""
    base = 0
    for off, n in extents:
        if start < base + n:
            return off + start - base if start + length <= base + n else None
        base += n
    return None


def slice_object(extents: Sequence[Extent], arena: np.ndarray, start: int, length: int) -> np.ndarray:
    """Copy bytes [start, start+length) of an object laid out over several extents."""
    out = np.empty(length, dtype=np.uint8)
    base = pos = 0
    for off, n in extents:
        lo, hi = max(start, base), min(start + length, base + n)
        if lo < hi:
            out[pos:pos + hi - lo] = arena[off + lo - base:off + hi - base]
            pos += hi - lo
        base += n
    return out


class _Gather:
    """The few float32 runs that cannot be read in place, packed into one buffer."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.floats = 0

    def add(self, data: np.ndarray) -> int:
        """Append float32 data; the kernel's (negative) offset for it."""
        off = self.floats
        self.parts.append(data)
        self.floats += data.size
        return -1 - off

    def buffer(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=DTYPE)


class AttentionService:
    def __init__(self, store: KvStore, threads: int = 0, kernel: str = "numpy") -> None:
        self.store = store
        self.threads = threads or os.cpu_count() or 1
        self.kernel = kernel
        arena = store.arena.view
        self.arena_bytes = arena
        self.arena_floats = arena[:arena.size - arena.size % 4].view(DTYPE)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="kvserve-attend")
        self._one_batch = asyncio.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        # our views of the arena would keep it mapped after the store closes it
        self.arena_bytes = np.empty(0, dtype=np.uint8)
        self.arena_floats = np.empty(0, dtype=DTYPE)

    async def attend(self, req: pb.AttendRequest) -> pb.AttendReply:
        layout = KvLayout(req.layers, req.kv_heads, req.head_dim, req.block_tokens)
        layout.check_layer(req.layer)
        if req.q_heads < 1 or req.q_heads % req.kv_heads:
            raise BadRequest(f"q_heads ({req.q_heads}) must be a positive multiple of kv_heads ({req.kv_heads})")
        batch = len(req.sequences)
        queries = _floats(req.queries, batch * req.q_heads * req.head_dim, "queries")
        tail_total = sum(s.tail_tokens for s in req.sequences)
        tail_k = _floats(req.tail_k, tail_total * layout.row, "tail_k")
        tail_v = _floats(req.tail_v, tail_total * layout.row, "tail_v")
        keys = list(dict.fromkeys(k for s in req.sequences for k in s.keys))  # each block leased once
        found = await self.store.acquire(req.namespace, keys)
        try:
            by_key = dict(zip(keys, found))
            segs, gather, results, kv_bytes = self._segments(req, layout, by_key, tail_k, tail_v)
            async with self._one_batch:
                t0 = time.perf_counter()
                out = await asyncio.get_running_loop().run_in_executor(None, lambda: attend(
                    self.arena_floats, gather.buffer(), segs, queries.reshape(batch, req.q_heads, req.head_dim),
                    kv_heads=layout.kv_heads, head_dim=layout.head_dim,
                    scale=req.scale if req.scale else 1.0 / math.sqrt(layout.head_dim),
                    threads=self.threads, kernel=self.kernel, pool=self._pool))
                seconds = time.perf_counter() - t0
        finally:
            self.store.release(found)
        for i, r in enumerate(results):
            if r.status != Status.OK:
                out[i] = 0.0
        return pb.AttendReply(outputs=out.tobytes(), results=results, kv_bytes=kv_bytes,
                              gathered_bytes=gather.floats * DTYPE.itemsize, compute_seconds=seconds)

    def _segments(self, req: pb.AttendRequest, layout: KvLayout, by_key: dict[bytes, Found | None],
                  tail_k: np.ndarray, tail_v: np.ndarray) -> tuple[Segments, _Gather, list[pb.AttendResult], int]:
        gather = _Gather()
        start, ks, vs, ns, hss = [0], [], [], [], []
        results = []
        slab = layout.slab_floats * DTYPE.itemsize
        k_off, v_off = layout.k_offset(req.layer), layout.v_offset(req.layer)
        kv_bytes = 0
        tail_pos = 0
        for seq in req.sequences:
            missing = next((i for i, k in enumerate(seq.keys) if by_key[k] is None), None)
            if missing is not None:
                results.append(pb.AttendResult(status=pb.MISSING, missing_block=missing))
            else:
                results.append(pb.AttendResult(status=pb.OK))
                for i, k in enumerate(seq.keys):
                    f = by_key[k]
                    assert f is not None
                    if f.size != layout.block_bytes:
                        raise BadRequest(f"block {i} ({k.hex()}) holds {f.size} bytes; the layout "
                                         f"{layout} needs {layout.block_bytes}")
                    ks.append(self._slab(f, k_off, slab, gather))
                    vs.append(self._slab(f, v_off, slab, gather))
                    ns.append(layout.block_tokens)
                    hss.append(layout.head_stride)
                    kv_bytes += 2 * slab
                n = seq.tail_tokens
                if n:  # token-major as sent; head-major like the blocks for the kernel
                    lo, hi = tail_pos * layout.row, (tail_pos + n) * layout.row
                    shape = (n, layout.kv_heads, layout.head_dim)
                    ks.append(gather.add(tail_k[lo:hi].reshape(shape).transpose(1, 0, 2).reshape(-1)))
                    vs.append(gather.add(tail_v[lo:hi].reshape(shape).transpose(1, 0, 2).reshape(-1)))
                    ns.append(n)
                    hss.append(n * layout.head_dim)
                    kv_bytes += 2 * n * layout.row * DTYPE.itemsize
            tail_pos += seq.tail_tokens
            start.append(len(ns))
        segs = Segments(*(np.array(x, dtype=np.int64) for x in (start, ks, vs, ns, hss)))
        return segs, gather, results, kv_bytes

    def _slab(self, f: Found, offset: int, length: int, gather: _Gather) -> int:
        """The kernel's offset for one slab of a block: in place in the arena if contiguous there."""
        if f.obj is not None:
            at = locate(f.obj.extents, offset, length)
            if at is not None:
                return at // DTYPE.itemsize  # extents are page-aligned, slabs float-aligned
            return gather.add(slice_object(f.obj.extents, self.arena_bytes, offset, length).view(DTYPE))
        assert f.data is not None  # found on SuperFS with no DRAM room to promote it: its bytes
        return gather.add(np.frombuffer(f.data, dtype=DTYPE, count=length // DTYPE.itemsize,
                                        offset=offset))


def _floats(data: bytes, count: int, name: str) -> np.ndarray:
    if len(data) != count * DTYPE.itemsize:
        raise BadRequest(f"{name}: {len(data)} bytes, the shapes need {count * DTYPE.itemsize}")
    return np.frombuffer(data, dtype=DTYPE)
