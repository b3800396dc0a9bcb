"""Cutting input files into splits, one task each, placed by where their bytes live.

On SuperFS a split is one chunk of a file (or, for Parquet, the row groups
whose middle byte falls in that chunk), and it prefers the data servers
holding that chunk, best first. Local files are cut every
``max_bytes``. Files smaller than ``open_cost`` that prefer the same
servers are packed into one split, as Spark packs small files, so a
directory of many small files does not become as many tasks.
"""
from __future__ import annotations

import logging
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from chukonu.io import fs as fsmod

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_OPEN_COST = 4 << 20
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class Segment:
    url: str
    start: int
    length: int
    file_size: int
    row_groups: tuple[int, ...] | None = None
    partition_values: tuple[tuple[str, str | None], ...] = ()


@dataclass
class InputSplit:
    segments: list[Segment] = field(default_factory=list)
    preferred: tuple[int, ...] = ()

    @property
    def nbytes(self) -> int:
        return sum(s.length for s in self.segments)


def splittable(url: str, fmt: str) -> bool:
    return fmt in ("text", "json", "csv") and not url.endswith((".gz", ".bz2", ".zst", ".xz"))


def _parquet_row_group_ranges(meta: Any) -> list[tuple[int, int]]:
    out = []
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        starts, size = [], 0
        for c in range(rg.num_columns):
            col = rg.column(c)
            offs = [o for o in (col.dictionary_page_offset, col.data_page_offset) if o is not None and o > 0]
            if offs:
                starts.append(min(offs))
            size += col.total_compressed_size
        out.append((min(starts) if starts else 4, size))
    return out


def _pieces(url: str, size: int, fmt: str, chunks: Any, max_bytes: int, footer: Any) -> list[tuple[Segment, tuple]]:
    """(segment, preferred servers) pieces of one file."""
    pieces: list[tuple[Segment, tuple]] = []
    if fmt == "parquet":
        ranges = _parquet_row_group_ranges(footer)
        groups: dict[Any, list[int]] = {}
        order: list[Any] = []
        if chunks is not None and not chunks.inline and chunks.chunk_size:
            for i, (start, ln) in enumerate(ranges):
                key = (start + ln // 2) // chunks.chunk_size
                if key not in groups:
                    groups[key] = []
                    order.append(key)
                groups[key].append(i)
            for key in order:
                rgs = groups[key]
                nbytes = sum(ranges[i][1] for i in rgs)
                pieces.append((Segment(url, ranges[rgs[0]][0], nbytes, size, tuple(rgs)), chunks.replicas(key)))
            return pieces
        current: list[int] = []
        acc = 0
        for i, (start, ln) in enumerate(ranges):
            if current and acc + ln > max_bytes:
                pieces.append((Segment(url, ranges[current[0]][0], acc, size, tuple(current)), ()))
                current, acc = [], 0
            current.append(i)
            acc += ln
        if current or not ranges:
            pieces.append((Segment(url, 0, acc, size, tuple(current)), ()))
        return pieces
    if not splittable(url, fmt) or size == 0:
        pref = chunks.replicas(0) if chunks is not None and not chunks.inline and size else ()
        return [(Segment(url, 0, size, size), pref)]
    if chunks is not None and not chunks.inline and chunks.chunk_size:
        return [(Segment(url, e.offset, e.length, size), e.replicas) for e in chunks.extents()]
    return [(Segment(url, s, min(max_bytes, size - s), size), ()) for s in range(0, size, max_bytes)]


def make_splits(files: list[fsmod.FileInfo], fmt: str, partition_values: dict[str, tuple] | None = None,
                max_bytes: int = DEFAULT_MAX_BYTES, open_cost: int = DEFAULT_OPEN_COST,
                footers: dict[str, Any] | None = None) -> list[InputSplit]:
    pieces: list[tuple[Segment, tuple]] = []
    for f in files:
        fs, path = fsmod.resolve(f.url)
        chunks = fs.chunks(path)
        footer = footers.get(f.url) if footers else None
        pv = (partition_values or {}).get(f.url, ())
        for seg, pref in _pieces(f.url, f.size, fmt, chunks, max_bytes, footer):
            if pv:
                seg = Segment(seg.url, seg.start, seg.length, seg.file_size, seg.row_groups, pv)
            pieces.append((seg, tuple(pref)))
    splits: list[InputSplit] = []
    open_split: dict[tuple, InputSplit] = {}
    for seg, pref in pieces:
        if seg.length + open_cost >= max_bytes or seg.length >= open_cost:
            splits.append(InputSplit([seg], pref))
            continue
        current = open_split.get(pref)
        if current is not None and current.nbytes + seg.length + open_cost > max_bytes:
            current = None
        if current is None:
            current = InputSplit([], pref)
            open_split[pref] = current
            splits.append(current)
        current.segments.append(seg)
    log.debug("%d files -> %d splits (%s)", len(files), len(splits), fmt)
    return splits


# ------------------------------------------------------ partition discovery

_PART = re.compile(r"^([^=/]+)=([^/]*)$")


def discover_partitions(base_url: str, files: list[fsmod.FileInfo]) -> tuple[list[str], dict[str, tuple]]:
    """Hive-style ``key=value`` directories between ``base_url`` and each file."""
    base = base_url.rstrip("/")
    names: list[str] = []
    values: dict[str, tuple] = {}
    for f in files:
        rel = f.url[len(base):].lstrip("/") if f.url.startswith(base) else ""
        parts = rel.split("/")[:-1]
        pv = []
        for p in parts:
            m = _PART.match(p)
            if m:
                key, value = m.group(1), urllib.parse.unquote(m.group(2))
                pv.append((key, None if value == HIVE_NULL else value))
                if key not in names:
                    names.append(key)
        values[f.url] = tuple(pv)
    return names, values


def partition_types(names: list[str], values: dict[str, tuple]) -> dict[str, pa.DataType]:
    """Spark's inference for partition values: int, then long, then double, else string."""
    out = {}
    for name in names:
        seen = [v for pv in values.values() for k, v in pv if k == name and v is not None]
        t: pa.DataType = pa.string()
        try:
            ints = [int(v) for v in seen]
            t = pa.int32() if all(-(1 << 31) <= i < (1 << 31) for i in ints) else pa.int64()
        except ValueError:
            try:
                [float(v) for v in seen]
                t = pa.float64()
            except ValueError:
                pass
        out[name] = t
    return out
