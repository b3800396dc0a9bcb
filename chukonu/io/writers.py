"""Writing a DataFrame: one file per task (and per partition-column value), then a commit.

Tasks write under ``<output>/_temporary/<job>/`` and report the relative
paths they wrote. The driver commits by renaming every file into place and
writing ``_SUCCESS``; a failed job leaves only its temporary directory,
which the next write removes. ``partitionBy`` columns become Hive-style
``name=value`` directories and are left out of the files, as Spark does.
"""
from __future__ import annotations

import base64
import datetime
import decimal
import json
import logging
import urllib.parse
import uuid
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from chukonu.io import fs as fsmod
from chukonu.io.splits import HIVE_NULL

log = logging.getLogger(__name__)

EXTENSIONS = {"parquet": ".snappy.parquet", "json": ".json", "csv": ".csv", "text": ".txt"}


def _escape(v: Any) -> str:
    if v is None:
        return HIVE_NULL
    if isinstance(v, bool):
        return str(v).lower()
    return urllib.parse.quote(str(v), safe=" ")


def _json_default(v: Any) -> Any:
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode()
    raise TypeError(f"cannot write {type(v).__name__} as JSON")


def _drop_nulls(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_drop_nulls(x) for x in v]
    return v


class _FileOut:
    """One output file of a format."""

    def __init__(self, fmt: str, url: str, schema: pa.Schema, options: dict[str, Any]) -> None:
        self.fmt, self.schema, self.options = fmt, schema, options
        self.fs, path = fsmod.resolve(url)
        self.file = self.fs.open_write(path)
        local = isinstance(self.fs, fsmod.LocalFileSystem)
        self.sink = self.file if local else pa.PythonFile(self.file, mode="w")
        self.writer: Any = None
        if fmt == "parquet":
            import pyarrow.parquet as pq
            self.writer = pq.ParquetWriter(self.sink, schema, compression=options.get("compression", "snappy"))
        elif fmt == "csv":
            import pyarrow.csv as pcsv
            header = str(options.get("header", "false")).lower() == "true"
            self.writer = pcsv.CSVWriter(self.sink, schema, write_options=pcsv.WriteOptions(
                include_header=header, delimiter=options.get("sep", options.get("delimiter", ","))))

    def write(self, batch: pa.RecordBatch) -> None:
        if self.fmt in ("parquet", "csv"):
            self.writer.write_batch(batch)
        elif self.fmt == "json":
            lines = [json.dumps(_drop_nulls(r), default=_json_default, ensure_ascii=False, separators=(",", ":"))
                     for r in batch.to_pylist()]
            self.file.write(("\n".join(lines) + "\n").encode("utf-8"))
        else:
            if batch.num_columns != 1:
                from chukonu.errors import AnalysisException
                raise AnalysisException(f"Text data source supports only a single column, and you have "
                                        f"{batch.num_columns} columns.")
            lines = ["" if v is None else str(v) for v in batch.column(0).to_pylist()]
            self.file.write(("\n".join(lines) + "\n").encode("utf-8"))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.sink is not self.file:
            self.sink.close()
        self.file.close()


class WriteFilesSink:
    """A task's output as files under the job's temporary directory."""

    def __init__(self, tmp_url: str, fmt: str, schema: pa.Schema, partition_by: list[str], options: dict[str, Any],
                 job_id: str) -> None:
        self.tmp_url, self.fmt, self.schema = tmp_url, fmt, schema
        self.partition_by, self.options, self.job_id = partition_by, options, job_id

    def consume(self, batches: Iterator[pa.RecordBatch], tc: Any) -> list[str]:
        part_idx = [self.schema.get_field_index(c) for c in self.partition_by]
        data_idx = [i for i in range(len(self.schema)) if i not in part_idx]
        data_schema = pa.schema([self.schema.field(i) for i in data_idx])
        outs: dict[str, _FileOut] = {}
        name = f"part-{tc.partition:05d}-{self.job_id}.c000{EXTENSIONS[self.fmt]}"
        try:
            for b in batches:
                if b.num_rows == 0:
                    continue
                tc.rows_out += b.num_rows
                if not part_idx:
                    self._out(outs, "", name, data_schema).write(b)
                    continue
                keys = list(zip(*[b.column(i).to_pylist() for i in part_idx]))
                groups: dict[tuple, list[int]] = {}
                for row, k in enumerate(keys):
                    groups.setdefault(k, []).append(row)
                for k, rows in groups.items():
                    sub = "/".join(f"{c}={_escape(v)}" for c, v in zip(self.partition_by, k))
                    piece = b.take(pa.array(np.array(rows, dtype=np.int64)))
                    piece = pa.RecordBatch.from_arrays([piece.column(i) for i in data_idx], schema=data_schema)
                    self._out(outs, sub, name, data_schema).write(piece)
        finally:
            for o in outs.values():
                o.close()
        return [rel for rel in outs]

    def _out(self, outs: dict[str, _FileOut], sub: str, name: str, schema: pa.Schema) -> _FileOut:
        rel = f"{sub}/{name}" if sub else name
        o = outs.get(rel)
        if o is None:
            o = _FileOut(self.fmt, fsmod.join(self.tmp_url, rel), schema, self.options)
            outs[rel] = o
        return o


def prepare_output(url: str, mode: str) -> bool:
    """Apply the save mode before a write; False means 'ignore' found existing data: skip."""
    fs, path = fsmod.resolve(url)
    exists = fs.exists(path) and (not fs.isdir(path) or bool([n for n in fs.listdir(path)
                                                              if n != "_temporary"]))
    mode = mode.lower()
    if exists:
        if mode in ("error", "errorifexists", "default"):
            from chukonu.errors import AnalysisException
            raise AnalysisException(f"[PATH_ALREADY_EXISTS] Path {url} already exists. Set mode as "
                                    f"\"overwrite\" to overwrite the existing path.")
        if mode == "ignore":
            return False
        if mode == "overwrite":
            fs.rmtree(path)
    elif mode not in ("error", "errorifexists", "default", "ignore", "overwrite", "append"):
        raise ValueError(f"unknown save mode {mode!r}")
    fs.makedirs(path)
    return True


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


def commit(url: str, job_id: str, written: list[list[str]]) -> int:
    """Move every task's files from the temporary directory into place; write _SUCCESS."""
    fs, path = fsmod.resolve(url)
    tmp = fsmod.join(path, "_temporary", job_id)
    n = 0
    for rels in written:
        for rel in rels:
            fs.rename(fsmod.join(tmp, rel), fsmod.join(path, rel))
            n += 1
    fs.rmtree(fsmod.join(path, "_temporary"))
    with fs.open_write(fsmod.join(path, "_SUCCESS")):
        pass
    return n
