"""``spark.read`` and ``df.write``: formats parquet, json (lines), csv and text.

Paths may be local or SuperFS URLs (``superfs://host:port/path``,
``superfs:///path``). Reading lists files and settles the schema at once;
writing runs one job whose tasks write under ``_temporary`` and commits by
renaming the files into place (``io.writers``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chukonu.engine import plan as P
from chukonu.errors import unsupported
from chukonu.io import writers
from chukonu.io.fs import resolve
from chukonu.io.sources import open_source
from chukonu.sql.types import arrow_schema

if TYPE_CHECKING:
    from chukonu.sql.dataframe import DataFrame
    from chukonu.sql.session import SparkSession


def _paths(path: Any) -> list[str]:
    return [path] if isinstance(path, str) else list(path)


class DataFrameReader:
    def __init__(self, session: "SparkSession") -> None:
        self._session = session
        self._format = "parquet"
        self._options: dict[str, Any] = {}
        self._schema: Any = None

    def format(self, source: str) -> "DataFrameReader":
        self._format = source.lower()
        return self

    def option(self, key: str, value: Any) -> "DataFrameReader":
        self._options[key] = value
        return self

    def options(self, **opts: Any) -> "DataFrameReader":
        self._options.update(opts)
        return self

    def schema(self, schema: Any) -> "DataFrameReader":
        self._schema = schema
        return self

    def load(self, path: Any = None, format: str | None = None, schema: Any = None,  # noqa: A002
             **options: Any) -> "DataFrame":
        from chukonu.sql.dataframe import DataFrame
        if format is not None:
            self.format(format)
        if schema is not None:
            self.schema(schema)
        self._options.update(options)
        if path is None:
            raise unsupported("DataFrameReader.load() without a path")
        paths = _paths(path)
        user = arrow_schema(self._schema) if self._schema is not None else None
        max_bytes = self._session._engine._int("spark.sql.files.maxPartitionBytes", 128 << 20)
        reader, splits = open_source(self._format, paths, self._options, user, max_bytes=max_bytes)
        return DataFrame(P.FileScan(self._format, paths, reader, splits, reader.schema), self._session)

    def parquet(self, *paths: str, **options: Any) -> "DataFrame":
        return self.format("parquet").load(list(paths), **options)

    def json(self, path: Any, schema: Any = None, **options: Any) -> "DataFrame":
        return self.format("json").load(path, schema=schema, **options)

    def csv(self, path: Any, schema: Any = None, sep: str | None = None, header: Any = None,
            inferSchema: Any = None, **options: Any) -> "DataFrame":
        for k, v in (("sep", sep), ("header", header), ("inferSchema", inferSchema)):
            if v is not None:
                options[k] = v
        return self.format("csv").load(path, schema=schema, **options)

    def text(self, paths: Any, wholetext: bool = False, lineSep: str | None = None, **options: Any) -> "DataFrame":
        if lineSep not in (None, "\n"):
            raise unsupported("DataFrameReader.text(lineSep=...)")
        if wholetext:
            options["wholetext"] = True
        return self.format("text").load(paths, **options)

    def orc(self, *a: Any, **k: Any) -> "DataFrame":
        raise unsupported("DataFrameReader.orc")

    def table(self, *a: Any, **k: Any) -> "DataFrame":
        raise unsupported("DataFrameReader.table (catalog tables)")

    def jdbc(self, *a: Any, **k: Any) -> "DataFrame":
        raise unsupported("DataFrameReader.jdbc")


class DataFrameWriter:
    def __init__(self, df: "DataFrame") -> None:
        self._df = df
        self._mode = "errorifexists"
        self._format = "parquet"
        self._options: dict[str, Any] = {}
        self._partition_by: list[str] = []

    def mode(self, saveMode: str | None) -> "DataFrameWriter":
        self._mode = saveMode or "errorifexists"
        return self

    def format(self, source: str) -> "DataFrameWriter":
        self._format = source.lower()
        return self

    def option(self, key: str, value: Any) -> "DataFrameWriter":
        self._options[key] = value
        return self

    def options(self, **opts: Any) -> "DataFrameWriter":
        self._options.update(opts)
        return self

    def partitionBy(self, *cols: Any) -> "DataFrameWriter":
        if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
            cols = tuple(cols[0])
        self._partition_by = list(cols)
        return self

    def save(self, path: str | None = None, format: str | None = None, mode: str | None = None,  # noqa: A002
             partitionBy: Any = None, **options: Any) -> None:
        from chukonu.io.writers import WriteFilesSink
        if format:
            self.format(format)
        if mode:
            self.mode(mode)
        if partitionBy:
            self.partitionBy(partitionBy)
        self._options.update(options)
        if path is None:
            raise unsupported("DataFrameWriter.save() without a path")
        if self._format not in writers.EXTENSIONS:
            raise unsupported(f"DataFrameWriter.format({self._format!r})", "formats: parquet, json, csv, text")
        codec = str(self._options.get("compression", "none")).lower()
        if self._format != "parquet" and codec not in ("none", "uncompressed"):
            raise unsupported(f"DataFrameWriter.{self._format}(compression={codec!r})")
        fs, local = resolve(path)
        url = fs.url(local)
        if not writers.prepare_output(url, self._mode):
            return
        job_id = writers.new_job_id()
        tmp = f"{url}/_temporary/{job_id}"
        df = self._df
        schema = P.to_arrow_schema(df._plan.schema)
        missing = [c for c in self._partition_by if c not in schema.names]
        if missing:
            from chukonu.errors import AnalysisException
            raise AnalysisException(f"partitionBy columns {missing} are not in the DataFrame")
        fmt, opts, parts = self._format, dict(self._options), list(self._partition_by)
        written = df._run("write", df._plan, lambda i: WriteFilesSink(tmp, fmt, schema, parts, opts, job_id))
        writers.commit(url, job_id, written)

    def parquet(self, path: str, mode: str | None = None, partitionBy: Any = None,
                compression: str | None = None) -> None:
        if compression:
            self._options["compression"] = compression
        self.format("parquet").save(path, mode=mode, partitionBy=partitionBy)

    def json(self, path: str, mode: str | None = None, **options: Any) -> None:
        self.format("json").save(path, mode=mode, **options)

    def csv(self, path: str, mode: str | None = None, header: Any = None, sep: str | None = None,
            **options: Any) -> None:
        if header is not None:
            options["header"] = str(header).lower()
        if sep is not None:
            options["sep"] = sep
        self.format("csv").save(path, mode=mode, **options)

    def text(self, path: str, **options: Any) -> None:
        self.format("text").save(path, **options)

    def saveAsTable(self, *a: Any, **k: Any) -> None:
        raise unsupported("DataFrameWriter.saveAsTable (catalog tables)")

    def insertInto(self, *a: Any, **k: Any) -> None:
        raise unsupported("DataFrameWriter.insertInto (catalog tables)")

    def bucketBy(self, *a: Any, **k: Any) -> "DataFrameWriter":
        raise unsupported("DataFrameWriter.bucketBy")

    def sortBy(self, *a: Any, **k: Any) -> "DataFrameWriter":
        raise unsupported("DataFrameWriter.sortBy")
