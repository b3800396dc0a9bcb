"""DataFrame: PySpark's DataFrame API over chukonu's logical plans.

Transformations return a new DataFrame around a new plan node (checked
as it is built); actions (``collect``, ``count``, ``show``, ``toPandas``,
``write``) run a job on the session's engine. Names of PySpark methods that
chukonu does not provide raise NotImplementedError naming the method.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pyarrow as pa

from chukonu.engine import plan as P
from chukonu.engine.expressions import Alias, BoundRef, Cast, ColRef, Expr, Lit, SortOrder, Star, has_aggregate
from chukonu.engine.sinks import CollectSink, CountSink, ForeachSink
from chukonu.errors import AnalysisException, unsupported
from chukonu.row import Row
from chukonu.sql import analysis
from chukonu.sql.column import Column, to_expr
from chukonu.sql.types import StructType, arrow_schema, schema_from_arrow

if TYPE_CHECKING:
    from chukonu.sql.group import GroupedData
    from chukonu.sql.readwriter import DataFrameWriter
    from chukonu.sql.session import SparkSession

log = logging.getLogger(__name__)


def _flatten(cols: tuple[Any, ...]) -> list[Any]:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        return list(cols[0])
    return list(cols)


class DataFrame:
    def __init__(self, plan: P.Plan, session: "SparkSession") -> None:
        self._plan = plan
        self.sparkSession = session

    def _new(self, plan: P.Plan) -> "DataFrame":
        return DataFrame(plan, self.sparkSession)

    @property
    def _engine(self) -> Any:
        return self.sparkSession._engine

    # ----------------------------------------------------------------- schema

    @property
    def schema(self) -> StructType:
        return schema_from_arrow(P.to_arrow_schema(self._plan.schema))

    @property
    def columns(self) -> list[str]:
        return [a.name for a in self._plan.schema]

    @property
    def dtypes(self) -> list[tuple[str, str]]:
        return [(f.name, f.dataType.simpleString()) for f in self.schema.fields]

    def printSchema(self, level: int | None = None) -> None:
        print(self.schema.treeString(), end="")

    def explain(self, extended: Any = None, mode: str | None = None) -> None:
        print("== Physical Plan ==\n" + self._plan.tree())

    def __repr__(self) -> str:
        return "DataFrame[" + ", ".join(f"{n}: {t}" for n, t in self.dtypes) + "]"

    # ----------------------------------------------------------------- access

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, str):
            if item == "*":
                return Column(Star())
            analysis.resolve_column(item, self._plan.schema)
            return Column(ColRef(item, self._plan.id))
        if isinstance(item, int):
            return Column(ColRef(self._plan.schema[item].name, self._plan.id))
        if isinstance(item, Column):
            return self.filter(item)
        if isinstance(item, (list, tuple)):
            return self.select(*item)
        raise TypeError(f"unexpected item type: {type(item).__name__}")

    def __getattr__(self, name: str) -> Column:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _UNSUPPORTED:
            raise unsupported(f"DataFrame.{name}")
        if name in self.columns:
            return Column(ColRef(name, self._plan.id))
        raise AttributeError(f"'DataFrame' object has no attribute '{name}'")

    # --------------------------------------------------------- transformations

    def select(self, *cols: Any) -> "DataFrame":
        exprs = [to_expr(c) for c in _flatten(cols)]
        if exprs and any(has_aggregate(e) for e in exprs):
            return self._new(analysis.aggregate(self._plan, [], exprs))
        return self._new(analysis.project(self._plan, exprs))

    def selectExpr(self, *exprs: str) -> "DataFrame":
        from chukonu.sql.sqlexpr import parse_expression
        return self.select(*[parse_expression(e) for e in _flatten(exprs)])

    def withColumns(self, colsMap: dict[str, Column]) -> "DataFrame":
        names = self.columns
        exprs: list[Expr] = [BoundRef(i, n) for i, n in enumerate(names)]
        for name, c in colsMap.items():
            e = Alias(to_expr(c), (name,))
            if name in names:
                exprs[names.index(name)] = e
            else:
                exprs.append(e)
        return self._new(analysis.project(self._plan, exprs))

    def withColumn(self, colName: str, col: Column) -> "DataFrame":
        if not isinstance(col, Column):
            raise TypeError("col should be Column")
        return self.withColumns({colName: col})

    def withColumnRenamed(self, existing: str, new: str) -> "DataFrame":
        return self.withColumnsRenamed({existing: new})

    def withColumnsRenamed(self, colsMap: dict[str, str]) -> "DataFrame":
        if not any(n in colsMap for n in self.columns):
            return self
        exprs: list[Expr] = []
        for i, n in enumerate(self.columns):
            ref = BoundRef(i, n)
            exprs.append(Alias(ref, (colsMap[n],)) if n in colsMap else ref)
        return self._new(analysis.project(self._plan, exprs))

    def toDF(self, *cols: str) -> "DataFrame":
        if len(cols) != len(self.columns):
            raise AnalysisException(f"toDF: {len(self.columns)} columns but {len(cols)} names given")
        return self._new(analysis.project(self._plan, [Alias(BoundRef(i, n), (cols[i],))
                                                       for i, n in enumerate(self.columns)]))

    def drop(self, *cols: Any) -> "DataFrame":
        drop_idx: set[int] = set()
        for c in cols:
            if isinstance(c, str):
                drop_idx.update(i for i, a in enumerate(self._plan.schema) if a.name == c)
            elif isinstance(c, Column) and isinstance(c.expr, ColRef):
                try:
                    drop_idx.add(analysis.resolve_column(c.expr.column, self._plan.schema, c.expr.plan_id))
                except AnalysisException:
                    pass
            else:
                raise TypeError("drop takes column names or column references")
        if not drop_idx:
            return self
        keep = [BoundRef(i, a.name) for i, a in enumerate(self._plan.schema) if i not in drop_idx]
        return self._new(analysis.project(self._plan, keep))

    def filter(self, condition: Any) -> "DataFrame":
        if isinstance(condition, str):
            from chukonu.sql.sqlexpr import parse_expression
            condition = parse_expression(condition)
        return self._new(analysis.filter_(self._plan, to_expr(condition)))

    where = filter

    def _orders(self, cols: tuple[Any, ...], ascending: Any) -> list[Expr]:
        items = _flatten(cols)
        if isinstance(ascending, (list, tuple)):
            flags = list(ascending)
        else:
            flags = [ascending] * len(items)
        orders: list[Expr] = []
        for c, asc in zip(items, flags):
            e = to_expr(c) if not isinstance(c, int) else ColRef(self.columns[c - 1])
            if not isinstance(e, SortOrder):
                e = SortOrder(e, bool(asc), None)
            orders.append(analysis.bind(e, self._plan.schema))
        return orders

    def orderBy(self, *cols: Any, ascending: Any = True) -> "DataFrame":
        return self._new(P.Sort(self._plan, self._orders(cols, ascending), True))

    sort = orderBy

    def sortWithinPartitions(self, *cols: Any, ascending: Any = True) -> "DataFrame":
        return self._new(P.Sort(self._plan, self._orders(cols, ascending), False))

    def limit(self, num: int) -> "DataFrame":
        return self._new(P.Limit(self._plan, int(num)))

    def distinct(self) -> "DataFrame":
        return self.dropDuplicates()

    def dropDuplicates(self, subset: list[str] | None = None) -> "DataFrame":
        names = self.columns
        if subset is None:
            return self._new(analysis.aggregate(self._plan, [BoundRef(i, n) for i, n in enumerate(names)], []))
        from chukonu.sql import functions as F
        key_idx = [analysis.resolve_column(s, self._plan.schema) for s in subset]
        others = [i for i in range(len(names)) if i not in key_idx]
        agg = analysis.aggregate(self._plan, [BoundRef(i, names[i]) for i in key_idx],
                                 [Alias(F.first(Column(BoundRef(i, names[i]))).expr, (names[i],)) for i in others])
        order = [key_idx.index(i) if i in key_idx else len(key_idx) + others.index(i) for i in range(len(names))]
        return self._new(analysis.project(agg, [BoundRef(j, names[i]) for i, j in enumerate(order)]))

    drop_duplicates = dropDuplicates

    def union(self, other: "DataFrame") -> "DataFrame":
        return self._new(analysis.union([self._plan, other._plan]))

    unionAll = union

    def unionByName(self, other: "DataFrame", allowMissingColumns: bool = False) -> "DataFrame":
        mine, theirs = self.columns, other.columns
        exprs: list[Expr] = []
        for name in mine:
            if name in theirs:
                exprs.append(BoundRef(theirs.index(name), name))
            elif allowMissingColumns:
                t = self._plan.schema[mine.index(name)].type
                exprs.append(Alias(Cast(Lit(None), t), (name,)))
            else:
                raise AnalysisException(f"[UNRESOLVED_COLUMN] Cannot resolve column name \"{name}\" among "
                                        f"({', '.join(theirs)}) in unionByName")
        left = self
        extra = [n for n in theirs if n not in mine]
        if extra:
            if not allowMissingColumns:
                raise AnalysisException(f"[NUM_COLUMNS_MISMATCH] unionByName: columns {extra} are missing on the "
                                        f"left side")
            left = self.withColumns({n: Column(Cast(Lit(None), other._plan.schema[theirs.index(n)].type))
                                     for n in extra})
            exprs += [BoundRef(theirs.index(n), n) for n in extra]
        right = other._new(analysis.project(other._plan, exprs))
        return left._new(analysis.union([left._plan, right._plan]))

    def join(self, other: "DataFrame", on: Any = None, how: str | None = None) -> "DataFrame":
        return self._new(analysis.join(self._plan, other._plan, on, how or "inner"))

    def crossJoin(self, other: "DataFrame") -> "DataFrame":
        return self._new(analysis.join(self._plan, other._plan, None, "cross"))

    def rollup(self, *cols: Any) -> "GroupedData":
        from chukonu.sql.group import GroupedData
        keys = [to_expr(c) for c in _flatten(cols)]
        return GroupedData(self, keys, [keys[:i] for i in range(len(keys), -1, -1)])

    def cube(self, *cols: Any) -> "GroupedData":
        import itertools
        from chukonu.sql.group import GroupedData
        keys = [to_expr(c) for c in _flatten(cols)]
        sets = [[k for k, keep in zip(keys, mask) if keep]
                for mask in itertools.product([True, False], repeat=len(keys))]
        return GroupedData(self, keys, sets)

    def describe(self, *cols: Any) -> "DataFrame":
        from chukonu.sql.stat import describe
        return describe(self, _flatten(cols))

    def summary(self, *statistics: str) -> "DataFrame":
        from chukonu.sql.stat import _DEFAULT, summary
        return summary(self, list(statistics) or _DEFAULT)

    @property
    def stat(self) -> Any:
        from chukonu.sql.stat import DataFrameStatFunctions
        return DataFrameStatFunctions(self)

    def corr(self, col1: str, col2: str, method: str = "pearson") -> Any:
        return self.stat.corr(col1, col2, method)

    def cov(self, col1: str, col2: str) -> Any:
        return self.stat.cov(col1, col2)

    def approxQuantile(self, col: Any, probabilities: list[float], relativeError: float) -> Any:
        return self.stat.approxQuantile(col, probabilities, relativeError)

    # ---------------------------------------------------------- reshaping

    def subtract(self, other: "DataFrame") -> "DataFrame":
        from chukonu.sql.reshape import subtract
        return subtract(self, other)

    def exceptAll(self, other: "DataFrame") -> "DataFrame":
        from chukonu.sql.reshape import except_all
        return except_all(self, other)

    def intersect(self, other: "DataFrame") -> "DataFrame":
        from chukonu.sql.reshape import intersect
        return intersect(self, other)

    def intersectAll(self, other: "DataFrame") -> "DataFrame":
        from chukonu.sql.reshape import intersect_all
        return intersect_all(self, other)

    def unpivot(self, ids: Any, values: Any, variableColumnName: str, valueColumnName: str) -> "DataFrame":
        from chukonu.sql.reshape import unpivot
        return unpivot(self, ids, values, variableColumnName, valueColumnName)

    melt = unpivot

    def crosstab(self, col1: str, col2: str) -> "DataFrame":
        from chukonu.sql.reshape import crosstab
        return crosstab(self, col1, col2)

    def randomSplit(self, weights: list[float], seed: int | None = None) -> list["DataFrame"]:
        from chukonu.sql.reshape import random_split
        return random_split(self, weights, seed)

    def colRegex(self, colName: str) -> Column:
        from chukonu.sql.reshape import col_regex
        return col_regex(self, colName)

    def groupBy(self, *cols: Any) -> "GroupedData":
        from chukonu.sql.group import GroupedData
        return GroupedData(self, [to_expr(c) for c in _flatten(cols)])

    groupby = groupBy

    def agg(self, *exprs: Any) -> "DataFrame":
        return self.groupBy().agg(*exprs)

    def repartition(self, numPartitions: Any = None, *cols: Any) -> "DataFrame":
        if isinstance(numPartitions, (str, Column)):
            cols = (numPartitions,) + cols
            numPartitions = None
        n = int(numPartitions) if numPartitions is not None else self._engine.shuffle_partitions
        keys = [analysis.bind(to_expr(c), self._plan.schema) for c in _flatten(cols)] if cols else []
        # as Spark's adaptive execution: repartition(col) without a count may merge small partitions
        return self._new(P.Repartition(self._plan, n, keys, adaptive=numPartitions is None))

    def coalesce(self, numPartitions: int) -> "DataFrame":
        return self._new(P.Coalesce(self._plan, int(numPartitions)))

    def cache(self) -> "DataFrame":
        if not isinstance(self._plan, P.Cache):
            self._plan = P.Cache(self._plan)
        return self

    def persist(self, storageLevel: Any = None) -> "DataFrame":
        return self.cache()

    def unpersist(self, blocking: bool = False) -> "DataFrame":
        if isinstance(self._plan, P.Cache):
            self._plan.stored = None
        return self

    localCheckpoint = persist
    checkpoint = persist

    @property
    def is_cached(self) -> bool:
        return isinstance(self._plan, P.Cache)

    def hint(self, name: str, *parameters: Any) -> "DataFrame":
        return self._hint(name)

    def _hint(self, name: str) -> "DataFrame":
        return self._new(P.Hint(self._plan, name.lower()))

    def mapInArrow(self, func: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]], schema: Any,
                   barrier: bool = False, profile: Any = None) -> "DataFrame":
        return self._new(P.MapBatches(self._plan, func, arrow_schema(schema), "arrow"))

    def mapInPandas(self, func: Callable[[Iterator[Any]], Iterator[Any]], schema: Any, barrier: bool = False,
                    profile: Any = None) -> "DataFrame":
        return self._new(P.MapBatches(self._plan, func, arrow_schema(schema), "pandas"))

    def transform(self, func: Callable[..., "DataFrame"], *args: Any, **kwargs: Any) -> "DataFrame":
        return func(self, *args, **kwargs)

    def sample(self, withReplacement: Any = None, fraction: Any = None, seed: int | None = None) -> "DataFrame":
        if isinstance(withReplacement, float) and fraction is None:
            withReplacement, fraction = False, withReplacement
        if withReplacement:
            raise unsupported("DataFrame.sample(withReplacement=True)")
        from chukonu.sql import functions as F
        return self.filter(F.rand(seed) < float(fraction))

    def dropna(self, how: str = "any", thresh: int | None = None, subset: Any = None) -> "DataFrame":
        from chukonu.sql import functions as F
        names = [subset] if isinstance(subset, str) else list(subset or self.columns)
        flags = [F.when(F.col(n).isNotNull(), 1).otherwise(0) for n in names]
        total = flags[0]
        for f in flags[1:]:
            total = total + f
        need = thresh if thresh is not None else (len(names) if how == "any" else 1)
        return self.filter(total >= need)

    def fillna(self, value: Any, subset: Any = None) -> "DataFrame":
        from chukonu.sql import functions as F
        values = value if isinstance(value, dict) else {n: value for n in (
            [subset] if isinstance(subset, str) else list(subset or self.columns))}
        changes = {}
        for name, v in values.items():
            t = self._plan.schema[analysis.resolve_column(name, self._plan.schema)].type
            fits = (isinstance(v, bool) and pa.types.is_boolean(t)) or (
                isinstance(v, (int, float)) and not isinstance(v, bool) and (pa.types.is_integer(t) or
                                                                             pa.types.is_floating(t))) or (
                isinstance(v, str) and pa.types.is_string(t))
            if fits:
                changes[name] = F.coalesce(F.col(name), F.lit(v).cast(_spark_name(t)))
        return self.withColumns(changes) if changes else self

    @property
    def na(self) -> "DataFrameNaFunctions":
        return DataFrameNaFunctions(self)

    @property
    def write(self) -> "DataFrameWriter":
        from chukonu.sql.readwriter import DataFrameWriter
        return DataFrameWriter(self)

    @property
    def rdd(self) -> Any:
        from chukonu.rdd import RDD
        return RDD(P.RddFromRows(self._plan), self.sparkSession.sparkContext)

    # ----------------------------------------------------------------- actions

    def _run(self, action: str, plan: P.Plan, sink: Callable[[int], Any]) -> list[Any]:
        from chukonu.engine.planner import Planner
        engine = self._engine
        with engine.job(action):
            parts = Planner(engine).partitions(plan)
            return engine.run_stage(action, parts, sink)

    def toArrow(self) -> pa.Table:
        results = self._run("collect", self._plan, lambda i: CollectSink())
        return pa.Table.from_batches([b for r in results for b in r], schema=P.to_arrow_schema(self._plan.schema))

    def collect(self) -> list[Row]:
        from chukonu.engine.convert import table_to_rows
        return table_to_rows(self.toArrow())

    def toLocalIterator(self, prefetchPartitions: bool = False) -> Iterator[Row]:
        return iter(self.collect())

    def count(self) -> int:
        return sum(self._run("count", self._plan, lambda i: CountSink()))

    def take(self, num: int) -> list[Row]:
        return self.limit(num).collect()

    def head(self, n: int | None = None) -> Any:
        if n is None:
            rows = self.take(1)
            return rows[0] if rows else None
        return self.take(n)

    def first(self) -> Row | None:
        return self.head()

    def isEmpty(self) -> bool:
        return len(self.take(1)) == 0

    def toPandas(self) -> Any:
        return self.toArrow().to_pandas()

    def foreach(self, f: Callable[[Row], None]) -> None:
        self._run("foreach", P.RddFromRows(self._plan), lambda i: ForeachSink(f, False))

    def foreachPartition(self, f: Callable[[Iterator[Row]], None]) -> None:
        self._run("foreachPartition", P.RddFromRows(self._plan), lambda i: ForeachSink(f, True))

    def show(self, n: int = 20, truncate: Any = True, vertical: bool = False) -> None:
        print(self._show_string(n, truncate, vertical))

    def _show_string(self, n: int = 20, truncate: Any = True, vertical: bool = False) -> str:
        from chukonu.sql.show import show_string
        rows = self.take(n + 1)
        return show_string(self.columns, rows, n, truncate, vertical)

    # ------------------------------------------------------------- unsupported

    def createOrReplaceTempView(self, name: str) -> None:
        self.sparkSession._catalog.register(name, self, replace=True)

    def createTempView(self, name: str) -> None:
        self.sparkSession._catalog.register(name, self, replace=False)

    def createGlobalTempView(self, name: str) -> None:
        self.sparkSession._catalog.register(f"global_temp.{name}", self, replace=False)

    def createOrReplaceGlobalTempView(self, name: str) -> None:
        self.sparkSession._catalog.register(f"global_temp.{name}", self, replace=True)

    def alias(self, alias: str) -> "DataFrame":
        """The same rows, whose columns can be named ``alias.column`` (self-joins, SQL)."""
        return self._new(P.SubqueryAlias(self._plan, alias))


def _spark_name(t: pa.DataType) -> str:
    from chukonu.sql.types import from_arrow
    return from_arrow(t).simpleString()


class DataFrameNaFunctions:
    def __init__(self, df: DataFrame) -> None:
        self.df = df

    def drop(self, how: str = "any", thresh: int | None = None, subset: Any = None) -> DataFrame:
        return self.df.dropna(how, thresh, subset)

    def fill(self, value: Any, subset: Any = None) -> DataFrame:
        return self.df.fillna(value, subset)


_UNSUPPORTED = {
    "observe", "freqItems", "withWatermark", "writeStream", "isStreaming", "to_koalas", "pandas_api", "writeTo",
    "mergeInto", "inputFiles", "sameSemantics", "semanticHash", "groupingSets", "lateralJoin", "asTable",
}
