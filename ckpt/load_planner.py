"""Load planning: which bytes of which saved pieces land where in the target, for any resharding.

Every target array is a box of its item's global array: the whole of it
(a plain array or tensor), or a ``Shard`` block. Each saved piece whose
box intersects the target box yields one read task for exactly that
intersection, so a rank reads only what it keeps, whatever W and sharding
the checkpoint was saved with. The target is checked against the
manifest first: a missing item, another global shape or dtype, or an
array where a scalar was saved is a MismatchError naming the item.

With no target, every item is loaded whole (numpy arrays) into the same
nesting it was saved with. A target leaf of None takes whatever was saved
there, a whole subtree included.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ckpt.boxes import Box
from ckpt.dtypes import is_array, numpy_dtype, writable_view
from ckpt.errors import MismatchError
from ckpt.manifest import Item, Manifest
from ckpt.reader import ReadTask
from ckpt.state import Container, Path, Shard, flatten, path_id


@dataclass
class LoadPlan:
    tasks: list[ReadTask] = field(default_factory=list)
    blobs: list[tuple[Path, Item]] = field(default_factory=list)
    values: dict[Path, Any] = field(default_factory=dict)
    commits: list[Callable[[], Any]] = field(default_factory=list)
    containers: list[Container] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(t.region.volume * t.dest.itemsize for t in self.tasks if t.dest is not None)


def _tasks_for(item: Item, dest: np.ndarray, dest_box: Box) -> list[ReadTask]:
    out = []
    for piece in item.pieces:
        region = piece.box.intersect(dest_box)
        if region is not None and (region.volume or not region.ndim):
            out.append(ReadTask(item, piece, region, dest, dest_box))
    return out


def _whole(plan: LoadPlan, path: Path, item: Item) -> None:
    if item.kind == "scalar":
        plan.values[path] = item.value
    elif item.kind == "blob":
        plan.blobs.append((path, item))
    else:
        dest = np.empty(item.global_shape, dtype=numpy_dtype(item.dtype, warn=True))
        plan.tasks += _tasks_for(item, dest, Box.full(item.global_shape))
        plan.values[path] = dest


def _subtree(plan: LoadPlan, manifest: Manifest, prefix: Path) -> bool:
    """Load everything saved under ``prefix`` (a target leaf of None where a container was saved)."""
    n = len(prefix)
    containers = [c for c in manifest.containers if c.path[:n] == prefix]
    if not containers:
        return False
    plan.containers += containers
    for item in manifest.items:
        if item.path[:n] == prefix:
            _whole(plan, item.path, item)
    return True


def plan_load(manifest: Manifest, target: dict[str, Any] | None) -> LoadPlan:
    plan = LoadPlan()
    if target is None:
        plan.containers = list(manifest.containers)
        for saved in manifest.items:
            _whole(plan, saved.path, saved)
        return plan
    leaves, plan.containers = flatten(target)
    items = manifest.item_map()
    for leaf in leaves:
        item = items.get(path_id(leaf.path))
        value = leaf.value
        if item is None and value is None and _subtree(plan, manifest, leaf.path):
            continue
        if item is None:
            raise MismatchError(f"the checkpoint (step {manifest.step}) has no item {leaf.key!r}")
        if value is None:
            _whole(plan, leaf.path, item)
            continue
        if item.kind != "array":
            if isinstance(value, Shard) or is_array(value):
                raise MismatchError(f"item {leaf.key!r}: the target is an array but a {item.kind} was saved")
            _whole(plan, leaf.path, item)
            continue
        if isinstance(value, Shard):
            local, gshape, box = value.local, value.global_shape, Box(value.offsets, value.shape)
        elif is_array(value):
            local, gshape, box = value, tuple(value.shape), Box.full(value.shape)
        else:
            raise MismatchError(f"item {leaf.key!r}: an array was saved but the target is a "
                                f"{type(value).__name__}")
        if tuple(gshape) != tuple(item.global_shape):
            raise MismatchError(f"item {leaf.key!r}: the target's global shape is {tuple(gshape)}, the "
                                f"checkpoint's is {tuple(item.global_shape)}")
        dest, dtype, commit = writable_view(local)
        if dtype != item.dtype:
            raise MismatchError(f"item {leaf.key!r}: the target's dtype is {dtype}, the checkpoint's is "
                                f"{item.dtype}")
        plan.tasks += _tasks_for(item, dest, box)
        plan.commits.append(commit)
        plan.values[leaf.path] = value
    return plan
