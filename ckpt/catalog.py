"""The checkpoints under a root: names, the ``latest`` pointer, listing, removal, cleanup, retention.

Layout of a root::

    latest                     "step-00000042": moved only after that step committed
    step-00000042/manifest.json   present = committed (its rename was the commit)
    step-00000042/<token>.rank-00003.data
    step-00000043/...          no manifest: partial (a crash), ignored, removed later
    .coord/                    save coordination files (see coordination.py)

A directory without a manifest is never loaded and never becomes latest.
Partial directories and superseded coordination files are removed by the
next successful save, which is the first moment nobody can still be
writing them (one save at a time per root).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from ckpt.errors import CheckpointNotFoundError
from ckpt.manifest import MANIFEST_NAME, Manifest
from ckpt.storage import Storage, join, open_storage

log = logging.getLogger(__name__)

LATEST = "latest"
COORD_DIR = ".coord"
_STEP_RE = re.compile(r"^step-(\d+)$")


def step_dir(step: int) -> str:
    return f"step-{step:08d}"


def parse_step(name: str) -> int | None:
    m = _STEP_RE.match(name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class StepInfo:
    step: int
    dir: str
    committed: bool


def list_steps(location: Any) -> list[StepInfo]:
    """Every step directory under the root (a Storage or a path), oldest first, committed or not."""
    storage = open_storage(location)
    try:
        names = storage.listdir("")
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        step = parse_step(name)
        if step is not None:
            out.append(StepInfo(step, name, storage.exists(join(name, MANIFEST_NAME))))
    return sorted(out, key=lambda s: s.step)


def committed_steps(location: Any) -> list[int]:
    storage = open_storage(location)
    return [s.step for s in list_steps(storage) if s.committed]


def latest_step(location: Any) -> int | None:
    """The step ``latest`` names if it is committed, else the newest committed step."""
    storage = open_storage(location)
    try:
        name = storage.read_bytes(LATEST).decode().strip()
    except (FileNotFoundError, UnicodeDecodeError):
        name = ""
    step = parse_step(name)
    if step is not None and storage.exists(join(step_dir(step), MANIFEST_NAME)):
        return step
    steps = committed_steps(storage)
    if name and steps:
        log.warning("'latest' in %s names %r, which is not a committed checkpoint; using step %d",
                    storage.url, name, steps[-1])
    return steps[-1] if steps else None


def set_latest(storage: Storage, step: int) -> None:
    storage.write_atomic(LATEST, (step_dir(step) + "\n").encode())


def next_step(storage: Storage) -> int:
    steps = list_steps(storage)
    return steps[-1].step + 1 if steps else 0


def resolve(storage: Storage, step: int | None = None) -> tuple[str, int | None]:
    """(checkpoint directory, step) for ``step`` or the latest; the root itself if it holds a manifest."""
    if step is None and storage.exists(MANIFEST_NAME):
        return "", None  # the path is one checkpoint directory (e.g. a DCP checkpoint_id)
    if step is None:
        step = latest_step(storage)
        if step is None:
            raise CheckpointNotFoundError(f"no committed checkpoint in {storage.url}")
    d = step_dir(step)
    if not storage.exists(join(d, MANIFEST_NAME)):
        raise CheckpointNotFoundError(f"no committed checkpoint for step {step} in {storage.url}")
    return d, step


def read_manifest(storage: Storage, directory: str) -> Manifest:
    path = join(directory, MANIFEST_NAME)
    try:
        data = storage.read_bytes(path)
    except FileNotFoundError:
        raise CheckpointNotFoundError(f"no manifest at {storage.url}/{path}") from None
    return Manifest.from_bytes(data, f"{storage.url}/{path}")


def remove_step(location: Any, step: int) -> None:
    """Remove one checkpoint; if it is latest, latest first moves to the newest remaining one.

    The manifest goes first, so a removal cut short leaves a partial
    directory (ignored, cleaned later), never a committed one missing data.
    """
    storage = open_storage(location)
    d = step_dir(step)
    if not storage.exists(d):
        raise CheckpointNotFoundError(f"no step {step} in {storage.url}")
    if latest_step(storage) == step:
        others = [s for s in committed_steps(storage) if s != step]
        if others:
            set_latest(storage, others[-1])
        else:
            try:
                storage.remove(LATEST)
            except FileNotFoundError:
                pass
    try:
        storage.remove(join(d, MANIFEST_NAME))
    except FileNotFoundError:
        pass
    storage.remove_tree(d)
    log.info("removed step %d from %s", step, storage.url)


def clean_after_commit(storage: Storage, manifest: Manifest, keep_last: int | None) -> list[int]:
    """Remove partial steps, stray files in the new step, old coordination state, old steps.

    Returns the steps removed by retention.
    """
    d = step_dir(manifest.step)
    keep = set(manifest.files) | {MANIFEST_NAME}
    for name in storage.listdir(d):
        if name not in keep:
            _quiet_remove(storage, join(d, name))
    for info in list_steps(storage):
        if not info.committed and info.step != manifest.step:
            log.info("removing partial checkpoint %s/%s", storage.url, info.dir)
            storage.remove_tree(info.dir)
    try:
        for name in storage.listdir(COORD_DIR):
            if name != manifest.token and not name.startswith("attempt"):
                storage.remove_tree(join(COORD_DIR, name))
    except FileNotFoundError:
        pass
    removed: list[int] = []
    if keep_last is not None and keep_last > 0:
        steps = committed_steps(storage)
        for step in steps[:-keep_last]:
            if step != manifest.step:
                remove_step(storage, step)
                removed.append(step)
    return removed


def _quiet_remove(storage: Storage, path: str) -> None:
    try:
        storage.remove(path)
    except IsADirectoryError:
        storage.remove_tree(path)
    except OSError as e:
        log.debug("could not remove %s: %s", path, e)
