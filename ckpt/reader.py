"""Reading pieces back: only the rows a target needs, every block used verified against the manifest.

A read task copies ``region`` (a box in global coordinates) of one saved
piece into a destination array. The piece is C-ordered, so the rows of
its first dimension that ``region`` touches are one contiguous byte span;
the span is read in slabs of about ``window`` bytes, widened to whole
checksum blocks, verified, viewed as an array and sliced into place (the
trailing dimensions are cut by numpy, not by one small read per row).
The block shared by two consecutive slabs is kept rather than read twice.

Tasks run on a small thread pool; with the SuperFS backend each slab's
chunk reads also go out in parallel.
"""
from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from ckpt.boxes import Box
from ckpt.checksum import block_sum
from ckpt.dtypes import itemsize, numpy_dtype
from ckpt.errors import CheckpointError, CorruptionError, MissingShardError
from ckpt.manifest import FileEntry, Item, Manifest, Piece
from ckpt.storage import FileReader, Storage, join

log = logging.getLogger(__name__)

WINDOW = 64 << 20
MAX_REQUEST = 16 << 20


@dataclass
class ReadTask:
    item: Item
    piece: Piece
    region: Box          # global coordinates, inside piece.box and dest_box
    dest: Any            # numpy array holding dest_box (None: verify only)
    dest_box: Box


class PieceReader:
    """Reads verified byte spans of pieces from one checkpoint directory."""

    def __init__(self, storage: Storage, ckpt_dir: str, manifest: Manifest, *, threads: int = 4,
                 window: int = WINDOW) -> None:
        self.storage = storage
        self.dir = ckpt_dir
        self.manifest = manifest
        self.threads = max(1, threads)
        self.window = window
        self._files: dict[str, FileReader] = {}
        self._lock = threading.Lock()
        self.bytes_read = 0

    # ----------------------------------------------------------------- files

    def _file(self, item: Item, name: str) -> tuple[FileReader, FileEntry]:
        entry = self.manifest.files.get(name)
        if entry is None:
            raise MissingShardError(f"item {item.key!r}: the manifest lists no file {name!r}", item=item.key,
                                    file=name)
        with self._lock:
            fr = self._files.get(name)
            if fr is None:
                try:
                    fr = self.storage.open(join(self.dir, name))
                except FileNotFoundError:
                    raise MissingShardError(
                        f"item {item.key!r} needs {join(self.dir, name)} (written by rank {entry.rank}), "
                        "which is missing", item=item.key, file=name) from None
                except OSError as e:
                    raise CheckpointError(f"item {item.key!r}: cannot open {join(self.dir, name)}: {e}") from e
                self._files[name] = fr
        return fr, entry

    def close(self) -> None:
        with self._lock:
            for fr in self._files.values():
                fr.close()
            self._files.clear()

    # ------------------------------------------------------------ byte spans

    def span(self, item: Item, piece: Piece, start: int, end: int,
             cache: dict[str, Any] | None = None) -> np.ndarray:
        """Verified bytes [start, end) of ``piece`` (offsets within the piece)."""
        B = self.manifest.block_size
        first, last = start // B, max(start, end - 1) // B
        bs, be = first * B, min(piece.nbytes, (last + 1) * B)
        buf = np.empty(be - bs, dtype=np.uint8)
        read_from, check_from = bs, first
        if cache is not None and cache.get("block") == first and len(cache["bytes"]) <= len(buf):
            kept = cache["bytes"]
            buf[:len(kept)] = kept
            read_from, check_from = bs + len(kept), first + 1
        if be > read_from:
            self._read(item, piece, read_from, buf[read_from - bs:].data)
        for k in range(check_from, last + 1):
            lo, hi = k * B - bs, min(be, (k + 1) * B) - bs
            if k >= len(piece.checksums) or block_sum(buf[lo:hi]) != piece.checksums[k]:
                path = join(self.dir, piece.file)
                raise CorruptionError(
                    f"item {item.key!r}: checksum mismatch in {path} (block {k}, bytes "
                    f"{piece.offset + k * B}-{piece.offset + bs + hi} of the file's logical stream)",
                    item=item.key, file=piece.file)
        if cache is not None:
            cache["block"] = last
            cache["bytes"] = buf[last * B - bs:].copy()
        return buf[start - bs:end - bs]

    def _read(self, item: Item, piece: Piece, start: int, view: memoryview) -> None:
        fr, entry = self._file(item, piece.file)
        requests: list[tuple[int, memoryview]] = []
        rel = 0
        for phys, n in entry.physical(piece.offset + start, len(view)):
            for i in range(0, n, MAX_REQUEST):
                take = min(MAX_REQUEST, n - i)
                requests.append((phys + i, view[rel + i:rel + i + take]))
            rel += n
        try:
            got = fr.read_many(requests)
        except FileNotFoundError:
            raise MissingShardError(f"item {item.key!r}: {join(self.dir, piece.file)} vanished while reading",
                                    item=item.key, file=piece.file) from None
        except OSError as e:
            raise CheckpointError(f"item {item.key!r}: reading {join(self.dir, piece.file)} failed: {e}") from e
        for (_, buf), n in zip(requests, got):
            if n != len(buf):
                raise MissingShardError(
                    f"item {item.key!r}: {join(self.dir, piece.file)} (rank {entry.rank}) is truncated",
                    item=item.key, file=piece.file)
        with self._lock:
            self.bytes_read += len(view)

    # ----------------------------------------------------------------- tasks

    def run(self, tasks: Iterable[ReadTask]) -> None:
        tasks = list(tasks)
        if self.threads == 1 or len(tasks) <= 1:
            for t in tasks:
                self.copy(t)
            return
        with ThreadPoolExecutor(self.threads, thread_name_prefix="ckpt-read") as pool:
            for f in [pool.submit(self.copy, t) for t in tasks]:
                f.result()

    def copy(self, task: ReadTask) -> None:
        """Copy ``task.region`` of the piece into ``task.dest`` (or only verify it)."""
        item, piece = task.item, task.piece
        dtype = numpy_dtype(item.dtype)
        shape = piece.box.shape
        rel = task.region.relative_to(piece.box)
        cache: dict[str, Any] = {}
        if not shape:
            data = self.span(item, piece, 0, piece.nbytes).view(dtype).reshape(())
            if task.dest is not None:
                task.dest[task.region.relative_to(task.dest_box)] = data
            return
        if task.region.volume == 0:
            return
        row_bytes = math.prod(shape[1:]) * itemsize(item.dtype)
        rows = max(1, self.window // max(1, row_bytes))
        lo, hi = rel[0].start, rel[0].stop
        dest = task.dest[task.region.relative_to(task.dest_box)] if task.dest is not None else None
        if dest is not None and self._direct(task, dest, rel, lo * row_bytes, hi * row_bytes):
            return
        for r0 in range(lo, hi, rows):
            r1 = min(hi, r0 + rows)
            raw = self.span(item, piece, r0 * row_bytes, r1 * row_bytes, cache)
            if dest is not None:
                arr = raw.view(dtype).reshape((r1 - r0,) + tuple(shape[1:]))
                dest[r0 - lo:r1 - lo] = arr[(slice(None),) + rel[1:]]

    def _direct(self, task: ReadTask, dest: np.ndarray, rel: tuple[slice, ...], start: int, end: int) -> bool:
        """Read whole rows straight into a C-contiguous target and verify them there (no copy).

        Applies when the task takes full rows (every trailing dimension whole)
        and its byte span starts on a block boundary and ends on one or at the
        piece's end, so no neighbouring bytes are needed to check a block.
        On a checksum error the target is left partly filled.
        """
        piece, B = task.piece, self.manifest.block_size
        full_rows = all(s.start == 0 and s.stop == n for s, n in zip(rel[1:], piece.box.shape[1:]))
        if not (full_rows and dest.flags.c_contiguous and start % B == 0 and (end % B == 0 or end == piece.nbytes)):
            return False
        out = dest.reshape(-1).view(np.uint8)
        step = max(B, self.window - self.window % B)
        for off in range(start, end, step):
            n = min(step, end - off)
            self._read(task.item, piece, off, out[off - start:off - start + n].data)
            for k in range(off // B, (off + n + B - 1) // B):
                lo, hi = k * B - start, min((k + 1) * B, end) - start
                if k >= len(piece.checksums) or block_sum(out[lo:hi]) != piece.checksums[k]:
                    path = join(self.dir, piece.file)
                    raise CorruptionError(
                        f"item {task.item.key!r}: checksum mismatch in {path} (block {k}, bytes "
                        f"{piece.offset + k * B}-{piece.offset + start + hi} of the file's logical stream)",
                        item=task.item.key, file=piece.file)
        return True

    def blob(self, item: Item) -> bytes:
        piece = item.pieces[0]
        return self.span(item, piece, 0, piece.nbytes).tobytes()
