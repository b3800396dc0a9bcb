"""Live mode: the simulator's transfers done for real, through running ``kvserve serve`` daemons.

Prefill instance ``i``'s DRAM is daemon ``addresses[i]``. Every block the
simulation moves is a real object of the cost model's block size, under a
key derived from its trace id (as ``kvserve replay --store`` does), with
bytes derived from the id:

* loading a prompt's cached blocks reads them from the instance's own daemon
  (local) or from the daemon that holds them (pool) into a buffer, timed;
* after a prefill, the blocks the instance did not hold (computed, or read
  from the pool) are put into its daemon, timed;
* a hot-block replica is a get from one daemon and a put into another, timed.

Every block read is checked twice: the client checks its checksum (a
mismatch is a miss) and the live backend checks its bytes are the ones put
for that id (``wrong_data``, which must stay 0). A block that is gone (the
daemon evicted it on its own) ends the cached prefix: the rest is computed,
never read wrong. A daemon that stops answering takes its instance down: the
simulator re-routes its requests and forgets its blocks.

Measured: those transfer times, which replace the cost model's load times in
the simulated timeline. Modelled: prefill compute, decode, the KV transfer
to decode. Transfers run one at a time from this process (no contention
between instances is measured).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import numpy as np

from kvserve.client import KvClient
from kvserve.conductor.costs import CostModel
from kvserve.conductor.report import percentile
from kvserve.conductor.sim import Load, Plan
from kvserve.errors import KvError, Status, StoreUnavailable
from kvserve.prefix import chain_seed
from kvserve.replay.drive import block_bytes_of, block_key

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 << 20  # blocks per call: at most this many bytes in flight


def holds_block(block_id: int, data: np.ndarray) -> bool:
    """Are these the bytes put for ``block_id`` (see ``replay.drive.block_bytes_of``)?"""
    head = np.frombuffer(block_id.to_bytes(8, "little"), dtype=np.uint8)[:len(data)]
    return bool((data[:len(head)] == head).all() and (data[len(head):] == block_id % 251).all())


class LiveBackend:
    name = "live"

    def __init__(self, addresses: Sequence[str], cost: CostModel, namespace: str, *, timeout_s: float = 10.0,
                 shm: bool | None = None) -> None:
        if not addresses:
            raise ValueError("live mode needs one daemon address per prefill instance")
        self.addresses = list(addresses)
        self.cost = cost
        self.block_bytes = cost.block_bytes
        self.namespace = namespace
        self.clients = [KvClient(a, namespace, timeout_s=timeout_s, shm=shm) for a in self.addresses]
        self.down: set[int] = set()
        self._seed = chain_seed(namespace, cost.block_tokens, "xxh3")
        self._per_call = max(1, CHUNK_BYTES // self.block_bytes)
        self._bufs = [np.empty(self.block_bytes, dtype=np.uint8) for _ in range(self._per_call)]
        self.load_s: list[float] = []      # per block read, seconds
        self.store_s = 0.0
        self.replica_s = 0.0
        self.counts = {"blocks_read": 0, "blocks_put": 0, "bytes_read": 0, "bytes_put": 0, "wrong_data": 0,
                       "missing": 0, "not_stored": 0}

    def close(self) -> None:
        for c in self.clients:
            c.close()

    def cache_blocks(self) -> int:
        """Blocks each daemon's DRAM holds (the smallest of them): the simulated cache size.

        KvError if a daemon does not answer or cannot hold a block at all.
        """
        sizes = []
        charge = -(-self.block_bytes // 4096) * 4096  # the arena's default page
        for address, c in zip(self.addresses, self.clients):
            s = c.stats()
            if s.max_object_bytes < self.block_bytes:
                raise KvError(f"blocks of {self.block_bytes} bytes ({self.cost.name}) exceed the largest object "
                              f"{address} accepts ({s.max_object_bytes}): pick a smaller --model or "
                              f"--kv-bytes-per-token, or serve with a larger --max-object")
            sizes.append(int(s.dram.capacity) // charge)
        if min(sizes) < 2:
            raise KvError(f"a daemon's DRAM holds fewer than 2 blocks of {self.block_bytes} bytes: give it more --dram")
        return min(sizes)

    def policy(self) -> str:
        return str(self.clients[0].stats().policy)

    def key(self, block: int) -> bytes:
        return block_key(self._seed, block)

    # ------------------------------------------------------------- transfers

    def _read(self, src: int, blocks: Sequence[int]) -> tuple[int, float]:
        """Read blocks from daemon ``src``; (how many leading ones arrived intact, seconds)."""
        good, seconds = 0, 0.0
        for start in range(0, len(blocks), self._per_call):
            part = blocks[start:start + self._per_call]
            t0 = time.perf_counter()
            sizes = self.clients[src].get_into([self.key(b) for b in part], self._bufs[:len(part)])
            seconds += time.perf_counter() - t0
            for b, size, buf in zip(part, sizes, self._bufs):
                if size is None:
                    self.counts["missing"] += 1
                    return good, seconds
                self.counts["blocks_read"] += 1
                self.counts["bytes_read"] += size
                if size != self.block_bytes or not holds_block(b, buf[:size]):
                    self.counts["wrong_data"] += 1
                    log.error("block %d from %s came back with the wrong bytes: recomputed", b, self.addresses[src])
                    self.clients[src].remove([self.key(b)])  # so the recomputed block can be put again
                    return good, seconds
                good += 1
        return good, seconds

    def _put(self, inst: int, blocks: Sequence[int]) -> float:
        seconds = 0.0
        for start in range(0, len(blocks), self._per_call):
            part = blocks[start:start + self._per_call]
            values = [block_bytes_of(b, self.block_bytes) for b in part]
            t0 = time.perf_counter()
            statuses = self.clients[inst].put_batch([self.key(b) for b in part], values)
            seconds += time.perf_counter() - t0
            self.counts["blocks_put"] += len(part)
            self.counts["bytes_put"] += len(part) * self.block_bytes
            self.counts["not_stored"] += sum(1 for s in statuses if not Status(s).stored)
        return seconds

    def load(self, inst: int, plan: Plan) -> Load:
        if inst in self.down:
            return Load(0.0, 0, {inst})
        seconds, ok, i = 0.0, 0, 0
        while i < len(plan):  # runs of consecutive blocks from the same daemon, in prefix order
            src = plan[i][2]
            if src < 0:
                break  # a SuperFS-tier block: live mode runs without that tier
            j = i
            while j < len(plan) and plan[j][2] == src:
                j += 1
            run = [b for b, _, _ in plan[i:j]]
            try:
                good, s = self._read(src, run)
            except StoreUnavailable:
                log.warning("kvserve daemon %s is down", self.addresses[src])
                self.down.add(src)
                return Load(seconds, ok, {src})
            except KvError as e:
                log.error("reading blocks from %s failed (%s): recomputed", self.addresses[src], e)
                return Load(seconds, ok)
            seconds += s
            self.load_s.extend([s / max(1, len(run))] * good)
            ok += good
            if good < len(run):
                break
            i = j
        return Load(seconds, ok)

    def store(self, inst: int, blocks: Sequence[int]) -> set[int]:
        if inst in self.down or not blocks:
            return {inst} & self.down
        try:
            self.store_s += self._put(inst, blocks)
        except StoreUnavailable:
            log.warning("kvserve daemon %s is down", self.addresses[inst])
            self.down.add(inst)
            return {inst}
        return set()

    def replicate(self, block: int, source: int, target: int) -> tuple[float, set[int]]:
        for i in (source, target):
            if i in self.down:
                return 0.0, {i}
        try:
            good, s = self._read(source, [block])
        except StoreUnavailable:
            self.down.add(source)
            return 0.0, {source}
        if not good:
            return s, set()
        try:
            s += self._put(target, [block])
        except StoreUnavailable:
            self.down.add(target)
            return s, {target}
        self.replica_s += s
        return s, set()

    def summary(self) -> dict[str, Any]:
        ms = [x * 1000 for x in self.load_s]
        return {
            "backend": "live",
            "daemons": self.addresses,
            "block_bytes": self.block_bytes,
            "measured": ["block loads from the instance's own daemon and from other daemons (the pool)",
                         "block stores after prefill", "hot-block replica copies"],
            "modelled": ["prefill compute", "decode steps", "KV transfer to decode"],
            "load_ms_per_block": {"p50": _r(percentile(ms, 0.5)), "p99": _r(percentile(ms, 0.99))},
            "load_seconds": round(sum(self.load_s), 3),
            "store_seconds": round(self.store_s, 3),
            "replica_seconds": round(self.replica_s, 3),
            "daemons_down": sorted(self.addresses[i] for i in self.down),
            **self.counts,
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
