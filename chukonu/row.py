"""Row: a tuple whose fields can also be read by name, as pyspark.sql.Row.

Two rows are equal when their values are equal (names are not compared),
which is what PySpark does and what lets a test compare rows from chukonu
with rows from Spark.
"""
from __future__ import annotations

from typing import Any


class Row(tuple):
    """``Row(id=1, text="a")``; ``Row("id", "text")(1, "a")``; ``r.id``, ``r["id"]``, ``r[0]``."""

    __fields__: tuple[str, ...]

    def __new__(cls, *args: Any, **kwargs: Any) -> "Row":
        if args and kwargs:
            raise ValueError("Can not use both args and kwargs to create Row")
        if kwargs:
            row = tuple.__new__(cls, kwargs.values())
            row.__fields__ = tuple(kwargs)
            return row
        # Row("a", "b") makes a row "class"; calling it fills in the values
        row = tuple.__new__(cls, args)
        row.__fields__ = ()
        return row

    @classmethod
    def _make(cls, names: tuple[str, ...] | list[str], values: Any) -> "Row":
        row = tuple.__new__(cls, values)
        row.__fields__ = tuple(names)
        return row

    def __call__(self, *values: Any) -> "Row":
        if self.__fields__:
            raise TypeError("a Row with values is not callable")
        if len(values) > len(self):
            raise ValueError(f"Can not create Row with fields {tuple(self)}, expected {len(self)} values "
                             f"but got {values}")
        return Row._make(tuple(self), values)

    def asDict(self, recursive: bool = False) -> dict[str, Any]:
        if not self.__fields__:
            raise TypeError("Cannot convert a Row class into dict")
        if not recursive:
            return dict(zip(self.__fields__, self))
        return {k: _as_plain(v) for k, v in zip(self.__fields__, self)}

    def __getitem__(self, item: Any) -> Any:  # type: ignore[override]
        if isinstance(item, (int, slice)):
            return tuple.__getitem__(self, item)
        try:
            return tuple.__getitem__(self, self.__fields__.index(item))
        except (ValueError, AttributeError):
            raise ValueError(item) from None

    def __getattr__(self, item: str) -> Any:
        if item.startswith("__"):
            raise AttributeError(item)
        try:
            return tuple.__getitem__(self, self.__fields__.index(item))
        except ValueError:
            raise AttributeError(item) from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key != "__fields__":
            raise RuntimeError("Row is read-only")
        object.__setattr__(self, key, value)

    def __contains__(self, item: object) -> bool:
        if self.__fields__:
            return item in self.__fields__
        return tuple.__contains__(self, item)

    def __repr__(self) -> str:
        if self.__fields__:
            return "Row(" + ", ".join(f"{k}={v!r}" for k, v in zip(self.__fields__, self)) + ")"
        return "<Row(" + ", ".join(repr(v) for v in self) + ")>"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Row._make, (self.__fields__, tuple(self)))


def _as_plain(v: Any) -> Any:
    if isinstance(v, Row):
        return v.asDict(True)
    if isinstance(v, list):
        return [_as_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _as_plain(x) for k, x in v.items()}
    return v
