"""Writing one rank's data file: its pieces back to back, streamed, checksummed on the way.

Arrays are never copied whole: a C-contiguous array is written straight
from its memory, anything else in slabs of a few MiB. Bytes are cut into
units of the file's chunk size (4 MiB where the backend has no chunks) and
every unit is written exactly once, whole: a data server never sees two
writes racing on one chunk, nor a read-modify-write of a partial chunk,
and a unit that begins mid-way through an item gets its head from a small
copy buffer. Block checksums are computed from the same slices.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator

import numpy as np

from ckpt.checksum import BlockHasher
from ckpt.manifest import FileEntry
from ckpt.storage import FileWriter, Storage

log = logging.getLogger(__name__)

DEFAULT_UNIT = 4 << 20
SLAB = 4 << 20


def byte_segments(arr: np.ndarray, max_bytes: int = SLAB) -> Iterator[memoryview]:
    """The bytes of ``arr`` in C order, as views where possible and bounded copies where not."""
    if arr.size == 0:
        return
    if arr.flags.c_contiguous:
        flat = arr.reshape(-1).view(np.uint8).data
        for i in range(0, len(flat), max_bytes):
            yield flat[i:i + max_bytes]
        return
    row_bytes = arr[0].nbytes
    if row_bytes <= max_bytes:
        step = max_bytes // row_bytes
        for i in range(0, arr.shape[0], step):
            yield np.ascontiguousarray(arr[i:i + step]).view(np.uint8).reshape(-1).data
    else:
        for i in range(arr.shape[0]):
            yield from byte_segments(arr[i], max_bytes)


class UnitStream:
    """Sequential logical bytes -> whole-unit writes at physical offsets."""

    def __init__(self, fw: FileWriter, entry: FileEntry) -> None:
        self.fw = fw
        self.entry = entry
        self.unit = fw.chunk_size or DEFAULT_UNIT
        self.pos = 0
        self._buf: bytearray | None = None

    def write(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        unit = self.unit
        while len(view):
            within = self.pos % unit
            if within == 0 and self._buf is None and len(view) >= unit:
                n = len(view) - len(view) % unit
                for i in range(0, n, unit):
                    self._issue(self.pos + i, view[i:i + unit])
                self.pos += n
                view = view[n:]
                continue
            if self._buf is None:
                self._buf = bytearray(unit)
            take = min(unit - within, len(view))
            self._buf[within:within + take] = view[:take]
            self.pos += take
            view = view[take:]
            if self.pos % unit == 0:
                self._issue(self.pos - unit, memoryview(self._buf))
                self._buf = None

    def finish(self) -> None:
        if self._buf is not None:
            within = self.pos % self.unit
            self._issue(self.pos - within, memoryview(self._buf)[:within])
            self._buf = None

    def _issue(self, logical: int, view: memoryview) -> None:
        rel = 0
        for phys, n in self.entry.physical(logical, len(view)):
            self.fw.write_at(phys, view[rel:rel + n])
            rel += n


def write_rank_file(storage: Storage, path: str, name: str, rank: int, sources: Iterable[np.ndarray],
                    size: int, block_size: int) -> dict[str, Any]:
    """Write ``sources`` back to back into a new file; returns {"file": ..., "checksums": [...]}.

    ``sources`` may be a generator: each array is asked for only when its turn comes.
    """
    fw = storage.create(path, size)
    entry = FileEntry(name, rank, size, fw.chunk_size, fw.chunk_map)
    stream = UnitStream(fw, entry)
    checksums: list[list[str]] = []
    try:
        for arr in sources:
            hasher = BlockHasher(block_size)
            for seg in byte_segments(arr):
                hasher.update(seg)
                stream.write(seg)
            checksums.append(hasher.finish())
        stream.finish()
        if stream.pos != size:
            raise AssertionError(f"wrote {stream.pos} bytes to {path}, planned {size}")
        fw.close()
    except BaseException:
        fw.abort()
        raise
    log.debug("rank %d wrote %d bytes to %s", rank, size, path)
    return {"file": {"name": name, **entry.to_json()}, "checksums": checksums,
            "server_bytes": {str(k): v for k, v in fw.server_bytes.items()}}
