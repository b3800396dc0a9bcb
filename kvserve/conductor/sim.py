"""A deterministic discrete-event simulation of a prefill/decode cluster under a scheduler.

Events, in time order (ties in the order they were scheduled):

* arrival (the trace's timestamp divided by ``speed``): the scheduler routes
  the request or rejects it;
* prefill start (the instance is free and the request is next in its FIFO
  queue): the prompt's leading blocks are classified where they are *now*
  (own DRAM, another instance's DRAM, SuperFS; the first block held nowhere
  ends the cached prefix), loaded (the backend says how long that took), and
  the rest is computed (the cost model); the prompt's KV streams to the
  decode instance meanwhile;
* prefill end: the first token; every block of the prompt is now in the
  instance's DRAM (what it evicts goes to SuperFS);
* decode arrival, decode steps (continuous batching: requests join and leave
  between steps), the last token;
* replica done: a hot block copied to another instance.

The same code runs the live mode: only the backend differs. The model
backend charges the cost model for every transfer; the live backend
(``live.py``) moves real blocks through kvserve daemons and reports the
measured times, and instances whose daemon stopped answering.

Nothing here reads a clock or an unseeded random source: the same trace,
settings and seed give the same report.
"""
from __future__ import annotations

import heapq
import itertools
import logging
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from kvserve.conductor.costs import ClusterShape, CostModel, Objectives
from kvserve.conductor.schedulers import Reject, Route, Scheduler, View, split_tokens
from kvserve.conductor.state import LOCAL, POOL, SUPERFS, Request, build
from kvserve.replay.trace import TraceRequest

log = logging.getLogger(__name__)

Plan = list[tuple[int, str, int]]   # (block, tier, source instance or -1) for the leading blocks to load


@dataclass
class Load:
    seconds: float
    ok: int                         # leading blocks of the plan that arrived intact
    down: set[int] = field(default_factory=set)


class Backend(Protocol):
    """Who moves blocks: the cost model (:class:`ModelBackend`) or real daemons (``live.LiveBackend``)."""

    def load(self, inst: int, plan: Plan) -> Load:
        """Move the plan's blocks to ``inst``: how long it took, how many leading blocks arrived, who is down."""

    def store(self, inst: int, blocks: Sequence[int]) -> set[int]:
        """Keep ``blocks`` in ``inst``'s DRAM after its prefill; the instances found down."""

    def replicate(self, block: int, source: int, target: int) -> tuple[float, set[int]]:
        """Copy a block between instances: (seconds, instances found down)."""


class ModelBackend:
    """Every transfer charged by the cost model; nothing fails."""

    name = "model"

    def __init__(self, cost: CostModel) -> None:
        self.cost = cost

    def load(self, inst: int, plan: Plan) -> Load:
        n = {LOCAL: 0, POOL: 0, SUPERFS: 0}
        for _, tier, _ in plan:
            n[tier] += 1
        return Load(self.cost.load_s(n[LOCAL], n[POOL], n[SUPERFS]), len(plan))

    def store(self, inst: int, blocks: Sequence[int]) -> set[int]:
        """The new blocks go into the instance's DRAM while it computes: off the critical path."""
        return set()

    def replicate(self, block: int, source: int, target: int) -> tuple[float, set[int]]:
        return self.cost.block_bytes / self.cost.pool_bytes_per_s, set()



class Simulation:
    def __init__(self, trace: Sequence[TraceRequest], scheduler: Scheduler, *, cost: CostModel,
                 shape: ClusterShape, objectives: Objectives, speed: float = 1.0,
                 backend: Backend | None = None,
                 on_arrival: Callable[["Simulation", int], None] | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.scheduler = scheduler
        self.cost = cost
        self.shape = shape
        self.objectives = objectives
        self.backend: Backend = backend or ModelBackend(cost)
        self.on_arrival = on_arrival
        self.prefill, self.decode, self.pool = build(shape, cost)
        t0 = min((t.timestamp for t in trace), default=0.0)
        self.requests = [Request(i, (t.timestamp - t0) / 1000.0 / speed, t) for i, t in enumerate(trace)]
        self.now = 0.0
        self._events: list[tuple[float, int, str, tuple[object, ...]]] = []
        self._seq = itertools.count()
        self.counters = {"replicated_blocks": 0, "rerouted": 0, "stale_blocks": 0}
        self.down_events: list[tuple[float, int]] = []
        self.arrived = 0

    # ------------------------------------------------------------------ events

    def _at(self, t: float, kind: str, *args: object) -> None:
        heapq.heappush(self._events, (t, next(self._seq), kind, args))

    def run(self) -> list[Request]:
        for req in self.requests:
            self._at(req.arrival, "arrive", req)
        handlers: dict[str, Callable[..., None]] = {"arrive": self._arrive, "prefill_done": self._prefill_done,
                                                     "to_decode": self._to_decode,
                                                     "step_done": self._step_done,
                                                     "replica_done": self._replica_done}
        while self._events:
            t, _, kind, args = heapq.heappop(self._events)
            self.now = t
            handlers[kind](*args)
        return self.requests

    def view(self) -> View:
        return View(self.now, self.cost, self.objectives, self.prefill, self.decode, self.pool)

    # ----------------------------------------------------------------- routing

    def _arrive(self, req: Request) -> None:
        self.arrived += 1
        if self.on_arrival is not None:
            self.on_arrival(self, req.rid)
        self._route(req)

    def _route(self, req: Request) -> None:
        view = self.view()
        choice = self.scheduler.route(req, view)
        if isinstance(choice, Reject):
            req.rejected, req.est_ttft = choice.reason, choice.est_ttft
            return
        assert isinstance(choice, Route)
        req.prefill, req.decode = choice.prefill, choice.decode
        req.est_ttft, req.est_prefill_s = choice.est_ttft, choice.est_prefill_s
        inst = self.prefill[choice.prefill]
        inst.accept(req)
        if req.decode >= 0:
            self.decode[req.decode].send(req)
        for block, target in self.scheduler.replications(req, choice, view):
            self._replicate(block, target)
        if inst.running is None:
            self._start_prefill(inst.idx)

    def _mark_down(self, idx: int) -> None:
        """An instance's KV store stopped answering: its cache is gone, its requests go elsewhere."""
        inst = self.prefill[idx]
        if not inst.up:
            return
        log.warning("prefill instance %d is down: re-routing its %d requests", idx, inst.outstanding())
        inst.up = False
        self.down_events.append((self.now, idx))
        self.pool.lost(idx, list(inst.cache))
        moved = ([inst.running] if inst.running is not None else []) + list(inst.queue)
        inst.queue.clear()
        inst.running, inst.queued_est_s = None, 0.0
        inst.busy.clear()
        for req in moved:
            inst.forget(req)
            if req.decode >= 0:
                d = self.decode[req.decode]
                d.inflight -= 1
                d.inflight_tokens -= req.input_length
            req.reroutes += 1
            req.hits.clear()
            req.hit_tokens.clear()
            self.counters["rerouted"] += 1
            self._route(req)

    # ----------------------------------------------------------------- prefill

    def _plan(self, idx: int, req: Request) -> Plan:
        inst, up, plan = self.prefill[idx], [p.up for p in self.prefill], []
        for b in req.ids:
            if b in inst.cache:
                plan.append((b, LOCAL, idx))
                continue
            src = self.pool.holder(b, idx, up)
            if src is not None:
                plan.append((b, POOL, src))
            elif self.pool.in_superfs(b):
                plan.append((b, SUPERFS, -1))
            else:
                break
        return plan

    def _start_prefill(self, idx: int) -> None:
        inst = self.prefill[idx]
        if inst.up and inst.running is None and inst.queue:
            req = inst.queue.popleft()
            inst.queued_est_s -= req.est_prefill_s
            # running from now on: a request re-routed here while the load below reports a
            # dead daemon must queue behind it, not start beside it
            inst.running, inst.running_end = req, self.now + req.est_prefill_s
            plan = self._plan(idx, req)
            load = self.backend.load(idx, plan)
            if idx in load.down:
                self._mark_down(idx)  # re-routes req too
                return
            for d in sorted(load.down):
                self._mark_down(d)
            if load.ok < len(plan):
                # the block where the prefix broke is not (or not rightly) where the index said:
                # forget it there, so it is computed and stored again
                self.counters["stale_blocks"] += 1
                b, _, src = plan[load.ok]
                if src >= 0 and self.prefill[src].up and b in self.prefill[src].cache:
                    self.prefill[src].cache.discard(b)
                    self.pool.lost(src, [b])
            plan = plan[:load.ok]
            for k, (b, tier, _) in enumerate(plan):
                req.hits[tier] += 1
                req.hit_tokens[tier] += req.trace.block_tokens(k, self.cost.block_tokens)
                if tier == LOCAL:
                    inst.cache.touch(b)
                    inst.busy[b] += 1
            cached, new = split_tokens(self.cost, req.input_length, len(plan))
            req.hits["computed"] += len(req.ids) - len(plan)
            req.hit_tokens["computed"] += new
            compute = self.cost.prefill_s(new, cached)
            req.prefill_start = self.now
            inst.running_end = self.now + load.seconds + compute
            self._at(inst.running_end, "prefill_done", idx, req,
                     self.now + load.seconds + max(compute, self.cost.to_decode_s(req.input_length)))

    def _add_blocks(self, idx: int, blocks: Sequence[int]) -> list[int]:
        """Put blocks into an instance's DRAM (evicting to SuperFS); the ones it did not hold before."""
        inst, new = self.prefill[idx], []
        for b in blocks:
            if b in inst.cache:
                inst.cache.touch(b)
                continue
            victims = inst.cache.evict_for(1, busy=lambda k: inst.busy[k] > 0, busy_bytes=len(inst.busy))
            if victims is None:
                continue  # every block is being read: this one is not kept
            for v, _ in victims:
                self.pool.evicted(idx, v)
            inst.cache.add(b, 1)
            self.pool.added(idx, b)
            new.append(b)
        return new

    def _prefill_done(self, idx: int, req: Request, decode_at: float) -> None:
        inst = self.prefill[idx]
        if inst.running is not req:
            return  # the instance went down meanwhile; the request was re-routed
        for b in req.ids:
            if inst.busy[b] > 0:
                inst.busy[b] -= 1
                if not inst.busy[b]:
                    del inst.busy[b]
        inst.running = None
        inst.forget(req)
        req.first_token = self.now
        new = self._add_blocks(idx, req.ids)
        down = self.backend.store(idx, new)
        for d in sorted(down):
            self._mark_down(d)
        if req.decode >= 0:
            self._at(max(self.now, decode_at), "to_decode", req)
        else:
            req.finish = self.now
        self._start_prefill(idx)

    # ------------------------------------------------------------------ decode

    def _to_decode(self, req: Request) -> None:
        d = self.decode[req.decode]
        d.arrive(req)
        if not d.stepping:
            self._step(d.idx)

    def _step(self, idx: int) -> None:
        d = self.decode[idx]
        d.admit()
        if d.batch:
            d.stepping = True
            self._at(self.now + self.cost.decode_step_s(d.batch, d.context_tokens), "step_done", idx)
        else:
            d.stepping = False

    def _step_done(self, idx: int) -> None:
        for req in self.decode[idx].step_done():
            req.finish = self.now
        self._step(idx)

    # ------------------------------------------------------------- replication

    def _replicate(self, block: int, target: int) -> None:
        src = self.pool.holder(block, target, [p.up for p in self.prefill])
        if src is None:
            self.scheduler.copied(block, target)
            return
        seconds, down = self.backend.replicate(block, src, target)
        for d in sorted(down):
            self._mark_down(d)
        self._at(self.now + seconds, "replica_done", block, target, not down)

    def _replica_done(self, block: int, target: int, ok: bool) -> None:
        self.scheduler.copied(block, target)
        if ok and self.prefill[target].up and self._add_blocks(target, [block]):
            self.counters["replicated_blocks"] += 1
