"""Physical partitions: where a task's batches come from, and the narrow ops applied to them.

A partition is a small picklable recipe: ``batches(tc)`` yields the
partition's batches (Arrow record batches for DataFrames, Python lists for
RDDs). Narrow operators stack on a partition with ``then``; the chain runs
as nested generators in one pass. ``locality`` lists the data servers that
hold the partition's input, best first, for the scheduler.
"""
from __future__ import annotations

import collections
import logging
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa

log = logging.getLogger(__name__)

BATCH_ROWS = 65536


class Partition:
    def batches(self, tc: Any) -> Iterator[Any]:
        raise NotImplementedError

    def locality(self) -> tuple[int, ...]:
        return ()

    def then(self, *ops: Any) -> "Partition":
        return ChainPartition(self, list(ops))


class TablePartition(Partition):
    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def batches(self, tc: Any) -> Iterator[Any]:
        yield from self.table.combine_chunks().to_batches(max_chunksize=BATCH_ROWS)


class ListPartition(Partition):
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def batches(self, tc: Any) -> Iterator[Any]:
        for i in range(0, len(self.items), BATCH_ROWS):
            yield self.items[i:i + BATCH_ROWS]


class RangePartition(Partition):
    def __init__(self, start: int, stop: int, step: int, name: str = "id") -> None:
        self.start, self.stop, self.step, self.name = start, stop, step, name

    def batches(self, tc: Any) -> Iterator[Any]:
        values = np.arange(self.start, self.stop, self.step, dtype=np.int64)
        for i in range(0, len(values), BATCH_ROWS):
            yield pa.RecordBatch.from_arrays([pa.array(values[i:i + BATCH_ROWS])], names=[self.name])


class EmptyPartition(Partition):
    def batches(self, tc: Any) -> Iterator[Any]:
        return iter(())


class ScanPartition(Partition):
    """One input split of a file format reader."""

    def __init__(self, reader: Any, split: Any) -> None:
        self.reader, self.split = reader, split

    def batches(self, tc: Any) -> Iterator[Any]:
        return self.reader.read(self.split, tc)

    def locality(self) -> tuple[int, ...]:
        return tuple(self.split.preferred)


class ChainPartition(Partition):
    def __init__(self, parent: Partition, ops: list[Any]) -> None:
        if isinstance(parent, ChainPartition):
            ops = parent.ops + ops
            parent = parent.parent
        self.parent: Partition = parent
        self.ops: list[Any] = ops

    def batches(self, tc: Any) -> Iterator[Any]:
        it = self.parent.batches(tc)
        for op in self.ops:
            it = op.run(it, tc)
        return it

    def locality(self) -> tuple[int, ...]:
        return self.parent.locality()


class ConcatPartition(Partition):
    """Several partitions read one after the other (coalesce, limit's gather)."""

    def __init__(self, parents: Sequence[Partition]) -> None:
        self.parents = list(parents)

    def batches(self, tc: Any) -> Iterator[Any]:
        for p in self.parents:
            yield from p.batches(tc)

    def locality(self) -> tuple[int, ...]:
        votes: collections.Counter[int] = collections.Counter()
        for p in self.parents:
            loc = p.locality()
            if loc:
                votes[loc[0]] += 1
        return tuple(s for s, _ in votes.most_common())


class BlockingPartition(Partition):
    """A partition computed from whole inputs at once (final aggregate, shuffle join)."""

    def __init__(self, inputs: Sequence[Partition], fn: Any, schemas: Sequence[pa.Schema]) -> None:
        self.inputs, self.fn, self.schemas = list(inputs), fn, list(schemas)

    def batches(self, tc: Any) -> Iterator[Any]:
        tables = [pa.Table.from_batches(list(p.batches(tc)), schema=s) for p, s in zip(self.inputs, self.schemas)]
        out = self.fn(*tables)
        if out.num_rows:
            yield from out.combine_chunks().to_batches(max_chunksize=BATCH_ROWS)
