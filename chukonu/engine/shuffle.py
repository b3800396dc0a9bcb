"""Shuffles through files: map tasks split their output by partition, reduce tasks read it back.

Each map task writes one Arrow IPC stream file per non-empty reduce
partition (Python lists for RDDs are pickled), batch by batch as its
pipeline produces them, so a shuffle never holds more than one batch per
task in memory: the data set lives on disk, local or on SuperFS. A file is
written under a temporary name and renamed when complete, so a retried map
task replaces its earlier attempt's output whole. The driver learns which
files exist from the map tasks' results and gives each reduce task its list.
"""
from __future__ import annotations

import logging
import os
import pickle
import uuid
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa

from chukonu.engine.expressions import EvalCtx, Expr, SortOrder, as_array
from chukonu.engine.hashing import partition_ids, portable_hash
from chukonu.engine.partitions import Partition
from chukonu.io import fs as fsmod

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- partitioners

class Partitioner:
    n: int

    def assign(self, batch: pa.RecordBatch, tc: Any, offset: int) -> np.ndarray:
        raise NotImplementedError


class HashPartitioner(Partitioner):
    def __init__(self, keys: Sequence[Expr], n: int) -> None:
        self.keys, self.n = list(keys), n

    def assign(self, batch: pa.RecordBatch, tc: Any, offset: int) -> np.ndarray:
        ctx = EvalCtx(tc.partition, offset, tc.input_file, ansi=getattr(tc, "ansi", False))
        cols = [as_array(k.evaluate(batch, ctx), batch.num_rows) for k in self.keys]
        return partition_ids(cols, self.n)


class RoundRobinPartitioner(Partitioner):
    def __init__(self, n: int) -> None:
        self.n = n

    def assign(self, batch: pa.RecordBatch, tc: Any, offset: int) -> np.ndarray:
        start = tc.partition + offset
        return (np.arange(start, start + batch.num_rows, dtype=np.int64)) % self.n


class SinglePartitioner(Partitioner):
    n = 1

    def assign(self, batch: pa.RecordBatch, tc: Any, offset: int) -> np.ndarray:
        return np.zeros(batch.num_rows, dtype=np.int64)


class RangePartitioner(Partitioner):
    def __init__(self, orders: list[SortOrder], boundaries: pa.Table) -> None:
        self.orders, self.boundaries = orders, boundaries
        self.n = boundaries.num_rows + 1

    def assign(self, batch: pa.RecordBatch, tc: Any, offset: int) -> np.ndarray:
        from chukonu.engine.sorting import range_partition_ids
        ctx = EvalCtx(tc.partition, offset, tc.input_file, ansi=getattr(tc, "ansi", False))
        keys = [as_array(o.evaluate(batch, ctx), batch.num_rows) for o in self.orders]
        return range_partition_ids(keys, self.boundaries, self.orders)


class KeyPartitioner:
    """RDD pairs (key, value) by a hash of the key that every process agrees on."""

    def __init__(self, n: int) -> None:
        self.n = n

    def split(self, items: list[Any]) -> dict[int, list[Any]]:
        out: dict[int, list[Any]] = {}
        n = self.n
        for kv in items:
            out.setdefault(portable_hash(kv[0]) % n, []).append(kv)
        return out


# ---------------------------------------------------------------------- files

@dataclass(frozen=True)
class ShuffleFile:
    url: str
    rows: int
    nbytes: int


class _ArrowOut:
    def __init__(self, fs: fsmod.FileSystem, path: str, schema: pa.Schema) -> None:
        self.fs, self.path = fs, path
        self.tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        self.file = fs.open_write(self.tmp)
        self.sink = pa.PythonFile(self.file, mode="w") if not isinstance(fs, fsmod.LocalFileSystem) else self.file
        self.writer = pa.ipc.new_stream(self.sink, schema)
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> int:
        self.writer.close()
        if self.sink is not self.file:
            self.sink.close()
        nbytes = self.file.tell()
        self.file.close()
        self.fs.rename(self.tmp, self.path)
        return nbytes


class _PickleOut:
    def __init__(self, fs: fsmod.FileSystem, path: str) -> None:
        self.fs, self.path = fs, path
        self.tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        self.file = fs.open_write(self.tmp)
        self.rows = 0

    def write(self, items: list[Any]) -> None:
        pickle.dump(items, self.file, protocol=pickle.HIGHEST_PROTOCOL)
        self.rows += len(items)

    def close(self) -> int:
        nbytes = self.file.tell()
        self.file.close()
        self.fs.rename(self.tmp, self.path)
        return nbytes


def _group_order(ids: np.ndarray, n: int) -> np.ndarray:
    """Row positions grouped by partition id, input order kept within a partition (a stable sort)."""
    if n <= 64:   # a few linear passes beat a comparison sort
        return np.concatenate([np.flatnonzero(ids == r) for r in range(n)])
    if n <= 32767:   # numpy's stable sort of 16-bit integers is a radix sort: linear time
        return np.argsort(ids.astype(np.int16), kind="stable")
    return np.argsort(ids, kind="stable")


CHUNK_ROWS = 1 << 20   # input rows partitioned at once: fewer, larger IPC batches per reduce partition


def _chunks(batches: Iterator[Any], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Input batches regrouped into batches of about CHUNK_ROWS rows.

    With 64K-row batches and 200 reduce partitions every write would be a few hundred rows, and the
    IPC framing per write dominated a shuffle; a million rows at a time makes each write ~16x larger.
    """
    buf: list[pa.RecordBatch] = []
    rows = 0
    for b in batches:
        if b.num_rows == 0:
            continue
        buf.append(b)
        rows += b.num_rows
        if rows >= CHUNK_ROWS:
            yield _one(buf, schema)
            buf, rows = [], 0
    if buf:
        yield _one(buf, schema)


def _one(buf: list[pa.RecordBatch], schema: pa.Schema) -> pa.RecordBatch:
    if len(buf) == 1:
        return buf[0]
    return pa.Table.from_batches(buf, schema=schema).combine_chunks().to_batches(max_chunksize=None)[0]


def write_partitioned(batches: Iterator[Any], partitioner: Any, base_url: str, prefix: str, schema: pa.Schema | None,
                      tc: Any) -> dict[int, ShuffleFile]:
    """Write ``batches`` split by ``partitioner`` to ``{base_url}/{prefix}-r{n}`` files."""
    fs, base = fsmod.resolve(base_url)
    outs: dict[int, Any] = {}
    offset = 0

    def out_for(r: int) -> Any:
        o = outs.get(r)
        if o is None:
            name = f"{prefix}-r{r:05d}"
            path = os.path.join(base, name) if isinstance(fs, fsmod.LocalFileSystem) else f"{base}/{name}"
            o = _PickleOut(fs, path) if schema is None else _ArrowOut(fs, path, schema)
            outs[r] = o
        return o

    if schema is not None:
        batches = _chunks(batches, schema)
    try:
        for b in batches:
            if schema is None:
                for r, items in partitioner.split(b).items():
                    out_for(r).write(items)
                continue
            if b.num_rows == 0:
                continue
            ids = partitioner.assign(b, tc, offset)
            offset += b.num_rows
            first = ids[0]
            if (ids == first).all():
                out_for(int(first)).write(b)
                continue
            order = _group_order(ids, partitioner.n)
            sorted_ids = ids[order]
            cuts = np.flatnonzero(np.diff(sorted_ids)) + 1
            starts = np.concatenate([[0], cuts])
            ends = np.concatenate([cuts, [len(ids)]])
            taken = b.take(pa.array(order))
            for s, e in zip(starts, ends):
                out_for(int(sorted_ids[s])).write(taken.slice(int(s), int(e - s)))
    except BaseException:
        for o in outs.values():
            try:
                o.file.close()
                fs.remove(o.tmp)
            except Exception:  # noqa: BLE001 - cleaning up after the real error
                pass
        raise
    result = {}
    for r, o in outs.items():
        rows = o.rows
        nbytes = o.close()
        result[r] = ShuffleFile(fs.url(o.path), rows, nbytes)
    tc.rows_out += sum(f.rows for f in result.values())
    return result


class FilesPartition(Partition):
    """The batches of a list of shuffle (or materialised) files, in order."""

    def __init__(self, files: list[ShuffleFile], schema: pa.Schema | None) -> None:
        self.files, self.schema = files, schema

    def batches(self, tc: Any) -> Iterator[Any]:
        for f in self.files:
            fs, path = fsmod.resolve(f.url)
            with fs.open_read(path) as fh:
                if self.schema is None:
                    while True:
                        try:
                            yield pickle.load(fh)
                        except EOFError:
                            break
                    continue
                reader = pa.ipc.open_stream(fh if isinstance(fs, fsmod.LocalFileSystem) else pa.PythonFile(fh, "r"))
                for b in reader:
                    if b.schema.equals(self.schema):
                        yield b
                    else:  # same columns, but names may differ after a rename
                        yield pa.RecordBatch.from_arrays(b.columns, schema=self.schema)

    @property
    def nbytes(self) -> int:
        return sum(f.nbytes for f in self.files)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)
