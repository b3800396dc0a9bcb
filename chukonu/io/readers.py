"""Format readers: Parquet, JSON lines, CSV and text, each reading one split at a time.

A reader is built on the driver (it lists the files, infers or checks the
schema and cuts the splits) and shipped inside each scan task, where
``read`` yields the split's record batches in the reader's schema, with
Hive partition columns appended. Line formats read a byte range the Hadoop
way: a split owns every line that starts inside it, so a line crossing a
chunk boundary is read once, by the split it starts in.
"""
from __future__ import annotations

import gzip
import io
import json
import logging
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from chukonu.errors import AnalysisException
from chukonu.io import fs as fsmod
from chukonu.io.splits import InputSplit, Segment

log = logging.getLogger(__name__)

BATCH_ROWS = 65536


class FormatReader:
    fmt = "?"

    def __init__(self, schema: pa.Schema, partition_schema: pa.Schema, options: dict[str, Any]) -> None:
        self.data_schema = schema            # columns stored in the files
        self.partition_schema = partition_schema
        self.options = options
        self.schema = pa.schema(list(schema) + list(partition_schema))
        self.read_columns: set[str] | None = None   # None: every column; else the others come back null

    def pruned(self, columns: list[str]) -> "FormatReader":
        """A copy that reads only ``columns`` (column pruning; formats that cannot skip columns ignore it)."""
        import copy
        out = copy.copy(self)
        out.read_columns = set(columns)
        return out

    def read(self, split: InputSplit, tc: Any) -> Iterator[pa.RecordBatch]:
        for seg in split.segments:
            tc.input_file = seg.url
            for b in self.read_segment(seg):
                if b.num_rows:
                    yield self._with_partitions(b, seg)

    def read_segment(self, seg: Segment) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    def _with_partitions(self, b: pa.RecordBatch, seg: Segment) -> pa.RecordBatch:
        cols = list(b.columns)
        if len(self.partition_schema):
            values = dict(seg.partition_values)
            for f in self.partition_schema:
                v = values.get(f.name)
                scalar = pa.scalar(v, pa.string()).cast(f.type) if v is not None else pa.scalar(None, f.type)
                cols.append(pa.repeat(scalar, b.num_rows) if v is not None else pa.nulls(b.num_rows, f.type))
        return pa.RecordBatch.from_arrays(cols, schema=self.schema)


def _conform(table: pa.Table | pa.RecordBatch, schema: pa.Schema, url: str) -> pa.Table:
    """``table`` with ``schema``'s columns: missing ones are null, others must have the same type."""
    cols = []
    names = table.schema.names
    for f in schema:
        if f.name not in names:
            cols.append(pa.nulls(table.num_rows, f.type))
            continue
        c = table.column(names.index(f.name))
        if c.type != f.type:
            try:
                c = c.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                raise AnalysisException(f"[SCHEMA_MISMATCH] {url}: column {f.name!r} is {c.type}, "
                                        f"expected {f.type}") from None
        cols.append(c)
    return pa.Table.from_arrays(cols, schema=schema)


# ------------------------------------------------------------------- parquet

class ParquetReader(FormatReader):
    fmt = "parquet"

    def read_segment(self, seg: Segment) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        fs, path = fsmod.resolve(seg.url)
        with fs.open_read(path, raw=True) as fh:
            try:
                pf = pq.ParquetFile(fh if isinstance(fs, fsmod.LocalFileSystem) else pa.PythonFile(fh, "r"))
            except (pa.ArrowInvalid, OSError) as e:
                raise AnalysisException(f"[CANNOT_READ_FILE_FOOTER] could not read Parquet file {seg.url}: {e}") \
                    from None
            present = set(pf.schema_arrow.names)
            columns = [f.name for f in self.data_schema if f.name in present and (
                self.read_columns is None or f.name in self.read_columns)]
            row_groups = list(seg.row_groups) if seg.row_groups is not None else None
            if row_groups == []:
                return
            try:
                for b in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=row_groups, columns=columns,
                                         use_threads=False):
                    for out in _conform(pa.Table.from_batches([b]), self.data_schema, seg.url).to_batches():
                        yield out
            except (pa.ArrowInvalid, OSError) as e:
                raise AnalysisException(f"[CORRUPT_FILE] {seg.url}: {e}") from None


# ------------------------------------------------------------- line formats

def _read_to_newline(fh: Any, piece: int = 4096) -> bytes:
    """Bytes up to and including the next newline, read in small pieces (little read-ahead)."""
    out = []
    while True:
        data = fh.read(piece)
        if not data:
            break
        cut = data.find(b"\n")
        if cut >= 0:
            out.append(data[:cut + 1])
            break
        out.append(data)
    return b"".join(out)


def read_lines(seg: Segment) -> bytes:
    """The complete lines that start inside the segment's byte range."""
    fs, path = fsmod.resolve(seg.url)
    if seg.url.endswith(".gz"):
        with fs.open_read(path) as fh, gzip.GzipFile(fileobj=fh) as gz:
            return gz.read()
    with fs.open_read(path, raw=True) as fh:
        start, end = seg.start, seg.start + seg.length
        begin = start
        if start > 0:
            fh.seek(start - 1)
            if fh.read(1) != b"\n":   # the line in progress belongs to the previous split
                begin = start + len(_read_to_newline(fh))
        if begin >= end and start > 0:
            return b""
        fh.seek(begin)
        data = fh.read(max(0, end - begin))
        if end < seg.file_size and not data.endswith(b"\n"):
            data += _read_to_newline(fh)
        return data


def _split_lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


class TextReader(FormatReader):
    fmt = "text"

    def read_segment(self, seg: Segment) -> Iterator[pa.RecordBatch]:
        if self.options.get("wholetext"):
            fs, path = fsmod.resolve(seg.url)
            with fs.open_read(path) as fh:
                data = fh.read().decode("utf-8", errors="replace")
            yield pa.RecordBatch.from_arrays([pa.array([data], pa.string())], schema=self.data_schema)
            return
        lines = _split_lines(read_lines(seg))
        for i in range(0, len(lines), BATCH_ROWS):
            yield pa.RecordBatch.from_arrays([pa.array(lines[i:i + BATCH_ROWS], pa.string())],
                                             schema=self.data_schema)


class JsonReader(FormatReader):
    fmt = "json"

    def read_segment(self, seg: Segment) -> Iterator[pa.RecordBatch]:
        import pyarrow.json as pj

        data = read_lines(seg)
        if not data.strip():
            return
        try:
            table = pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(use_threads=False,
                                                                               block_size=max(1 << 20, len(data) + 1)),
                                 parse_options=pj.ParseOptions(explicit_schema=self.data_schema,
                                                               unexpected_field_behavior="ignore"))
            table = _conform(table, self.data_schema, seg.url)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, AnalysisException):
            table = self._python_parse(data, seg)
        yield from table.combine_chunks().to_batches(max_chunksize=BATCH_ROWS)

    def _python_parse(self, data: bytes, seg: Segment) -> pa.Table:
        """Line by line, for what Arrow refuses: malformed lines and values of the wrong type."""
        from chukonu.engine.convert import python_to_arrow
        mode = str(self.options.get("mode", "PERMISSIVE")).upper()
        rows = []
        for n, line in enumerate(_split_lines(data)):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("not a JSON object")
            except ValueError as e:
                if mode == "FAILFAST":
                    raise AnalysisException(f"[MALFORMED_RECORD_IN_PARSING] {seg.url}: line {n + 1}: {e}") from None
                if mode == "DROPMALFORMED":
                    continue
                obj = {}
            rows.append(obj)
        cols = [python_to_arrow([_json_value(r.get(f.name), f.type) for r in rows], f.type) for f in self.data_schema]
        return pa.Table.from_arrays(cols, schema=self.data_schema)


def _json_value(v: Any, t: pa.DataType) -> Any:
    if v is None:
        return None
    if pa.types.is_string(t) and not isinstance(v, str):
        return json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list)) else \
            (str(v).lower() if isinstance(v, bool) else str(v))
    if pa.types.is_floating(t) and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


class CsvReader(FormatReader):
    fmt = "csv"

    def read_segment(self, seg: Segment) -> Iterator[pa.RecordBatch]:
        import pyarrow.csv as pcsv

        data = read_lines(seg)
        header = _truthy(self.options.get("header", False))
        skip = 1 if header and seg.start == 0 else 0
        if not data.strip():
            return
        names = self.data_schema.names
        table = pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=skip, use_threads=False,
                                          block_size=max(1 << 20, len(data) + 1)),
            parse_options=csv_parse_options(self.options),
            convert_options=pcsv.ConvertOptions(column_types={f.name: f.type for f in self.data_schema},
                                                null_values=[str(self.options.get("nullValue", ""))],
                                                strings_can_be_null=True, quoted_strings_can_be_null=False))
        yield from _conform(table, self.data_schema, seg.url).combine_chunks().to_batches(max_chunksize=BATCH_ROWS)


def csv_parse_options(options: dict[str, Any]) -> Any:
    import pyarrow.csv as pcsv
    sep = options.get("sep", options.get("delimiter", ","))
    quote = options.get("quote", '"')
    escape = options.get("escape", None)
    return pcsv.ParseOptions(delimiter=sep, quote_char=quote or False, escape_char=escape or False,
                             newlines_in_values=False)


def _truthy(v: Any) -> bool:
    return v is True or str(v).lower() == "true"


def normalize_inferred(t: pa.DataType) -> pa.DataType:
    """Spark's JSON inference: nulls and timestamps as strings, struct fields sorted by name."""
    if pa.types.is_null(t) or pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return pa.string()
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_struct(t):
        fields = sorted((t.field(i) for i in range(t.num_fields)), key=lambda f: f.name)
        return pa.struct([pa.field(f.name, normalize_inferred(f.type)) for f in fields])
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(normalize_inferred(t.value_type))
    return t


def _int32_if_fits(table: pa.Table, f: pa.Field) -> pa.DataType:
    if not pa.types.is_int64(f.type):
        return f.type
    c = table.column(f.name)
    lo, hi = pc.min(c).as_py(), pc.max(c).as_py()
    if lo is None or (-(1 << 31) <= lo and hi < (1 << 31)):
        return pa.int32()
    return pa.int64()
