"""ckpt.load: read a committed checkpoint into any world size and sharding, verifying as it reads.

Loading needs no coordination: each rank reads the manifest, plans the
intersections of the saved pieces with its own target, and reads just
those bytes (see load_planner.py and reader.py).
"""
from __future__ import annotations

import logging
import time
from typing import Any

from ckpt.catalog import read_manifest, resolve
from ckpt.load_planner import plan_load
from ckpt.manifest import Manifest
from ckpt.reader import PieceReader
from ckpt.state import unflatten
from ckpt.storage import open_storage

log = logging.getLogger(__name__)


def load(path: Any, *, target: dict[str, Any] | None = None, step: int | None = None, rank: int = 0,
         world_size: int = 1, threads: int = 4) -> dict[str, Any]:
    """Load checkpoint ``step`` (default: latest) from ``path``.

    With ``target`` (the state's nesting with arrays, tensors or Shards to
    fill in place), only the blocks those hold are read; with no target,
    every item is returned whole as numpy arrays. Every block read is
    verified against its checksum (CorruptionError names item and file).
    """
    storage = open_storage(path)
    t0 = time.monotonic()
    d, _ = resolve(storage, step)
    manifest = read_manifest(storage, d)
    plan = plan_load(manifest, target)
    reader = PieceReader(storage, d, manifest, threads=threads)
    try:
        reader.run(plan.tasks)
        for p, item in plan.blobs:
            plan.values[p] = reader.blob(item)
    finally:
        reader.close()
    for commit in plan.commits:
        commit()
    log.info("rank %d/%d loaded step %d from %s: %d bytes in %.3f s", rank, world_size, manifest.step,
             storage.url, reader.bytes_read, time.monotonic() - t0)
    return unflatten(plan.containers, plan.values.items())


def load_manifest(path: Any, step: int | None = None) -> Manifest:
    """The manifest of checkpoint ``step`` (default: latest) under ``path``."""
    storage = open_storage(path)
    d, _ = resolve(storage, step)
    return read_manifest(storage, d)
