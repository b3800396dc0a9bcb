"""ckpt verify: re-read every byte of a checkpoint and check it against the manifest.

Reports every problem it finds (not only the first): checksum mismatches
naming the item and file, missing or truncated rank files, and pieces
that do not tile their item's global shape.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ckpt.boxes import tiling_problem
from ckpt.catalog import read_manifest, resolve
from ckpt.errors import CheckpointError
from ckpt.reader import PieceReader, ReadTask
from ckpt.storage import open_storage

log = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    location: str
    step: int
    items: int = 0
    bytes_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: Any, step: int | None = None, *, threads: int = 4) -> VerifyReport:
    storage = open_storage(path)
    d, _ = resolve(storage, step)
    manifest = read_manifest(storage, d)
    report = VerifyReport(f"{storage.url}/{d}".rstrip("/"), manifest.step, len(manifest.items))
    reader = PieceReader(storage, d, manifest, threads=1)
    try:
        for item in manifest.items:
            if item.kind == "array":
                problem = tiling_problem([p.box for p in item.pieces], item.global_shape)
                if problem:
                    report.problems.append(f"item {item.key!r}: {problem}")
            for piece in item.pieces:
                try:
                    if item.kind == "blob":
                        reader.blob(item)
                    else:
                        reader.copy(ReadTask(item, piece, piece.box, None, piece.box))
                except CheckpointError as e:
                    report.problems.append(str(e))
        report.bytes_checked = reader.bytes_read
    finally:
        reader.close()
    return report
