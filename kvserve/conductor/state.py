"""What the conductor sees and the simulator updates: instances, queues, where blocks are.

Pure bookkeeping, no time of its own: the simulator (``sim.py``) moves it
forward event by event, the schedulers (``schedulers.py``) read it to decide.

* :class:`PrefillInstance`: a FIFO queue of requests, the one being
  prefilled, a DRAM cache of blocks (a :class:`TierIndex` with the store's
  own eviction policies, one unit per block), and the blocks its accepted
  requests will have added by the time a new request would start there
  (``pending``).
* :class:`DecodeInstance`: continuous batching: a running batch, its KV
  tokens, requests waiting for memory and requests on their way from
  prefill.
* :class:`KvPool`: which instances hold each block in DRAM, and the SuperFS
  tier below them (blocks evicted from an instance's DRAM are demoted to it).
"""
from __future__ import annotations

import heapq
import math
from collections import Counter, deque
from dataclasses import dataclass, field

from kvserve.conductor.costs import ClusterShape, CostModel
from kvserve.policy import make_policy
from kvserve.replay.trace import TraceRequest
from kvserve.tier_index import TierIndex

LOCAL, POOL, SUPERFS = "local", "pool", "superfs"


@dataclass(eq=False)
class Request:
    """One trace request and everything that happened to it."""

    rid: int
    arrival: float
    trace: TraceRequest
    prefill: int = -1
    decode: int = -1
    est_ttft: float = math.nan
    est_prefill_s: float = 0.0      # the scheduler's estimate of its time on the prefill instance
    rejected: str = ""              # why it was rejected at arrival ("" if accepted)
    reroutes: int = 0
    prefill_start: float = math.nan
    first_token: float = math.nan
    finish: float = math.nan
    hits: Counter[str] = field(default_factory=Counter)         # blocks by where they came from
    hit_tokens: Counter[str] = field(default_factory=Counter)

    @property
    def ids(self) -> tuple[int, ...]:
        return self.trace.hash_ids

    @property
    def input_length(self) -> int:
        return self.trace.input_length

    @property
    def output_length(self) -> int:
        return max(1, self.trace.output_length)

    @property
    def ttft(self) -> float:
        return self.first_token - self.arrival

    @property
    def tbt(self) -> float:
        """Mean time between tokens, from the first token to the last (0 for a single token)."""
        if self.output_length <= 1:
            return 0.0
        return (self.finish - self.first_token) / (self.output_length - 1)


class PrefillInstance:
    def __init__(self, idx: int, shape: ClusterShape) -> None:
        self.idx = idx
        self.up = True
        self.cache: TierIndex[int] = TierIndex(shape.prefill_cache_blocks, make_policy(shape.cache_policy))
        self.busy: Counter[int] = Counter()   # cached blocks a running prefill reads: never evicted
        self.queue: deque[Request] = deque()
        self.running: Request | None = None
        self.running_end = 0.0
        self.queued_est_s = 0.0
        self.pending: Counter[int] = Counter()

    def est_wait(self, now: float) -> float:
        """Estimated time before a request accepted now would start."""
        ahead = max(0.0, self.running_end - now) if self.running is not None else 0.0
        return ahead + self.queued_est_s

    def outstanding(self) -> int:
        return len(self.queue) + (self.running is not None)

    def local_prefix(self, ids: tuple[int, ...]) -> int:
        """Leading blocks it holds or will hold (pending) before a request accepted now starts."""
        n = 0
        for b in ids:
            if b not in self.cache and not self.pending[b]:
                break
            n += 1
        return n

    def cached_prefix(self, ids: tuple[int, ...]) -> int:
        n = 0
        for b in ids:
            if b not in self.cache:
                break
            n += 1
        return n

    def accept(self, req: Request) -> None:
        self.queue.append(req)
        self.queued_est_s += req.est_prefill_s
        self.pending.update(req.ids)

    def forget(self, req: Request) -> None:
        """``req`` left (done, or re-routed): its blocks are no longer pending here."""
        self.pending.subtract(req.ids)
        for b in req.ids:
            if self.pending[b] <= 0:
                del self.pending[b]


class DecodeInstance:
    """Continuous batching; memory holds at most ``capacity`` KV tokens (admission leaves 10% headroom)."""

    HEADROOM = 0.9

    def __init__(self, idx: int, capacity_tokens: int) -> None:
        self.idx = idx
        self.up = True
        self.capacity = capacity_tokens
        self.step_no = 0
        self.stepping = False
        self.batch = 0
        self.context_tokens = 0
        self.finishing: list[tuple[int, int, Request]] = []   # (step it ends at, rid, request)
        self.waiting: deque[Request] = deque()
        self.waiting_tokens = 0
        self.inflight_tokens = 0
        self.inflight = 0

    def predicted(self) -> tuple[int, int]:
        """(batch, KV tokens) once what is waiting and on its way is admitted."""
        return (self.batch + len(self.waiting) + self.inflight,
                self.context_tokens + self.waiting_tokens + self.inflight_tokens)

    def send(self, req: Request) -> None:
        self.inflight += 1
        self.inflight_tokens += req.input_length

    def arrive(self, req: Request) -> None:
        self.inflight -= 1
        self.inflight_tokens -= req.input_length
        self.waiting.append(req)
        self.waiting_tokens += req.input_length

    def admit(self) -> list[Request]:
        """Move waiting requests into the batch while memory allows (always one into an empty batch)."""
        out = []
        while self.waiting:
            req = self.waiting[0]
            if self.batch and self.context_tokens + req.input_length > self.capacity * self.HEADROOM:
                break
            self.waiting.popleft()
            self.waiting_tokens -= req.input_length
            self.batch += 1
            self.context_tokens += req.input_length
            heapq.heappush(self.finishing, (self.step_no + req.output_length - 1, req.rid, req))
            out.append(req)
        return out

    def step_done(self) -> list[Request]:
        """One step ended: every running request gained a token; those at their last token leave."""
        self.step_no += 1
        self.context_tokens += self.batch
        done = []
        while self.finishing and self.finishing[0][0] <= self.step_no:
            _, _, req = heapq.heappop(self.finishing)
            self.batch -= 1
            self.context_tokens -= req.input_length + req.output_length - 1
            done.append(req)
        return done


class KvPool:
    """Block -> the up prefill instances holding it in DRAM; and the SuperFS tier under them."""

    def __init__(self, shape: ClusterShape) -> None:
        self.holders: dict[int, set[int]] = {}
        sfs = shape.superfs_blocks
        self.superfs: TierIndex[int] | None = None if sfs == 0 else TierIndex(sfs, make_policy(shape.cache_policy))
        self.demoted = 0

    def holder(self, block: int, exclude: int, up: list[bool]) -> int | None:
        """An up instance other than ``exclude`` holding ``block`` (the lowest index: deterministic)."""
        hs = self.holders.get(block)
        if not hs:
            return None
        cands = [h for h in hs if h != exclude and up[h]]
        return min(cands) if cands else None

    def in_superfs(self, block: int) -> bool:
        return self.superfs is not None and block in self.superfs

    def added(self, inst: int, block: int) -> None:
        self.holders.setdefault(block, set()).add(inst)

    def evicted(self, inst: int, block: int) -> None:
        hs = self.holders.get(block)
        if hs is not None:
            hs.discard(inst)
            if not hs:
                del self.holders[block]
        if self.superfs is not None and block not in self.superfs:
            for _ in self.superfs.evict_for(1) or ():
                pass
            if self.superfs.free >= 1:
                self.superfs.add(block, 1)
                self.demoted += 1

    def lost(self, inst: int, blocks: list[int]) -> None:
        """An instance went down: its DRAM blocks are gone (not demoted)."""
        for b in blocks:
            hs = self.holders.get(b)
            if hs is not None:
                hs.discard(inst)
                if not hs:
                    del self.holders[b]


def build(shape: ClusterShape, cost: CostModel) -> tuple[list[PrefillInstance], list[DecodeInstance], KvPool]:
    return ([PrefillInstance(i, shape) for i in range(shape.prefill)],
            [DecodeInstance(i, cost.decode_kv_tokens) for i in range(shape.decode)],
            KvPool(shape))
