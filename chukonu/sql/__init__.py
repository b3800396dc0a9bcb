"""chukonu.sql: the pyspark.sql API (SparkSession, DataFrame, Column, Row, functions, types).

Change ``from pyspark.sql import SparkSession, functions as F`` to
``from chukonu.sql import SparkSession, functions as F``; the rest of a
preprocessing pipeline stays as it is.
"""
from __future__ import annotations

import chukonu.extra_check  # noqa: F401 - first: without the extra, one line naming it

from chukonu.row import Row
from chukonu.sql import functions, types
from chukonu.sql.column import Column
from chukonu.sql.dataframe import DataFrame
from chukonu.sql.group import GroupedData
from chukonu.sql.readwriter import DataFrameReader, DataFrameWriter
from chukonu.sql.session import SparkSession

__all__ = ["Column", "DataFrame", "DataFrameReader", "DataFrameWriter", "GroupedData", "Row", "SparkSession",
           "functions", "types"]
