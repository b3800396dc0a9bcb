"""Java date-time patterns (``yyyy-MM-dd HH:mm:ss``), Spark's lenient date/timestamp strings, formatting.

Formatting is vectorised: a pattern is cut into fields and literals, each
field becomes a string column (years, zero-padded months, day names ...)
and the columns are joined row-wise. Parsing tries Arrow's ``strptime`` on
the whole column and falls back to Python's ``datetime.strptime`` only for
the rows Arrow could not read (fractions of seconds, one-digit fields).
Times are read and shown in UTC, chukonu's session time zone.
"""
from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TS = pa.timestamp("us", tz="UTC")
_FIELD = re.compile(r"'([^']*)'|(''|y+|Y+|M+|L+|d+|D+|H+|h+|k+|K+|m+|s+|S+|a+|E+|u+|Q+|q+|Z+|X+|x+|z+|V+|O+|G+|w+)")
_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                "November", "December"]


def tokens(pattern: str) -> list[tuple[str, str]]:
    """A Java pattern as [("lit", text) | ("field", letters)]."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _FIELD.finditer(pattern):
        if m.start() > pos:
            out.append(("lit", pattern[pos:m.start()]))
        if m.group(1) is not None:
            out.append(("lit", m.group(1)))
        elif m.group(2) == "''":
            out.append(("lit", "'"))
        else:
            out.append(("field", m.group(2)))
        pos = m.end()
    if pos < len(pattern):
        out.append(("lit", pattern[pos:]))
    return out


def _pad(a: pa.Array, width: int) -> pa.Array:
    s = a.cast(pa.string())
    return pc.utf8_lpad(s, width=width, padding="0") if width > 1 else s


def _names(idx: pa.Array, names: list[str]) -> pa.Array:
    return pa.array(names, pa.string()).take(idx)


def format_timestamps(ts: pa.Array, pattern: str) -> pa.Array:
    """Each timestamp (UTC, microseconds) shown with a Java pattern."""
    n = len(ts)
    parts: list[pa.Array] = []
    for kind, text in tokens(pattern):
        if kind == "lit":
            parts.append(pa.array([text] * n, pa.string()))
            continue
        c, w = text[0], len(text)
        if c in "yY":
            y = pc.year(ts)
            parts.append(_pad(pc.abs(pc.subtract(y, pc.multiply(pc.divide(y, 100), 100))), 2) if w == 2 else _pad(y, w))
        elif c in "ML":
            m = pc.month(ts)
            if w >= 4:
                parts.append(_names(pc.subtract(m, 1), _MONTH_NAMES))
            elif w == 3:
                parts.append(_names(pc.subtract(m, 1), _MONTHS))
            else:
                parts.append(_pad(m, w))
        elif c == "d":
            parts.append(_pad(pc.day(ts), w))
        elif c == "D":
            parts.append(_pad(pc.day_of_year(ts), w))
        elif c == "H":
            parts.append(_pad(pc.hour(ts), w))
        elif c == "k":
            h = pc.hour(ts)
            parts.append(_pad(pc.if_else(pc.equal(h, 0), 24, h), w))
        elif c == "h":
            h = pc.hour(ts)
            h12 = pc.subtract(h, pc.multiply(pc.divide(h, 12), 12))
            parts.append(_pad(pc.if_else(pc.equal(h12, 0), 12, h12), w))
        elif c == "K":
            h = pc.hour(ts)
            parts.append(_pad(pc.subtract(h, pc.multiply(pc.divide(h, 12), 12)), w))
        elif c == "m":
            parts.append(_pad(pc.minute(ts), w))
        elif c == "s":
            parts.append(_pad(pc.second(ts), w))
        elif c == "S":
            micros = pc.add(pc.multiply(pc.millisecond(ts), 1000), pc.microsecond(ts))
            parts.append(pc.utf8_slice_codeunits(_pad(micros, 6), 0, w) if w <= 6 else
                         pc.binary_join_element_wise(_pad(micros, 6), pa.array(["0" * (w - 6)] * n), ""))
        elif c == "a":
            parts.append(pc.if_else(pc.less(pc.hour(ts), 12), "AM", "PM"))
        elif c in "Eu":
            dow = pc.day_of_week(ts)   # Monday = 0
            parts.append(_names(dow, _DAY_NAMES if w >= 4 else _DAYS) if c == "E" else _pad(pc.add(dow, 1), w))
        elif c in "Qq":
            parts.append(_pad(pc.quarter(ts), w))
        elif c in "Zx":
            parts.append(pa.array(["+0000" if w < 4 else "GMT"] * n if c == "Z" else ["+00"] * n, pa.string()))
        elif c == "X":
            parts.append(pa.array(["Z"] * n, pa.string()))
        elif c in "zVO":
            parts.append(pa.array(["UTC"] * n, pa.string()))
        elif c == "G":
            parts.append(pa.array(["AD"] * n, pa.string()))
        elif c == "w":
            parts.append(_pad(pc.iso_week(ts), w))
        else:
            raise ValueError(f"unsupported date-time pattern letter {c!r} in {pattern!r}")
    if not parts:
        return pa.array([""] * n, pa.string())
    out = pc.binary_join_element_wise(*parts, "")
    return pc.if_else(pc.is_null(ts), pa.scalar(None, pa.string()), out)


_STRP = {"yyyy": "%Y", "yy": "%y", "y": "%Y", "MM": "%m", "M": "%m", "MMM": "%b", "MMMM": "%B", "dd": "%d",
         "d": "%d", "HH": "%H", "H": "%H", "hh": "%I", "h": "%I", "mm": "%M", "m": "%M", "ss": "%S", "s": "%S",
         "a": "%p", "DDD": "%j", "D": "%j", "EEE": "%a", "E": "%a", "EEEE": "%A", "XXX": "%z", "Z": "%z",
         "X": "%z", "xx": "%z"}


def strptime_format(pattern: str) -> tuple[str, bool]:
    """(strptime format, has fraction of second) for a Java pattern."""
    out = []
    frac = False
    for kind, text in tokens(pattern):
        if kind == "lit":
            out.append(text.replace("%", "%%"))
        elif text[0] == "S":
            out.append("%f")
            frac = True
        elif text in _STRP:
            out.append(_STRP[text])
        else:
            raise ValueError(f"unsupported date-time pattern {text!r} in {pattern!r}")
    return "".join(out), frac


def parse_timestamps(s: pa.Array, pattern: str) -> pa.Array:
    """Strings read with a Java pattern as UTC timestamps; what does not parse is null."""
    fmt, frac = strptime_format(pattern)
    out: pa.Array | None = None
    if not frac and "%z" not in fmt:
        try:
            out = pc.strptime(s, format=fmt, unit="us", error_is_null=True).cast(TS)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out = None
    if out is not None and out.null_count == s.null_count:
        return out
    values = s.to_pylist()
    got = out.to_pylist() if out is not None else [None] * len(values)
    res = []
    for v, g in zip(values, got):
        if g is not None or v is None:
            res.append(g)
            continue
        try:
            t = dt.datetime.strptime(v, fmt)
            res.append(t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc))
        except ValueError:
            res.append(None)
    return pa.array(res, type=TS)


_DATE = re.compile(r"^\s*([+-]?\d{4,6})(?:-(\d{1,2})(?:-(\d{1,2})(?:[T ].*)?)?)?\s*$")
_TS = re.compile(r"^\s*([+-]?\d{4,6})(?:-(\d{1,2})(?:-(\d{1,2})(?:[T ](\d{1,2})(?::(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,9}))?)?)?"
                 r"\s*(Z|[+-]\d{1,2}(?::?\d{2})?|UTC|GMT)?)?)?)?\s*$", re.IGNORECASE)


def parse_dates(s: pa.Array) -> pa.Array:
    """Spark's cast of strings to dates: yyyy, yyyy-[m]m, yyyy-[m]m-[d]d, optionally followed by a time."""
    try:
        fast = pc.cast(s, pa.date32())
        return fast
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out: list[dt.date | None] = []
    for v in s.to_pylist():
        m = _DATE.match(v) if v is not None else None
        if m is None:
            out.append(None)
            continue
        try:
            out.append(dt.date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)))
        except ValueError:
            out.append(None)
    return pa.array(out, pa.date32())


def parse_timestamp_strings(s: pa.Array) -> pa.Array:
    """Spark's cast of strings to timestamps (no pattern): ISO-like text, zone optional (UTC by default)."""
    out: list[dt.datetime | None] = []
    for v in s.to_pylist():
        m = _TS.match(v) if v is not None else None
        if m is None:
            out.append(None)
            continue
        y, mo, d, h, mi, sec, frac, zone = m.groups()
        try:
            t = dt.datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(sec or 0),
                            int((frac or "0")[:6].ljust(6, "0")), tzinfo=dt.timezone.utc)
        except ValueError:
            out.append(None)
            continue
        if zone and zone.upper() not in ("Z", "UTC", "GMT"):
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            hours, mins = int(digits[:2] if len(digits) > 2 else digits), int(digits[2:] or 0) if len(digits) > 2 else 0
            t -= sign * dt.timedelta(hours=hours, minutes=mins)
        out.append(t)
    return pa.array(out, TS)


def to_timestamp_array(a: pa.Array) -> pa.Array:
    """Any date-like column as UTC microsecond timestamps (strings parsed as Spark casts them)."""
    t = a.type
    if pa.types.is_timestamp(t):
        if t.tz is None:   # a wall-clock time: read in the session's zone, UTC
            return a.cast(pa.timestamp("us")).cast(TS)
        return a if t == TS else a.cast(TS)
    if pa.types.is_date(t):
        return a.cast(pa.timestamp("us")).cast(TS)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return parse_timestamp_strings(a)
    if pa.types.is_null(t):
        return pa.nulls(len(a), TS)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        secs = a.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return pa.array((secs * 1e6).astype(np.int64), type=pa.int64(), mask=a.is_null().to_numpy(
            zero_copy_only=False)).cast(TS)
    raise TypeError(f"cannot use {t} as a timestamp")


def to_date_array(a: pa.Array) -> pa.Array:
    """Any date-like column as dates (timestamps truncated in UTC, strings parsed as Spark casts them)."""
    t = a.type
    if pa.types.is_date32(t):
        return a
    if pa.types.is_date(t):
        return a.cast(pa.date32())
    if pa.types.is_timestamp(t):
        return to_timestamp_array(a).cast(pa.date32()) if t.tz is None else a.cast(pa.date32())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return parse_dates(a)
    if pa.types.is_null(t):
        return pa.nulls(len(a), pa.date32())
    raise TypeError(f"cannot use {t} as a date")
