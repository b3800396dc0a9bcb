"""Save planning: what each rank writes, where, decided once on rank 0 from every rank's plan.

Call order (``ckpt.save`` drives it through a Coordinator)::

    local = local_plan(leaves, containers)          # every rank, no I/O
    planner = GlobalPlanner(all_locals, block_size)  # rank 0
    per_rank = planner.assignments()                 # rank r writes per_rank[r]
    ... ranks write their files, report checksums ...
    manifest = planner.manifest(step, token, results)

Replicated arrays (and shards that several ranks hold identically) are
written once: boxes only one rank holds are placed first, then shared
boxes largest first, each to the holder with the fewest bytes so far, so
the write load evens out across ranks. The distinct boxes of an item
must tile its global shape exactly; disagreements between ranks on kind,
dtype or global shape are errors that name the item and the ranks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ckpt.boxes import Box, tiling_problem
from ckpt.dtypes import as_numpy, itemsize
from ckpt.errors import PlanError
from ckpt.manifest import FileEntry, Item, Manifest, Piece, decode_scalar, encode_scalar
from ckpt.state import Container, Leaf, Shard, key_str, path_from_json, path_id


def local_plan(leaves: list[Leaf], containers: list[Container]
               ) -> tuple[dict[str, Any], list[np.ndarray | None]]:
    """(this rank's items as JSON: arrays by box and dtype, scalars by value; the arrays' numpy views)."""
    entries: list[dict[str, Any]] = []
    arrays: list[np.ndarray | None] = []
    for leaf in leaves:
        v = leaf.value
        arr = None
        if isinstance(v, Shard):
            arr, dtype = as_numpy(v.local)
            entries.append({"path": list(leaf.path), "kind": "array", "dtype": dtype,
                            "global_shape": list(v.global_shape), "offsets": list(v.offsets),
                            "shape": list(arr.shape)})
        elif isinstance(v, (bool, int, float, str, bytes, type(None))):
            entries.append({"path": list(leaf.path), "kind": "scalar", "value": encode_scalar(v)})
        else:
            arr, dtype = as_numpy(v)
            entries.append({"path": list(leaf.path), "kind": "array", "dtype": dtype,
                            "global_shape": list(arr.shape), "offsets": [0] * arr.ndim,
                            "shape": list(arr.shape)})
        arrays.append(arr)
    plan = {"entries": entries,
            "containers": [{"path": list(c.path), "kind": c.kind, "keys": list(c.keys)} for c in containers]}
    return plan, arrays


def rank_file_name(token: str, rank: int) -> str:
    return f"{token}.rank-{rank:05d}.data"


@dataclass
class _Slot:
    """One distinct box of one item and the ranks that hold it."""

    box: Box
    nbytes: int
    holders: list[tuple[int, int]]  # (rank, entry index in that rank's plan)
    writer: int = -1
    entry: int = -1
    offset: int = -1


@dataclass
class _Merged:
    path: tuple[Any, ...]
    kind: str
    dtype: str = ""
    global_shape: tuple[int, ...] = ()
    value: Any = None
    first_rank: int = 0
    slots: dict[Box, _Slot] = field(default_factory=dict)


class GlobalPlanner:
    """Merges every rank's local plan into one assignment of writes, then into a manifest."""

    def __init__(self, plans: list[dict[str, Any]], block_size: int) -> None:
        self.world_size = len(plans)
        self.block_size = block_size
        self.plans = plans
        self.items: dict[str, _Merged] = {}
        self.containers: dict[str, Container] = {}
        for rank, plan in enumerate(plans):
            if plan.get("error"):
                raise PlanError(f"rank {rank}: {plan['error']}")
            self._merge_containers(plan["containers"])
            for idx, e in enumerate(plan["entries"]):
                self._merge_entry(rank, idx, e)
        for m in self.items.values():
            if m.kind == "array":
                problem = tiling_problem(list(m.slots), m.global_shape)
                if problem:
                    raise PlanError(f"item {key_str(m.path)!r} (global shape {m.global_shape}): {problem}")
        self._assign()

    def _merge_containers(self, containers: list[dict[str, Any]]) -> None:
        for c in containers:
            path = path_from_json(c["path"])
            pid = path_id(path)
            keys = tuple(path_from_json(c["keys"]))
            old = self.containers.get(pid)
            if old is None:
                self.containers[pid] = Container(path, c["kind"], keys)
            elif old.kind != c["kind"]:
                raise PlanError(f"{key_str(path) or '/'!r} is a {old.kind} on one rank and a {c['kind']} on another")
            elif keys != old.keys:
                merged = list(old.keys) + [k for k in keys if k not in old.keys]
                self.containers[pid] = Container(path, old.kind, tuple(merged))

    def _merge_entry(self, rank: int, idx: int, e: dict[str, Any]) -> None:
        path = path_from_json(e["path"])
        pid = path_id(path)
        m = self.items.get(pid)
        if e["kind"] == "scalar":
            if m is None:
                self.items[pid] = _Merged(path, "scalar", value=decode_scalar(e["value"]), first_rank=rank)
            elif m.kind != "scalar":
                raise PlanError(f"item {key_str(path)!r}: rank {m.first_rank} has an array, rank {rank} a scalar")
            return  # replicated scalars: the lowest rank's value is kept
        gshape = tuple(int(n) for n in e["global_shape"])
        if m is None:
            m = self.items[pid] = _Merged(path, "array", e["dtype"], gshape, first_rank=rank)
        elif m.kind != "array":
            raise PlanError(f"item {key_str(path)!r}: rank {m.first_rank} has a scalar, rank {rank} an array")
        elif (m.dtype, m.global_shape) != (e["dtype"], gshape):
            raise PlanError(f"item {key_str(path)!r}: rank {m.first_rank} saves {m.dtype} of global shape "
                            f"{m.global_shape}, rank {rank} saves {e['dtype']} of global shape {gshape}")
        box = Box(tuple(e["offsets"]), tuple(e["shape"]))
        slot = m.slots.get(box)
        if slot is None:
            slot = m.slots[box] = _Slot(box, box.volume * itemsize(m.dtype), [])
        slot.holders.append((rank, idx))

    def _assign(self) -> None:
        """Place each distinct box on one holder: forced ones first, shared ones largest first."""
        load = [0] * self.world_size
        slots = [s for m in self.items.values() if m.kind == "array" for s in m.slots.values()]
        for s in slots:
            if len(s.holders) == 1:
                s.writer, s.entry = s.holders[0]
                load[s.writer] += s.nbytes
        shared = [s for s in slots if len(s.holders) > 1]
        shared.sort(key=lambda s: -s.nbytes)  # stable: walk order among equals
        for s in shared:
            s.writer, s.entry = min(s.holders, key=lambda h: (load[h[0]], h[0]))
            load[s.writer] += s.nbytes
        self.rank_bytes = load
        # each rank writes its pieces in its own walk order, back to back
        by_rank: list[list[_Slot]] = [[] for _ in range(self.world_size)]
        for s in slots:
            by_rank[s.writer].append(s)
        self.rank_slots = by_rank
        for ss in by_rank:
            ss.sort(key=lambda s: s.entry)
            pos = 0
            for s in ss:
                s.offset = pos
                pos += s.nbytes

    def assignments(self) -> list[dict[str, Any]]:
        """Per rank: {"writes": [[entry index, offset, nbytes], ...], "size": file bytes}."""
        return [{"writes": [[s.entry, s.offset, s.nbytes] for s in ss], "size": self.rank_bytes[r]}
                for r, ss in enumerate(self.rank_slots)]

    def manifest(self, step: int, token: str, results: list[dict[str, Any]],
                 extra: dict[str, Any] | None = None) -> Manifest:
        """The manifest, from the plan and each rank's report ({"file": ..., "checksums": [...]})."""
        files: dict[str, FileEntry] = {}
        sums: dict[tuple[int, int], list[str]] = {}
        for rank, res in enumerate(results):
            if res.get("error"):
                raise PlanError(f"rank {rank}: {res['error']}")
            if not self.rank_slots[rank]:
                continue
            f = res["file"]
            files[f["name"]] = FileEntry.from_json(f["name"], f)
            for s, cs in zip(self.rank_slots[rank], res["checksums"]):
                sums[(rank, s.entry)] = cs
        items: list[Item] = []
        for m in self.items.values():
            if m.kind == "scalar":
                items.append(Item(m.path, "scalar", value=m.value))
                continue
            pieces = [Piece(s.box, rank_file_name(token, s.writer), s.offset, s.nbytes, sums[(s.writer, s.entry)])
                      for s in sorted(m.slots.values(), key=lambda s: s.box)]
            items.append(Item(m.path, "array", m.dtype, m.global_shape, pieces))
        return Manifest(step=step, world_size=self.world_size, token=token, block_size=self.block_size,
                        items=items, containers=list(self.containers.values()), files=files,
                        extra=extra or {})


def expected_checksums(nbytes: int, block_size: int) -> int:
    return max(1, math.ceil(nbytes / block_size))
