"""Temp views and the small part of ``spark.catalog`` that pipelines use.

Views are session-scoped names for DataFrames (``createOrReplaceTempView``);
``global_temp.name`` views live in the same table under their qualified
name. ``spark.sql`` and ``spark.table`` read them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chukonu.errors import AnalysisException

if TYPE_CHECKING:
    from chukonu.sql.dataframe import DataFrame


@dataclass(frozen=True)
class Table:
    name: str
    database: str | None
    description: str | None
    tableType: str
    isTemporary: bool


class Catalog:
    def __init__(self) -> None:
        self._views: dict[str, "DataFrame"] = {}

    def register(self, name: str, df: "DataFrame", replace: bool) -> None:
        key = name.lower()
        if not replace and key in self._views:
            raise AnalysisException(f"[TEMP_TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create the temporary view `{name}` "
                                    f"because it already exists.")
        self._views[key] = df

    def lookup(self, name: str) -> "DataFrame":
        df = self._views.get(name.lower())
        if df is None:
            raise AnalysisException(f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `{name}` cannot be found.")
        return df

    # ------------------------------------------------------ spark.catalog

    def dropTempView(self, viewName: str) -> bool:
        return self._views.pop(viewName.lower(), None) is not None

    def dropGlobalTempView(self, viewName: str) -> bool:
        return self._views.pop(f"global_temp.{viewName}".lower(), None) is not None

    def tableExists(self, tableName: str, dbName: str | None = None) -> bool:
        key = f"{dbName}.{tableName}" if dbName else tableName
        return key.lower() in self._views

    def listTables(self, dbName: str | None = None, pattern: str | None = None) -> list[Table]:
        import fnmatch
        return [Table(n, None, None, "TEMPORARY", True) for n in sorted(self._views)
                if "." not in n and (pattern is None or fnmatch.fnmatch(n, pattern.replace("*", "*")))]

    def clearCache(self) -> None:
        return None

    def cacheTable(self, tableName: str) -> None:
        self.lookup(tableName).cache()

    def isCached(self, tableName: str) -> bool:
        return self.lookup(tableName).is_cached

    def currentDatabase(self) -> str:
        return "default"
