"""SparkSession: the entry point, as ``pyspark.sql.SparkSession``.

``SparkSession.builder.master("local[4]").config(k, v).getOrCreate()``
returns the active session (creating it once). The master picks where
tasks run: ``local`` in the driver, ``local[N]`` in N worker processes,
``ray`` / ``ray://ADDRESS`` on Ray. chukonu's own settings:

* ``chukonu.executor``: inline | process | ray (overrides the master)
* ``chukonu.workers``: number of worker processes
* ``chukonu.superfs.address``: start one worker per data server of that cluster ("local": the local one)
* ``chukonu.workers.dataServers``: explicit data server ids, one worker each ("0,1,2")
* ``chukonu.shuffle.dir``: where shuffles spill (local path or superfs:// URL)
* ``chukonu.shuffle.targetBytes``: reduce partitions are merged up to this size
* ``chukonu.locality.wait``: seconds a task waits for the worker beside its data
* ``chukonu.progress``: console | log | off (default: console on a terminal)
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import pyarrow as pa

from chukonu import __version__
from chukonu.engine import plan as P
from chukonu.engine.convert import rows_to_table
from chukonu.engine.engine import Engine, _workers_from_master
from chukonu.errors import unsupported
from chukonu.sql.dataframe import DataFrame
from chukonu.sql.readwriter import DataFrameReader
from chukonu.sql.types import DataType, StructType, arrow_schema, parse_schema, to_data_type

log = logging.getLogger(__name__)

_lock = threading.RLock()


class RuntimeConfig:
    def __init__(self, values: dict[str, str]) -> None:
        self._values = values

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._values[key] = str(value) if not isinstance(value, bool) else str(value).lower()

    def unset(self, key: str) -> None:
        self._values.pop(key, None)

    def getAll(self) -> dict[str, str]:
        return dict(self._values)

    def isModifiable(self, key: str) -> bool:
        return True


class Builder:
    def __init__(self) -> None:
        self._conf: dict[str, str] = {}

    def master(self, master: str) -> "Builder":
        self._conf["spark.master"] = master
        return self

    def appName(self, name: str) -> "Builder":
        self._conf["spark.app.name"] = name
        return self

    def config(self, key: Any = None, value: Any = None, conf: Any = None,
               map: dict | None = None) -> "Builder":  # noqa: A002 - PySpark's parameter name
        if isinstance(key, dict):
            map, key = key, None
        if key is not None:
            self._conf[key] = str(value).lower() if isinstance(value, bool) else str(value)
        for k, v in (map or {}).items():
            self._conf[k] = str(v)
        if conf is not None:
            for k, v in conf.getAll():
                self._conf[k] = v
        return self

    def enableHiveSupport(self) -> "Builder":
        raise unsupported("SparkSession.builder.enableHiveSupport")

    def remote(self, url: str) -> "Builder":
        raise unsupported("SparkSession.builder.remote (Spark Connect)")

    def getOrCreate(self) -> "SparkSession":
        with _lock:
            active = SparkSession._active
            if active is not None and not active._stopped:
                for k, v in self._conf.items():
                    if k != "spark.master":
                        active.conf.set(k, v)
                return active
            return SparkSession(dict(self._conf))

    def create(self) -> "SparkSession":
        return SparkSession(dict(self._conf))


class _BuilderDescriptor:
    def __get__(self, obj: Any, cls: Any) -> Builder:
        return Builder()


class SparkSession:
    builder = _BuilderDescriptor()
    _active: "SparkSession | None" = None

    def __init__(self, conf: dict[str, str] | None = None) -> None:
        values = {"spark.master": "local[*]", "spark.app.name": "chukonu"}
        values.update(conf or {})
        self._conf_values = values
        self.conf = RuntimeConfig(values)
        self._engine = Engine(values)
        zone = values.get("spark.sql.session.timeZone")
        if zone is not None and zone.upper() not in ("UTC", "GMT", "Z", "ETC/UTC", "+00:00", "UTC+0"):
            log.warning("chukonu computes dates and times in UTC; spark.sql.session.timeZone=%s is not applied",
                        zone)
        self._stopped = False
        self._sc: Any = None
        from chukonu.sql.catalog import Catalog
        self._catalog = Catalog()
        with _lock:
            SparkSession._active = self
        log.info("chukonu session started (master %s)", values["spark.master"])

    # --------------------------------------------------------------- basics

    @property
    def version(self) -> str:
        return f"chukonu-{__version__}"

    @classmethod
    def getActiveSession(cls) -> "SparkSession | None":
        return cls._active if cls._active is not None and not cls._active._stopped else None

    active = getActiveSession

    @property
    def sparkContext(self) -> Any:
        if self._sc is None:
            from chukonu.rdd import SparkContext
            self._sc = SparkContext(self)
        return self._sc

    @property
    def read(self) -> DataFrameReader:
        return DataFrameReader(self)

    @property
    def jobs(self) -> list[Any]:
        """Records of the jobs this session ran (stages, task placement, bytes, memory)."""
        return self._engine.jobs

    def defaultParallelism(self) -> int:
        v = self.conf.get("spark.default.parallelism") or self.conf.get("chukonu.workers")
        if v:
            return int(v)
        master = self.conf.get("spark.master", "local[*]")
        if master.startswith("ray") or self.conf.get("chukonu.superfs.address") or \
                self.conf.get("chukonu.workers.dataServers"):
            return self._engine.default_parallelism
        return _workers_from_master(master)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._engine.close()
        with _lock:
            if SparkSession._active is self:
                SparkSession._active = None

    def __enter__(self) -> "SparkSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ----------------------------------------------------------- DataFrames

    def range(self, start: int, end: int | None = None, step: int = 1, numPartitions: int | None = None) -> DataFrame:
        if end is None:
            start, end = 0, start
        n = numPartitions or self.defaultParallelism()
        return DataFrame(P.Range(start, end, step, n), self)

    def createDataFrame(self, data: Any, schema: Any = None, samplingRatio: float | None = None,
                        verifySchema: bool = True) -> DataFrame:
        from chukonu.rdd import RDD
        if isinstance(data, RDD):
            return self._from_rdd(data, schema)
        table = self._to_table(data, schema)
        n = max(1, min(self.defaultParallelism(), table.num_rows or 1))
        parts = [table.slice(table.num_rows * i // n, table.num_rows * (i + 1) // n - table.num_rows * i // n)
                 for i in range(n)]
        return DataFrame(P.LocalRelation(parts, table.schema), self)

    def _to_table(self, data: Any, schema: Any) -> pa.Table:
        names: list[str] | None = None
        arrow: pa.Schema | None = None
        single: DataType | None = None
        if isinstance(schema, (list, tuple)):
            names = list(schema)
        elif isinstance(schema, StructType):
            arrow = schema.to_arrow_schema()
        elif isinstance(schema, str):
            parsed = parse_schema(schema) if ("," in schema or ":" in schema or " " in schema.strip()) else None
            if parsed is not None and parsed.fields:
                arrow = parsed.to_arrow_schema()
            else:
                single = to_data_type(schema)
        elif isinstance(schema, DataType):
            single = schema
        elif isinstance(schema, pa.Schema):
            arrow = schema
        if isinstance(data, pa.Table):
            table = data
        elif _is_pandas(data):
            table = pa.Table.from_pandas(data, preserve_index=False)
        else:
            rows = list(data) if not isinstance(data, list) else data
            if single is not None:
                arrow = pa.schema([pa.field("value", single.to_arrow())])
                rows = [(r,) for r in rows]
            return rows_to_table(rows, names, arrow)
        if names is not None:
            table = table.rename_columns(names)
        if arrow is not None:
            table = table.rename_columns(arrow.names).cast(arrow)
        strings = [pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f for f in table.schema]
        return table.cast(pa.schema(strings))

    def _from_rdd(self, rdd: Any, schema: Any) -> DataFrame:
        if schema is None or isinstance(schema, (list, tuple)):
            sample = rdd.take(100)
            inferred = rows_to_table(sample, list(schema) if schema else None, None).schema
            arrow = inferred
        else:
            arrow = arrow_schema(schema)
        return DataFrame(P.RowsToFrame(rdd._plan, arrow), self)

    # ------------------------------------------------------------------ SQL

    def sql(self, sqlQuery: str, args: Any = None, **kwargs: Any) -> DataFrame:
        """A SELECT over temp views (sqlglot's Spark dialect, translated into chukonu's plan)."""
        if args or kwargs:
            raise unsupported("SparkSession.sql with parameters", "format the values into the query")
        from chukonu.sql.sqlquery import run_sql
        return run_sql(self, sqlQuery)

    def table(self, tableName: str) -> DataFrame:
        return self._catalog.lookup(tableName)

    @property
    def catalog(self) -> Any:
        return self._catalog

    # ----------------------------------------------------------- unsupported

    @property
    def udf(self) -> Any:
        raise unsupported("SparkSession.udf.register (SQL functions)", "call the udf object on Columns")

    @property
    def readStream(self) -> Any:
        raise unsupported("SparkSession.readStream (streaming)")


def _is_pandas(x: Any) -> bool:
    if not type(x).__module__.startswith("pandas"):
        return False   # do not import pandas (50 MB) to learn that a list is not a pandas.DataFrame
    import pandas as pd
    return isinstance(x, pd.DataFrame)
