"""chukonu.rdd: SparkContext and RDD, for pipelines written against the RDD API.

An RDD's partitions are lists of Python objects flowing through the same
engine as DataFrames: ``map``/``flatMap``/``filter``/``mapPartitions``
fuse into one pass per partition; ``reduceByKey``/``groupByKey``/
``distinct`` are a shuffle with a map-side combine, hashing keys with a
hash every process agrees on (Python's own ``hash`` of a string differs
between processes).
"""
from __future__ import annotations

import functools
import itertools
import logging
import operator
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from chukonu.engine import plan as P
from chukonu.engine.sinks import CollectSink, CountSink
from chukonu.errors import unsupported
from chukonu.io import writers

if TYPE_CHECKING:
    from chukonu.sql.session import SparkSession

log = logging.getLogger(__name__)


class Broadcast:
    """sc.broadcast(v): the value travels inside each task that uses it."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def unpersist(self, blocking: bool = False) -> None:
        pass

    def destroy(self, blocking: bool = False) -> None:
        pass


class SparkContext:
    def __init__(self, session: "SparkSession") -> None:
        self._session = session

    @property
    def defaultParallelism(self) -> int:
        return self._session.defaultParallelism()

    @property
    def master(self) -> str:
        return self._session.conf.get("spark.master")

    @property
    def appName(self) -> str:
        return self._session.conf.get("spark.app.name")

    def setLogLevel(self, level: str) -> None:
        logging.getLogger("chukonu").setLevel(level.upper() if level.upper() != "ALL" else "DEBUG")

    def parallelize(self, c: Iterable[Any], numSlices: int | None = None) -> "RDD":
        data = list(c)
        n = max(1, numSlices or self.defaultParallelism)
        parts = [data[len(data) * i // n: len(data) * (i + 1) // n] for i in range(n)]
        return RDD(P.RddSource(parts), self)

    def emptyRDD(self) -> "RDD":
        return RDD(P.RddSource([]), self)

    def range(self, start: int, end: int | None = None, step: int = 1, numSlices: int | None = None) -> "RDD":
        if end is None:
            start, end = 0, start
        return self.parallelize(range(start, end, step), numSlices)

    def textFile(self, name: str, minPartitions: int | None = None, use_unicode: bool = True) -> "RDD":
        df = self._session.read.text(name)
        return RDD(P.RddFromRows(df._plan, values_only=True), self)

    def union(self, rdds: list["RDD"]) -> "RDD":
        out = rdds[0]
        for r in rdds[1:]:
            out = out.union(r)
        return out

    def broadcast(self, value: Any) -> Broadcast:
        return Broadcast(value)

    def accumulator(self, value: Any, accum_param: Any = None) -> Any:
        raise unsupported("SparkContext.accumulator")

    def stop(self) -> None:
        self._session.stop()


class RDD:
    def __init__(self, plan: P.Plan, ctx: SparkContext) -> None:
        self._plan = plan
        self.ctx = ctx

    def _map(self, fn: Callable[[int, Iterator[Any]], Iterator[Any]], name: str) -> "RDD":
        return RDD(P.RddMap(self._plan, fn, name), self.ctx)

    @property
    def _engine(self) -> Any:
        return self.ctx._session._engine

    # -------------------------------------------------------- transformations

    def map(self, f: Callable[[Any], Any], preservesPartitioning: bool = False) -> "RDD":
        return self._map(lambda _i, it: map(f, it), "map")

    def flatMap(self, f: Callable[[Any], Iterable[Any]], preservesPartitioning: bool = False) -> "RDD":
        return self._map(lambda _i, it: itertools.chain.from_iterable(map(f, it)), "flatMap")

    def filter(self, f: Callable[[Any], bool]) -> "RDD":
        return self._map(lambda _i, it: filter(f, it), "filter")

    def mapPartitions(self, f: Callable[[Iterator[Any]], Iterable[Any]], preservesPartitioning: bool = False) -> "RDD":
        return self._map(lambda _i, it: iter(f(it)), "mapPartitions")

    def mapPartitionsWithIndex(self, f: Callable[[int, Iterator[Any]], Iterable[Any]],
                               preservesPartitioning: bool = False) -> "RDD":
        return self._map(lambda i, it: iter(f(i, it)), "mapPartitionsWithIndex")

    def mapValues(self, f: Callable[[Any], Any]) -> "RDD":
        return self.map(lambda kv: (kv[0], f(kv[1])))

    def flatMapValues(self, f: Callable[[Any], Iterable[Any]]) -> "RDD":
        return self.flatMap(lambda kv: ((kv[0], v) for v in f(kv[1])))

    def keys(self) -> "RDD":
        return self.map(lambda kv: kv[0])

    def values(self) -> "RDD":
        return self.map(lambda kv: kv[1])

    def keyBy(self, f: Callable[[Any], Any]) -> "RDD":
        return self.map(lambda x: (f(x), x))

    def glom(self) -> "RDD":
        return self._map(lambda _i, it: iter([list(it)]), "glom")

    def union(self, other: "RDD") -> "RDD":
        return RDD(P.RddUnion([self._plan, other._plan]), self.ctx)

    def combineByKey(self, createCombiner: Callable, mergeValue: Callable, mergeCombiners: Callable,
                     numPartitions: int | None = None, partitionFunc: Any = None) -> "RDD":
        if partitionFunc is not None:
            raise unsupported("RDD.combineByKey(partitionFunc=...)")
        n = numPartitions or self.ctx.defaultParallelism
        return RDD(P.RddShuffle(self._plan, n, createCombiner, mergeValue, mergeCombiners, "combineByKey"), self.ctx)

    def reduceByKey(self, func: Callable[[Any, Any], Any], numPartitions: int | None = None,
                    partitionFunc: Any = None) -> "RDD":
        return self.combineByKey(_identity, func, func, numPartitions, partitionFunc)

    def foldByKey(self, zeroValue: Any, func: Callable[[Any, Any], Any], numPartitions: int | None = None) -> "RDD":
        return self.combineByKey(lambda v: func(zeroValue, v), func, func, numPartitions)

    def groupByKey(self, numPartitions: int | None = None, partitionFunc: Any = None) -> "RDD":
        return self.combineByKey(_single, _append, _extend, numPartitions, partitionFunc)

    def groupBy(self, f: Callable[[Any], Any], numPartitions: int | None = None) -> "RDD":
        return self.keyBy(f).groupByKey(numPartitions)

    def distinct(self, numPartitions: int | None = None) -> "RDD":
        return self.map(lambda x: (x, None)).reduceByKey(lambda a, _b: a, numPartitions).keys()

    def partitionBy(self, numPartitions: int, partitionFunc: Any = None) -> "RDD":
        if partitionFunc is not None:
            raise unsupported("RDD.partitionBy(partitionFunc=...)")
        return RDD(P.RddShuffle(self._plan, numPartitions, None, None, None, "partitionBy"), self.ctx)

    def repartition(self, numPartitions: int) -> "RDD":
        keyed = self._map(lambda i, it: ((i * 7919 + j, x) for j, x in enumerate(it)), "repartition")
        return keyed.partitionBy(numPartitions).values()

    def coalesce(self, numPartitions: int, shuffle: bool = False) -> "RDD":
        if shuffle:
            return self.repartition(numPartitions)
        return RDD(P.Coalesce(self._plan, numPartitions), self.ctx)

    def cache(self) -> "RDD":
        return self

    persist = cache

    def unpersist(self, blocking: bool = False) -> "RDD":
        return self

    def toDF(self, schema: Any = None, sampleRatio: float | None = None) -> Any:
        return self.ctx._session.createDataFrame(self, schema)

    # ----------------------------------------------------------------- actions

    def _run(self, action: str, plan: P.Plan, sink: Callable[[int], Any]) -> list[Any]:
        from chukonu.engine.planner import Planner
        engine = self._engine
        with engine.job(action):
            parts = Planner(engine).partitions(plan)
            return engine.run_stage(action, parts, sink)

    def collect(self) -> list[Any]:
        return [x for r in self._run("collect", self._plan, lambda i: CollectSink()) for b in r for x in b]

    def count(self) -> int:
        return sum(self._run("count", self._plan, lambda i: CountSink()))

    def getNumPartitions(self) -> int:
        from chukonu.engine.planner import Planner
        with self._engine.job("getNumPartitions"):
            return len(Planner(self._engine).partitions(self._plan))

    def take(self, num: int) -> list[Any]:
        return self._map(lambda _i, it: itertools.islice(it, num), "take").collect()[:num]

    def first(self) -> Any:
        got = self.take(1)
        if not got:
            raise ValueError("RDD is empty")
        return got[0]

    def isEmpty(self) -> bool:
        return not self.take(1)

    def reduce(self, f: Callable[[Any, Any], Any]) -> Any:
        def part(_i: int, it: Iterator[Any]) -> Iterator[Any]:
            items = list(it)
            return iter([functools.reduce(f, items)] if items else [])
        partials = self._map(part, "reduce").collect()
        if not partials:
            raise ValueError("Can not reduce() empty RDD")
        return functools.reduce(f, partials)

    def fold(self, zeroValue: Any, op: Callable[[Any, Any], Any]) -> Any:
        partials = self._map(lambda _i, it: iter([functools.reduce(op, it, zeroValue)]), "fold").collect()
        return functools.reduce(op, partials, zeroValue)

    def aggregate(self, zeroValue: Any, seqOp: Callable, combOp: Callable) -> Any:
        partials = self._map(lambda _i, it: iter([functools.reduce(seqOp, it, zeroValue)]), "aggregate").collect()
        return functools.reduce(combOp, partials, zeroValue)

    def sum(self) -> Any:
        return self.fold(0, operator.add)

    def max(self, key: Callable | None = None) -> Any:
        return self.reduce(lambda a, b: max(a, b, key=key) if key else max(a, b))

    def min(self, key: Callable | None = None) -> Any:
        return self.reduce(lambda a, b: min(a, b, key=key) if key else min(a, b))

    def mean(self) -> float:
        s, n = self.aggregate((0, 0), lambda acc, x: (acc[0] + x, acc[1] + 1), lambda a, b: (a[0] + b[0], a[1] + b[1]))
        return s / n if n else float("nan")

    def countByKey(self) -> dict[Any, int]:
        return dict(self.map(lambda kv: (kv[0], 1)).reduceByKey(operator.add).collect())

    def countByValue(self) -> dict[Any, int]:
        return dict(self.map(lambda x: (x, 1)).reduceByKey(operator.add).collect())

    def collectAsMap(self) -> dict[Any, Any]:
        return dict(self.collect())

    def foreach(self, f: Callable[[Any], None]) -> None:
        from chukonu.engine.sinks import ForeachSink
        self._run("foreach", self._plan, lambda i: ForeachSink(f, False))

    def foreachPartition(self, f: Callable[[Iterator[Any]], None]) -> None:
        from chukonu.engine.sinks import ForeachSink
        self._run("foreachPartition", self._plan, lambda i: ForeachSink(f, True))

    def saveAsTextFile(self, path: str, compressionCodecClass: str | None = None) -> None:
        if compressionCodecClass:
            raise unsupported("RDD.saveAsTextFile(compressionCodecClass=...)")
        from chukonu.io.fs import resolve
        fs, local = resolve(path)
        url = fs.url(local)
        writers.prepare_output(url, "errorifexists")
        job_id = writers.new_job_id()
        tmp = f"{url}/_temporary/{job_id}"
        written = self._run("saveAsTextFile", self._plan, lambda i: _TextSink(tmp))
        writers.commit(url, job_id, written)

    # ------------------------------------------------------------- unsupported

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise unsupported(f"RDD.{name}")


class _TextSink:
    """saveAsTextFile: one part file of str(element) lines per partition."""

    def __init__(self, tmp_url: str) -> None:
        self.tmp_url = tmp_url

    def consume(self, batches: Iterator[list[Any]], tc: Any) -> list[str]:
        from chukonu.io.fs import join, resolve
        name = f"part-{tc.partition:05d}"
        fs, path = resolve(join(self.tmp_url, name))
        with fs.open_write(path) as f:
            for b in batches:
                tc.rows_out += len(b)
                f.write(("".join(f"{x}\n" for x in b)).encode("utf-8"))
        return [name]


def _identity(v: Any) -> Any:
    return v


def _single(v: Any) -> list[Any]:
    return [v]


def _append(acc: list[Any], v: Any) -> list[Any]:
    acc.append(v)
    return acc


def _extend(a: list[Any], b: list[Any]) -> list[Any]:
    a.extend(b)
    return a
