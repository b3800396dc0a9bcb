"""What a state is: nested dicts/lists of arrays, tensors, shards and scalars, flattened to leaves.

A state is walked once into a flat list of ``Leaf`` (its path and value)
and the list of containers it passed through, so that everything else
works on flat items keyed by path, and the nesting is rebuilt exactly on
load (dicts with str or int keys, lists, tuples, empty ones included).

``Shard`` marks an array as this rank's block of a larger global array;
any other array or tensor is replicated: every rank that holds it holds
all of it, and it is written once.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Union

import numpy as np

from ckpt.dtypes import is_array, is_tensor
from ckpt.errors import CheckpointError

PathPart = Union[str, int]
Path = tuple[PathPart, ...]
SCALAR_TYPES = (bool, int, float, str, bytes, type(None))


@dataclass
class Shard:
    """This rank's block ``local`` of a global array of ``global_shape``, starting at ``offsets``.

    On save, ``local`` may be a numpy array or a torch tensor (any strides).
    As a load target, ``local`` is filled in place with the block at
    ``offsets`` of whatever sharding the checkpoint was saved with.
    """

    local: Any
    global_shape: tuple[int, ...]
    offsets: tuple[int, ...]

    def __post_init__(self) -> None:
        if not is_array(self.local):
            raise TypeError(f"Shard.local must be a numpy array or torch tensor, not {type(self.local).__name__}")
        self.global_shape = tuple(int(n) for n in self.global_shape)
        self.offsets = tuple(int(n) for n in self.offsets)
        shape = tuple(self.local.shape)
        if not (len(shape) == len(self.global_shape) == len(self.offsets)):
            raise ValueError(f"Shard of a {len(self.global_shape)}-d global array: local shape {shape} and "
                             f"offsets {self.offsets} must have {len(self.global_shape)} dimensions")
        for o, n, g in zip(self.offsets, shape, self.global_shape):
            if o < 0 or o + n > g:
                raise ValueError(f"Shard block at offsets {self.offsets} with shape {shape} does not fit in "
                                 f"global shape {self.global_shape}")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.local.shape)


@dataclass(frozen=True)
class Leaf:
    path: Path
    value: Any  # Shard, np.ndarray, np.generic, torch.Tensor, or a scalar

    @property
    def key(self) -> str:
        return key_str(self.path)


def key_str(path: Iterable[PathPart]) -> str:
    """Human-readable key of a path, for messages and ``ckpt ls``."""
    return "/".join(str(p) for p in path)


def path_id(path: Iterable[PathPart]) -> str:
    """An unambiguous string id for a path (str and int parts stay distinct)."""
    return json.dumps(list(path), separators=(",", ":"))


def path_from_json(parts: list[Any]) -> Path:
    for p in parts:
        if not isinstance(p, (str, int)) or isinstance(p, bool):
            raise CheckpointError(f"bad path component {p!r} in manifest")
    return tuple(parts)


@dataclass(frozen=True)
class Container:
    """A dict, list or tuple of the state, with its child keys in order."""

    path: Path
    kind: str  # "dict", "list" or "tuple"
    keys: tuple[PathPart, ...]


def flatten(state: Any) -> tuple[list[Leaf], list[Container]]:
    """(leaves in walk order, containers in walk order)."""
    if not isinstance(state, dict):
        raise TypeError(f"a checkpoint state must be a dict, not {type(state).__name__}")
    leaves: list[Leaf] = []
    containers: list[Container] = []
    _walk(state, (), leaves, containers)
    return leaves, containers


def _walk(obj: Any, path: Path, leaves: list[Leaf], containers: list[Container]) -> None:
    if isinstance(obj, dict):
        for k in obj:
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"key {k!r} under {key_str(path) or '/'!r}: dict keys must be str or int")
        containers.append(Container(path, "dict", tuple(obj)))
        for k, v in obj.items():
            _walk(v, path + (k,), leaves, containers)
    elif isinstance(obj, (list, tuple)):
        containers.append(Container(path, "list" if isinstance(obj, list) else "tuple", tuple(range(len(obj)))))
        for i, v in enumerate(obj):
            _walk(v, path + (i,), leaves, containers)
    elif isinstance(obj, Shard) or is_array(obj) or isinstance(obj, SCALAR_TYPES):
        leaves.append(Leaf(path, obj))
    else:
        raise TypeError(f"{key_str(path)!r}: cannot checkpoint a {type(obj).__name__} (ckpt stores arrays, "
                        "tensors, Shards and int/float/bool/str/bytes/None, nested in dicts, lists, tuples)")


def unflatten(containers: Iterable[Container], leaves: Iterable[tuple[Path, Any]]) -> dict[str, Any]:
    """Rebuild the nested state; children absent from ``leaves`` (a partial load) are left out."""
    built: dict[Path, Any] = dict(leaves)
    kinds = {c.path: c for c in containers}
    if () not in kinds:
        kinds[()] = Container((), "dict", ())
    for path in sorted(kinds, key=len, reverse=True):  # children before parents
        c = kinds[path]
        present = [(k, built[path + (k,)]) for k in c.keys if path + (k,) in built]
        if c.kind == "dict":
            built[path] = dict(present)
        else:
            seq = [v for _, v in present]
            built[path] = seq if c.kind == "list" else tuple(seq)
    root = built[()]
    assert isinstance(root, dict)
    return root


def leaves_by_id(leaves: Iterable[Leaf]) -> Iterator[tuple[str, Leaf]]:
    for leaf in leaves:
        yield path_id(leaf.path), leaf


def describe(value: Any) -> str:
    if isinstance(value, Shard):
        return f"Shard{value.shape} of {value.global_shape}"
    if is_tensor(value) or isinstance(value, np.ndarray):
        return f"array{tuple(value.shape)}"
    return type(value).__name__
