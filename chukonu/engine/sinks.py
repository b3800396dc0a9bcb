"""Sinks: where a task's batches go (the driver, a shuffle, stored files, a count).

A sink's ``consume`` drains the task's pipeline and returns a small,
picklable value for the driver: the batches themselves only for ``collect``,
otherwise file lists and counts, so results of big stages stay on disk.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import pyarrow as pa

from chukonu.engine.expressions import EvalCtx, Expr, as_array
from chukonu.engine.shuffle import SinglePartitioner, write_partitioned

log = logging.getLogger(__name__)


class Sink:
    def consume(self, batches: Iterator[Any], tc: Any) -> Any:
        raise NotImplementedError


class CollectSink(Sink):
    def consume(self, batches: Iterator[Any], tc: Any) -> list[Any]:
        out = list(batches)
        tc.rows_out += sum(len(b) for b in out)
        return out


class CountSink(Sink):
    def consume(self, batches: Iterator[Any], tc: Any) -> int:
        n = sum(len(b) for b in batches)
        tc.rows_out += n
        return n


class ForeachSink(Sink):
    """foreach / foreachPartition: the user's function sees rows or the partition's iterator."""

    def __init__(self, fn: Callable[..., Any], per_partition: bool) -> None:
        self.fn, self.per_partition = fn, per_partition

    def consume(self, batches: Iterator[Any], tc: Any) -> None:
        from chukonu.engine.udfs import UdfError
        items = (x for b in batches for x in b)
        try:
            if self.per_partition:
                self.fn(items)
            else:
                for x in items:
                    self.fn(x)
        except Exception as e:  # noqa: BLE001
            raise UdfError(getattr(self.fn, "__name__", "function"), e) from e


class ShuffleWriteSink(Sink):
    def __init__(self, partitioner: Any, base_url: str, shuffle_id: int, schema: pa.Schema | None) -> None:
        self.partitioner, self.base_url, self.shuffle_id, self.schema = partitioner, base_url, shuffle_id, schema

    def consume(self, batches: Iterator[Any], tc: Any) -> Any:
        prefix = f"s{self.shuffle_id}-m{tc.partition:05d}"
        return write_partitioned(batches, self.partitioner, self.base_url, prefix, self.schema, tc)


class MaterializeSink(Sink):
    """Store the partition as one file (cache, and the first pass of a sort, which also samples keys)."""

    def __init__(self, base_url: str, store_id: int, schema: pa.Schema | None,
                 sample_keys: list[Expr] | None = None, sample_size: int = 64) -> None:
        self.base_url, self.store_id, self.schema = base_url, store_id, schema
        self.sample_keys, self.sample_size = sample_keys, sample_size

    def consume(self, batches: Iterator[Any], tc: Any) -> Any:
        samples: list[pa.Table] = []

        def tap(it: Iterator[Any]) -> Iterator[Any]:
            from chukonu.engine.sorting import sample_keys
            offset = 0
            for b in it:
                if self.sample_keys is not None and b.num_rows:
                    ctx = EvalCtx(tc.partition, offset, tc.input_file, ansi=getattr(tc, "ansi", False))
                    keys = [as_array(k.evaluate(b, ctx), b.num_rows) for k in self.sample_keys]
                    samples.append(sample_keys(keys, self.sample_size))
                offset += len(b)
                yield b

        prefix = f"c{self.store_id}-p{tc.partition:05d}"
        files = write_partitioned(tap(batches), _Single() if self.schema is None else SinglePartitioner(),
                                  self.base_url, prefix, self.schema, tc)
        sample = None
        if self.sample_keys is not None and samples:
            from chukonu.engine.sorting import sample_keys
            t = pa.concat_tables(samples)
            sample = sample_keys([t.column(i).combine_chunks() for i in range(t.num_columns)], self.sample_size)
        return files.get(0), sample


class _Single:
    """Python lists all to partition 0 (materialising an RDD)."""

    n = 1

    def split(self, items: list[Any]) -> dict[int, list[Any]]:
        return {0: items}
