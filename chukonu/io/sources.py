"""Opening an input on the driver: list the files, settle the schema, cut the splits.

This is what ``spark.read.<format>(paths)`` does eagerly, as Spark does: a
missing path, an unreadable Parquet footer or files whose schemas disagree
are reported here, before any task runs. JSON schemas are inferred from a
sample of each file (the first ``samplingBytes`` bytes, 16 MiB by default)
with Spark's rules; CSV columns are strings unless ``inferSchema`` is set.
"""
from __future__ import annotations

import io
import json
import logging
from typing import Any

import pyarrow as pa

from chukonu.errors import AnalysisException
from chukonu.io import fs as fsmod
from chukonu.io.readers import (CsvReader, FormatReader, JsonReader, ParquetReader, TextReader, _int32_if_fits,
                                _truthy, csv_parse_options, normalize_inferred)
from chukonu.io.splits import DEFAULT_MAX_BYTES, discover_partitions, make_splits, partition_types

log = logging.getLogger(__name__)

SAMPLE_BYTES = 16 << 20


def list_inputs(paths: list[str]) -> list[tuple[str, list[fsmod.FileInfo]]]:
    out = []
    for p in paths:
        fs, path = fsmod.resolve(p)
        out.append((fs.url(path), fs.list_files(path)))
    return out


def _sample(url: str, limit: int) -> bytes:
    fs, path = fsmod.resolve(url)
    with fs.open_read(path) as fh:
        if url.endswith(".gz"):
            import gzip
            with gzip.GzipFile(fileobj=fh) as gz:
                data = gz.read(limit)
        else:
            data = fh.read(limit)
    if len(data) >= limit:
        cut = data.rfind(b"\n")
        data = data[:cut + 1] if cut >= 0 else data
    return data


def _infer_json(samples: list[bytes]) -> pa.Schema:
    import pyarrow.json as pj
    from chukonu.engine.convert import infer_type, merge_types

    schemas = []
    for data in samples:
        if not data.strip():
            continue
        try:
            t = pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(use_threads=False,
                                                                           block_size=max(1 << 20, len(data) + 1)))
            schemas.append(pa.schema([pa.field(f.name, normalize_inferred(f.type)) for f in t.schema]))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            fields: dict[str, Any] = {}
            for line in data.decode("utf-8", "replace").splitlines():
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    for k, v in obj.items():
                        try:
                            fields[k] = merge_types([fields.get(k), infer_type(v)])
                        except TypeError:
                            fields[k] = pa.string()
            schemas.append(pa.schema([pa.field(k, normalize_inferred(v or pa.null())) for k, v in fields.items()]))
    if not schemas:
        return pa.schema([])
    try:
        merged = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        names: dict[str, pa.DataType] = {}
        for s in schemas:
            for f in s:
                names[f.name] = f.type if f.name not in names or names[f.name] == f.type else pa.string()
        merged = pa.schema([pa.field(k, v) for k, v in names.items()])
    return pa.schema(sorted((pa.field(f.name, normalize_inferred(f.type)) for f in merged), key=lambda f: f.name))


def _infer_csv(sample: bytes, options: dict[str, Any]) -> pa.Schema:
    import pyarrow.csv as pcsv

    header = _truthy(options.get("header", False))
    parse = csv_parse_options(options)
    first = sample.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")
    first_table = pcsv.read_csv(io.BytesIO(first.encode() + b"\n"),
                                read_options=pcsv.ReadOptions(autogenerate_column_names=True),
                                parse_options=parse,
                                convert_options=pcsv.ConvertOptions(column_types={}, strings_can_be_null=False))
    width = first_table.num_columns
    names = [str(first_table.column(i)[0].as_py()) for i in range(width)] if header else \
        [f"_c{i}" for i in range(width)]
    if not _truthy(options.get("inferSchema", False)):
        return pa.schema([pa.field(n, pa.string()) for n in names])
    t = pcsv.read_csv(io.BytesIO(sample),
                      read_options=pcsv.ReadOptions(column_names=names, skip_rows=1 if header else 0),
                      parse_options=parse,
                      convert_options=pcsv.ConvertOptions(null_values=[str(options.get("nullValue", ""))],
                                                          strings_can_be_null=True))
    return pa.schema([pa.field(f.name, _int32_if_fits(t, f) if not pa.types.is_null(f.type) else pa.string())
                      for f in t.schema])


def _parquet_footers(files: list[fsmod.FileInfo]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    footers = {}
    for f in files:
        fs, path = fsmod.resolve(f.url)
        try:
            with fs.open_read(path) as fh:
                footers[f.url] = pq.read_metadata(fh if isinstance(fs, fsmod.LocalFileSystem)
                                                  else pa.PythonFile(fh, "r"))
        except (pa.ArrowInvalid, OSError) as e:
            raise AnalysisException(f"[CANNOT_READ_FILE_FOOTER] could not read the footer of Parquet file "
                                    f"{f.url}: {e}") from None
    return footers


def _check_parquet(footers: dict[str, Any], schema: pa.Schema, merge: bool) -> pa.Schema:
    schemas = {url: m.schema.to_arrow_schema() for url, m in footers.items()}
    if merge:
        try:
            return pa.unify_schemas(list(schemas.values()), promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise AnalysisException(f"[CANNOT_MERGE_SCHEMAS] {e}") from None
    for url, s in schemas.items():
        for f in schema:
            idx = s.get_field_index(f.name)
            if idx >= 0 and s.field(idx).type != f.type and not _compatible(s.field(idx).type, f.type):
                raise AnalysisException(f"[SCHEMA_MISMATCH] Parquet file {url}: column {f.name!r} is "
                                        f"{s.field(idx).type}, but the schema has {f.type}")
    return schema


def _compatible(found: pa.DataType, expected: pa.DataType) -> bool:
    strings = (pa.string(), pa.large_string())
    return (found in strings and expected in strings) or (
        pa.types.is_integer(found) and pa.types.is_integer(expected) and found.bit_width <= expected.bit_width)


READERS: dict[str, type[FormatReader]] = {"parquet": ParquetReader, "json": JsonReader, "csv": CsvReader,
                                          "text": TextReader}


def open_source(fmt: str, paths: list[str], options: dict[str, Any], user_schema: pa.Schema | None,
                max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[FormatReader, list[Any]]:
    """The reader and splits for ``paths`` in format ``fmt``."""
    if fmt not in READERS:
        from chukonu.errors import unsupported
        raise unsupported(f"DataFrameReader.format({fmt!r})", "formats: parquet, json, csv, text")
    if not paths:
        raise AnalysisException("no input paths given")
    if fmt == "json" and _truthy(options.get("multiLine", options.get("multiline", False))):
        from chukonu.errors import unsupported
        raise unsupported("DataFrameReader.json(multiLine=True)", "JSON lines only")
    listed = list_inputs(paths)
    files = [f for _, fl in listed for f in fl]
    part_names: list[str] = []
    part_values: dict[str, tuple] = {}
    for base, fl in listed:
        names, values = discover_partitions(base, fl)
        part_values.update(values)
        part_names += [n for n in names if n not in part_names]
    footers = None
    if user_schema is not None:
        data_schema = pa.schema([f for f in user_schema if f.name not in part_names])
    elif fmt == "text":
        data_schema = pa.schema([pa.field("value", pa.string())])
    elif not files:
        raise AnalysisException(f"[UNABLE_TO_INFER_SCHEMA] Unable to infer schema for {fmt}: no files under "
                                f"{paths}. It must be specified manually.")
    elif fmt == "parquet":
        footers = _parquet_footers(files)
        data_schema = footers[files[0].url].schema.to_arrow_schema()
        data_schema = pa.schema([pa.field(f.name, pa.string() if pa.types.is_large_string(f.type) else f.type)
                                 for f in data_schema])
        data_schema = _check_parquet(footers, data_schema, _truthy(options.get("mergeSchema", False)))
    elif fmt == "json":
        limit = int(options.get("samplingBytes", SAMPLE_BYTES))
        data_schema = _infer_json([_sample(f.url, limit) for f in files])
    else:
        data_schema = _infer_csv(_sample(files[0].url, int(options.get("samplingBytes", SAMPLE_BYTES))), options)
    if fmt == "parquet" and footers is None and files:
        footers = _parquet_footers(files)
        _check_parquet(footers, data_schema, False)
    types = partition_types(part_names, part_values)
    part_schema = pa.schema([pa.field(n, types[n]) for n in part_names if n not in data_schema.names])
    if user_schema is not None:
        part_schema = pa.schema([f for f in user_schema if f.name in part_names])
    reader = READERS[fmt](data_schema, part_schema, dict(options))
    splits = make_splits(files, fmt, part_values if part_names else None, max_bytes=max_bytes, footers=footers)
    return reader, splits
