"""Where each request goes: the conductor and the baselines it is compared with.

Every scheduler answers, at a request's arrival, with a :class:`Route`
(prefill instance, decode instance) or, the conductor only, a
:class:`Reject`. None of them reads the request's output length (a real
scheduler does not know it); all of them see the same cluster state.

The conductor (after Mooncake's Conductor):

* prefill: the instance with the lowest estimated time to first token,
  ``wait + load + compute``: ``wait`` is what its queue holds (the estimates
  of the requests ahead), ``load`` moves the prompt's leading blocks to it
  (from its own DRAM, including blocks the requests ahead of it will have
  computed; from another instance's DRAM; from SuperFS; each at its
  bandwidth), ``compute`` prefills the rest (the cost model);
* decode: the instance whose next step would be shortest once this request
  and those already on their way are in its batch, if its memory holds them;
* early rejection: when even the best prefill choice misses the TTFT
  objective, or no decode instance can take the request within the TBT
  objective (or its memory), the request is refused at arrival, before it
  costs anything;
* hot-block replication: a block that many recent requests reused (a
  decaying count over ``hot_window_s``) is copied to more instances in the
  background, so that later requests with that prefix are not tied to the
  few instances holding it.

Baselines, with the same decode rule where they have no own one: random,
round-robin, least-loaded (fewest requests queued or running; decode: fewest
KV tokens), prefix-affinity-only (the longest local prefix, ties to the least
loaded). They accept every request.
"""
from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

from kvserve.conductor.costs import CostModel, Objectives
from kvserve.conductor.state import DecodeInstance, KvPool, PrefillInstance, Request


@dataclass(frozen=True)
class Route:
    prefill: int
    decode: int            # -1: no decode phase (a single output token)
    est_ttft: float
    est_prefill_s: float


@dataclass(frozen=True)
class Reject:
    reason: str            # "ttft", "tbt", "decode-memory", "no-instance"
    est_ttft: float


@dataclass
class View:
    """The cluster as a scheduler sees it at time ``now``."""

    now: float
    cost: CostModel
    objectives: Objectives
    prefill: Sequence[PrefillInstance]
    decode: Sequence[DecodeInstance]
    pool: KvPool

    @property
    def up(self) -> list[bool]:
        return [p.up for p in self.prefill]


@dataclass(frozen=True)
class Estimate:
    inst: int
    ttft: float
    prefill_s: float
    local: int
    pool: int
    superfs: int


def estimate(view: View, inst: PrefillInstance, req: Request) -> Estimate:
    """The estimated time to first token of ``req`` if it were sent to ``inst`` now."""
    ids, up = req.ids, view.up
    local = inst.local_prefix(ids)
    pool = sfs = 0
    for b in ids[local:]:
        if view.pool.holder(b, inst.idx, up) is not None:
            pool += 1
        elif view.pool.in_superfs(b):
            sfs += 1
        else:
            break
    cached, new = split_tokens(view.cost, req.input_length, local + pool + sfs)
    prefill_s = view.cost.load_s(local, pool, sfs) + view.cost.prefill_s(new, cached)
    return Estimate(inst.idx, inst.est_wait(view.now) + prefill_s, prefill_s, local, pool, sfs)


def split_tokens(cost: CostModel, input_length: int, cached_blocks: int) -> tuple[int, int]:
    """(cached, new) prompt tokens; at least one token is computed (it yields the first output token)."""
    cached = min(input_length - 1, cached_blocks * cost.block_tokens) if input_length > 0 else 0
    cached = max(0, cached)
    return cached, max(1, input_length - cached)


def decode_step_estimate(view: View, d: DecodeInstance, req: Request) -> tuple[float, bool]:
    """(predicted step time with ``req`` in the batch, does its memory hold it)."""
    batch, tokens = d.predicted()
    tokens += req.input_length
    return view.cost.decode_step_s(batch + 1, tokens), tokens <= d.capacity * d.HEADROOM


def _least_tokens(view: View) -> int:
    ups = [d for d in view.decode if d.up]
    return min(ups, key=lambda d: (d.predicted()[1], d.idx)).idx if ups else -1


def _needs_decode(req: Request) -> bool:
    return req.output_length > 1


class Scheduler(ABC):
    name: str = "?"
    baseline: bool = True

    @abstractmethod
    def route(self, req: Request, view: View) -> Route | Reject: ...

    def replications(self, req: Request, route: Route, view: View) -> list[tuple[int, int]]:
        """(block, target instance) copies to make after routing ``req``; none by default."""
        return []

    def copied(self, block: int, target: int) -> None:
        """A copy :meth:`replications` asked for is done (or failed)."""

    def _route(self, req: Request, view: View, inst: int, decode: int) -> Route:
        est = estimate(view, view.prefill[inst], req)
        return Route(inst, decode if _needs_decode(req) else -1, est.ttft, est.prefill_s)


class RandomScheduler(Scheduler):
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def route(self, req: Request, view: View) -> Route | Reject:
        ps = [p.idx for p in view.prefill if p.up]
        ds = [d.idx for d in view.decode if d.up]
        if not ps or not ds:
            return Reject("no-instance", math.inf)
        return self._route(req, view, self.rng.choice(ps), self.rng.choice(ds))


class RoundRobinScheduler(Scheduler):
    name = "round-robin"

    def __init__(self) -> None:
        self.next_p = 0
        self.next_d = 0

    def _next(self, up: list[bool], start: int) -> int:
        for k in range(len(up)):
            i = (start + k) % len(up)
            if up[i]:
                return i
        return -1

    def route(self, req: Request, view: View) -> Route | Reject:
        p = self._next(view.up, self.next_p)
        d = self._next([d.up for d in view.decode], self.next_d)
        if p < 0 or d < 0:
            return Reject("no-instance", math.inf)
        self.next_p, self.next_d = p + 1, d + 1
        return self._route(req, view, p, d)


class LeastLoadedScheduler(Scheduler):
    name = "least-loaded"

    def route(self, req: Request, view: View) -> Route | Reject:
        ups = [p for p in view.prefill if p.up]
        d = _least_tokens(view)
        if not ups or d < 0:
            return Reject("no-instance", math.inf)
        p = min(ups, key=lambda p: (p.outstanding(), p.idx))
        return self._route(req, view, p.idx, d)


class PrefixAffinityScheduler(Scheduler):
    name = "prefix-affinity"

    def route(self, req: Request, view: View) -> Route | Reject:
        ups = [p for p in view.prefill if p.up]
        d = _least_tokens(view)
        if not ups or d < 0:
            return Reject("no-instance", math.inf)
        p = min(ups, key=lambda p: (-p.local_prefix(req.ids), p.outstanding(), p.idx))
        return self._route(req, view, p.idx, d)


class Conductor(Scheduler):
    baseline = False

    def __init__(self, *, reject: bool = True, replicate: bool = True, hot_count: float = 8.0,
                 hot_window_s: float = 60.0, replicas: float = 0.5, name: str = "conductor") -> None:
        """``replicas``: a hot block is copied until this share of the up instances holds it."""
        self.reject = reject
        self.replicate = replicate
        self.hot_count = hot_count
        self.hot_window_s = hot_window_s
        self.replicas = replicas
        self.name = name
        self._heat: dict[int, tuple[float, float]] = {}   # block -> (decayed count, at time)
        self.copying: set[tuple[int, int]] = set()        # (block, target) copies under way

    def route(self, req: Request, view: View) -> Route | Reject:
        ests = [estimate(view, p, req) for p in view.prefill if p.up]
        if not ests:
            return Reject("no-instance", math.inf)
        best = min(ests, key=lambda e: (e.ttft, e.inst))
        if self.reject and best.ttft > view.objectives.ttft_s:
            return Reject("ttft", best.ttft)
        decode = -1
        if _needs_decode(req):
            options = []
            for d in view.decode:
                if d.up:
                    step, fits = decode_step_estimate(view, d, req)
                    options.append((not fits, step, d.idx))
            if not options:
                return Reject("no-instance", best.ttft)
            no_room, step, decode = min(options)
            if self.reject and no_room:
                return Reject("decode-memory", best.ttft)
            if self.reject and step > view.objectives.tbt_s:
                return Reject("tbt", best.ttft)
        return Route(best.inst, decode, best.ttft, best.prefill_s)

    def replications(self, req: Request, route: Route, view: View) -> list[tuple[int, int]]:
        if not self.replicate:
            return []
        up = view.up
        n_up = sum(up)
        want = max(1, math.ceil(self.replicas * n_up))
        out: list[tuple[int, int]] = []
        for b in req.ids:
            if not (b in view.prefill[route.prefill].cache or view.pool.holder(b, route.prefill, up) is not None):
                break  # only blocks that are reused: the cached prefix
            heat = self._bump(b, view.now)
            if heat < self.hot_count:
                continue
            holders = {i for i in view.pool.holders.get(b, ()) if up[i]}
            holders |= {t for (bb, t) in self.copying if bb == b}
            if len(holders) >= want:
                continue
            spare = sorted((p for p in view.prefill if p.up and p.idx not in holders),
                           key=lambda p: (p.est_wait(view.now), p.idx))
            for p in spare[:want - len(holders)]:
                out.append((b, p.idx))
                self.copying.add((b, p.idx))
        return out

    def copied(self, block: int, target: int) -> None:
        self.copying.discard((block, target))

    def _bump(self, block: int, now: float) -> float:
        count, at = self._heat.get(block, (0.0, now))
        count = count * math.exp(-(now - at) / self.hot_window_s) + 1.0
        self._heat[block] = (count, now)
        return count


BASELINES = ("random", "round-robin", "least-loaded", "prefix-affinity")
ABLATIONS = ("conductor-no-reject", "conductor-no-replication")
SCHEDULERS = ("conductor",) + BASELINES + ABLATIONS


def make_scheduler(name: str, seed: int = 0) -> Scheduler:
    if name == "conductor":
        return Conductor()
    if name == "conductor-no-reject":
        return Conductor(reject=False, name=name)
    if name == "conductor-no-replication":
        return Conductor(replicate=False, name=name)
    if name == "random":
        return RandomScheduler(seed)
    if name == "round-robin":
        return RoundRobinScheduler()
    if name == "least-loaded":
        return LeastLoadedScheduler()
    if name == "prefix-affinity":
        return PrefixAffinityScheduler()
    raise ValueError(f"unknown scheduler {name!r}: one of {', '.join(SCHEDULERS)}")
