"""ckpt.save: every rank writes its share, rank 0 commits the manifest, then moves ``latest``.

Sequence (each step through the Coordinator, see coordination.py)::

    begin      rank 0 picks the step and a fresh attempt token
    exchange   ranks send what they hold (boxes, dtypes, no data); rank 0
               validates, dedupes replicated arrays, assigns each piece a
               writer and an offset
    write      each rank streams its pieces into <step>/<token>.rank-R.data
               and reports block checksums (or its error)
    commit     rank 0 writes manifest.json via temp file + rename (the commit
               point), then rewrites ``latest``, then cleans up and applies
               retention; every rank returns only once this is decided

A crash before the rename leaves a directory without a manifest: never
loaded, never latest, removed by the next successful save.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ckpt.catalog import clean_after_commit, next_step, set_latest, step_dir
from ckpt.checksum import DEFAULT_BLOCK_SIZE
from ckpt.coordination import Coordinator, FileCoordinator, Restarted, SoloCoordinator
from ckpt.errors import CheckpointError, CheckpointExistsError, PlanError
from ckpt.manifest import MANIFEST_NAME, Manifest
from ckpt.save_planner import GlobalPlanner, local_plan, rank_file_name
from ckpt.state import flatten
from ckpt.storage import Storage, join, open_storage
from ckpt.writer import write_rank_file

log = logging.getLogger(__name__)

MAX_RESTARTS = 5


@dataclass
class SaveResult:
    step: int
    location: str
    rank: int
    bytes_written: int
    seconds: float
    server_bytes: dict[int, int] = field(default_factory=dict)
    manifest: Manifest | None = None  # rank 0 only
    removed_steps: list[int] = field(default_factory=list)


def save(state: dict[str, Any], path: Any, *, step: int | None = None, rank: int = 0, world_size: int = 1,
         keep_last: int | None = None, timeout_s: float = 600.0, block_size: int = DEFAULT_BLOCK_SIZE,
         coordinator: Coordinator | None = None, extra: dict[str, Any] | None = None) -> SaveResult:
    """Save this rank's part of ``state`` as checkpoint ``step`` (default: one past the newest) under ``path``.

    Every rank of the job calls this with its own state; it returns once the
    checkpoint is committed (or raises on every rank if it was not).
    ``keep_last`` removes older committed checkpoints beyond the newest k.
    ``timeout_s`` bounds each wait for another rank (it must exceed the
    slowest rank's write time).
    """
    storage = open_storage(path)
    coord = coordinator or (SoloCoordinator() if world_size == 1 and rank == 0
                             else FileCoordinator(storage, rank, world_size, timeout_s))
    t0 = time.monotonic()
    arrays: list[np.ndarray | None] = []
    local_error: Exception | None = None
    try:
        leaves, containers = flatten(state)
        local, arrays = local_plan(leaves, containers)
    except (TypeError, ValueError, CheckpointError) as e:
        if coord.world_size == 1:
            raise
        local, local_error = {"error": f"{type(e).__name__}: {e}"}, e
    for _ in range(MAX_RESTARTS):
        try:
            result = _save_once(storage, coord, local, arrays, step, keep_last, block_size, extra)
        except PlanError:
            if local_error is not None:
                raise local_error from None  # this rank's own state was the problem: say so
            raise
        except Restarted:
            log.info("rank %d: a newer save attempt started; joining it", coord.rank)
            continue
        if local_error is not None:
            raise local_error
        result.seconds = time.monotonic() - t0
        return result
    raise CheckpointError(f"rank {coord.rank}: save attempts kept being replaced")


def _save_once(storage: Storage, coord: Coordinator, local: dict[str, Any], arrays: list[np.ndarray | None],
               step: int | None, keep_last: int | None, block_size: int,
               extra: dict[str, Any] | None) -> SaveResult:
    rank = coord.rank
    step, token = coord.begin(step, lambda: next_step(storage))
    d = step_dir(step)
    holder: dict[str, GlobalPlanner] = {}

    def make_plan(plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if storage.exists(join(d, MANIFEST_NAME)):
            raise CheckpointExistsError(f"step {step} is already committed in {storage.url}")
        holder["planner"] = GlobalPlanner(plans, block_size)
        return holder["planner"].assignments()

    mine = coord.exchange(local, make_plan)
    report: dict[str, Any] = {}
    write_error: Exception | None = None
    if mine["writes"]:
        name = rank_file_name(token, rank)
        sources = []
        for entry, _offset, nbytes in mine["writes"]:
            arr = arrays[entry]
            assert arr is not None and arr.nbytes == nbytes, f"entry {entry}: plan and state disagree"
            sources.append(arr)
        try:
            storage.makedirs(d)
            report = write_rank_file(storage, join(d, name), name, rank, sources, mine["size"], block_size)
        except Exception as e:  # noqa: BLE001 - reported to rank 0 so that every rank fails together
            log.error("rank %d: writing %s failed: %s", rank, join(d, name), e)
            report, write_error = {"error": f"{type(e).__name__}: {e}"}, e
    reports = coord.gather(report)
    result = SaveResult(step, f"{storage.url}/{d}", rank, int(mine["size"]) if not write_error else 0, 0.0,
                        {int(k): v for k, v in report.get("server_bytes", {}).items()})
    if rank != 0:
        outcome = coord.release(None)
        if outcome.get("error"):
            raise CheckpointError(f"save of step {step} was not committed: {outcome['error']}") from write_error
        return result
    try:
        assert reports is not None
        errors = [f"rank {r}: {rep['error']}" for r, rep in enumerate(reports) if rep.get("error")]
        if errors:
            raise CheckpointError("; ".join(errors)) from write_error
        manifest = holder["planner"].manifest(step, token, reports, extra)
        storage.makedirs(d)  # no rank may have had array data to write
        storage.sync_dir(d)
        storage.write_atomic(join(d, MANIFEST_NAME), manifest.to_bytes())  # the commit point
        set_latest(storage, step)
        log.info("committed step %d to %s: %d items, %d bytes from %d ranks", step, storage.url,
                 len(manifest.items), manifest.nbytes, coord.world_size)
    except Exception as e:
        coord.release({"error": str(e)})
        raise
    try:
        result.removed_steps = clean_after_commit(storage, manifest, keep_last)
    except OSError as e:  # committed already: a failed cleanup is retried by the next save
        log.warning("cleanup after committing step %d failed: %s", step, e)
    coord.release({"ok": True, "step": step})
    result.manifest = manifest
    return result
