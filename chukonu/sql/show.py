"""``df.show()``: Spark's text table, cell for cell.

Cells are rendered as Spark renders them (``NULL``, ``true``, ``[a, b]``
for arrays, ``{a, 1}`` for structs, Java's double formatting), cut to 20
characters with ``...`` and right-aligned unless ``truncate=False``.
"""
from __future__ import annotations

from typing import Any

from chukonu.engine.kernels.casts import java_double_str
from chukonu.row import Row


def cell(v: Any, top: bool = True) -> str:
    if v is None:
        return "NULL" if top else "NULL"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return java_double_str(v)
    if isinstance(v, Row):
        return "{" + ", ".join(cell(x, False) for x in v) + "}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{cell(k, False)} -> {cell(x, False)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(cell(x, False) for x in v) + "]"
    if isinstance(v, (bytes, bytearray)):
        return "[" + " ".join(f"{b:02X}" for b in v) + "]"
    return str(v)


def show_string(columns: list[str], rows: list[Any], n: int, truncate: Any, vertical: bool) -> str:
    more = len(rows) > n
    rows = rows[:n]
    width = 20 if truncate is True else (int(truncate) if truncate else 0)

    def cut(s: str) -> str:
        if width and len(s) > width:
            return s[:width - 3] + "..." if width >= 4 else s[:width]
        return s

    table = [[cut(c) for c in columns]] + [[cut(cell(v)) for v in r] for r in rows]
    if vertical:
        out = []
        key_w = max((len(c) for c in columns), default=0)
        for i, r in enumerate(table[1:]):
            out.append(f"-RECORD {i}" + "-" * 20)
            out.extend(f" {k.ljust(key_w)} | {v}" for k, v in zip(columns, r))
        if not rows:
            out.append("(0 rows)")
        return "\n".join(out) + "\n"
    widths = [max(3, *(len(r[i]) for r in table)) for i in range(len(columns))]
    sep = "+" + "+".join("-" * w for w in widths) + "+"

    def line(r: list[str]) -> str:
        cells = [(c.rjust(w) if width else c.ljust(w)) for c, w in zip(r, widths)]
        return "|" + "|".join(cells) + "|"

    out = [sep, line(table[0]), sep] + [line(r) for r in table[1:]] + [sep]
    text = "\n".join(out) + "\n"
    if more:
        text += f"only showing top {n} row{'s' if n != 1 else ''}"
    return text
