"""``pyspark.sql.functions`` for chukonu: build Columns; the kernels do the work.

Arguments follow PySpark: a string is a column name, ``lit`` makes a
literal. The functions live in modules by family (core, scalar, dates,
collection, aggregates); every public name is re-exported here. Any other
name PySpark has and chukonu does not raises NotImplementedError naming
the function, as soon as it is looked up.
"""
from __future__ import annotations

from typing import Any

from chukonu.errors import unsupported
from chukonu.sql.functions.aggregates import *  # noqa: F401,F403
from chukonu.sql.functions.collection import *  # noqa: F401,F403
from chukonu.sql.functions.core import *  # noqa: F401,F403
from chukonu.sql.functions.dates import *  # noqa: F401,F403
from chukonu.sql.functions.scalar import *  # noqa: F401,F403
from chukonu.sql.functions.session_fns import *  # noqa: F401,F403
from chukonu.sql.functions import aggregates, collection, core, dates, scalar, session_fns  # noqa: F401

# the family modules' own imports (time, inspect, builtins) are not functions of this module
for _name, _value in list(globals().items()):
    if type(_value).__name__ == "module" and _name not in ("aggregates", "collection", "core", "dates", "scalar",
                                                          "session_fns"):
        del globals()[_name]


def expr(str: str) -> Any:  # noqa: A002 - PySpark's parameter name
    """A Column from a Spark SQL expression string: ``expr("upper(name) AS n")``."""
    from chukonu.sql.sqlexpr import parse_expression
    return parse_expression(str)


def call_function(funcName: str, *cols: Any) -> Any:
    """A function by its SQL name, as ``spark.sql`` would call it."""
    from chukonu.sql.sqlexpr import call_by_name
    return call_by_name(funcName, list(cols))


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(name)
    from chukonu.support import SKIPPED_FUNCTIONS
    raise unsupported(f"pyspark.sql.functions.{name}", SKIPPED_FUNCTIONS.get(name, ""))

