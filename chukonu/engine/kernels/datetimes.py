"""Date and time kernels: fields, arithmetic, truncation, conversion, epoch seconds.

Dates are Arrow ``date32``, timestamps microseconds in UTC (chukonu's
session time zone). Arguments are coerced as Spark coerces them: a string
where a date is expected is cast to a date (``"2024-03-01 10:00"`` too), a
timestamp to its date. Invalid dates (``make_date(2023, 2, 30)``) are null,
Spark's non-ANSI result.
"""
from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import as_array
from chukonu.engine.kernels import kernel
from chukonu.engine.kernels.datetime_fmt import (TS, _DAYS, _MONTHS, format_timestamps, parse_dates,
                                                 parse_timestamps, to_date_array, to_timestamp_array)
from chukonu.engine.kernels.fallback import per_row, scalar_value, string_array

_EPOCH = dt.date(1970, 1, 1)


def _d(v: Any, n: int) -> pa.Array:
    return to_date_array(as_array(v, n))


def _t(v: Any, n: int) -> pa.Array:
    return to_timestamp_array(as_array(v, n))


def _days(a: pa.Array) -> np.ndarray:
    return a.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)


def _mask(*arrays: pa.Array) -> np.ndarray:
    m = np.zeros(len(arrays[0]), dtype=bool)
    for a in arrays:
        m |= a.is_null().to_numpy(zero_copy_only=False)
    return m


def _date_from_days(days: np.ndarray, mask: np.ndarray) -> pa.Array:
    return pa.array(days.astype(np.int32), type=pa.int32(), mask=mask).cast(pa.date32())


def _field(name: str, fn: Any, on_date: bool = True) -> None:
    def run(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
        a = as_array(v[0], n)
        src = _d(a, n) if on_date and not pa.types.is_timestamp(a.type) else _t(a, n)
        return fn(src).cast(pa.int32())
    kernel(name)(run)


_field("year", pc.year)
_field("month", pc.month)
_field("dayofmonth", pc.day)
_field("dayofyear", pc.day_of_year)
_field("quarter", pc.quarter)
_field("weekofyear", pc.iso_week)
_field("dayofweek", lambda a: pc.day_of_week(a, count_from_zero=False, week_start=7))
_field("weekday", pc.day_of_week)
_field("hour", pc.hour, on_date=False)
_field("minute", pc.minute, on_date=False)
_field("second", pc.second, on_date=False)


@kernel("dayname")
def dayname(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pa.array(_DAYS, pa.string()).take(pc.day_of_week(_d(v[0], n)))


@kernel("monthname")
def monthname(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pa.array(_MONTHS, pa.string()).take(pc.subtract(pc.month(_d(v[0], n)), 1))


@kernel("to_date", lambda a, o: f"to_date({a[0]})" if o.get("format") is None else f"to_date({a[0]}, {o['format']})")
def to_date(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    fmt = o.get("format")
    if fmt is None:
        return to_date_array(a)
    return parse_timestamps(string_array(a, n), fmt).cast(pa.date32())


@kernel("to_timestamp", lambda a, o: f"to_timestamp({a[0]})" if o.get("format") is None
        else f"to_timestamp({a[0]}, {o['format']})")
def to_timestamp(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    fmt = o.get("format")
    if fmt is None:
        return to_timestamp_array(a)
    return parse_timestamps(string_array(a, n), fmt)


@kernel("date_format", lambda a, o: f"date_format({a[0]}, {o['format']})")
def date_format(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return format_timestamps(_t(v[0], n), o["format"])


@kernel("date_add", lambda a, o: f"date_add({a[0]}, {a[1]})")
def date_add(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    d = _d(v[0], n)
    k = as_array(v[1], n).cast(pa.int64())
    return _date_from_days(_days(d) + k.fill_null(0).to_numpy(zero_copy_only=False), _mask(d, k))


@kernel("date_sub", lambda a, o: f"date_sub({a[0]}, {a[1]})")
def date_sub(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    d = _d(v[0], n)
    k = as_array(v[1], n).cast(pa.int64())
    return _date_from_days(_days(d) - k.fill_null(0).to_numpy(zero_copy_only=False), _mask(d, k))


@kernel("datediff", lambda a, o: f"datediff({a[0]}, {a[1]})")
def datediff(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    end, start = _d(v[0], n), _d(v[1], n)
    return pa.array((_days(end) - _days(start)).astype(np.int32), mask=_mask(end, start))


def _ymd(d: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(f(d).fill_null(1).to_numpy(zero_copy_only=False).astype(np.int64)  # type: ignore[return-value]
                 for f in (pc.year, pc.month, pc.day))


def _month_days(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    base = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[m]
    return base + ((m == 2) & leap)


def _days_from_ymd(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    s = np.char.add(np.char.add(np.char.zfill(y.astype(str), 4), "-"), np.char.zfill(m.astype(str), 2))
    first = np.array(s, dtype="datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return first + d - 1


@kernel("add_months", lambda a, o: f"add_months({a[0]}, {a[1]})")
def add_months(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    d = _d(v[0], n)
    k = as_array(v[1], n).cast(pa.int64())
    y, m, day = _ymd(d)
    total = y * 12 + (m - 1) + k.fill_null(0).to_numpy(zero_copy_only=False)
    ny, nm = total // 12, total % 12 + 1
    nd = np.minimum(day, _month_days(ny, nm))
    if len(ny) == 0:
        return pa.array([], pa.date32())
    return _date_from_days(_days_from_ymd(ny, nm, nd), _mask(d, k))


@kernel("last_day")
def last_day(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    d = _d(v[0], n)
    y, m, _ = _ymd(d)
    if len(y) == 0:
        return pa.array([], pa.date32())
    return _date_from_days(_days_from_ymd(y, m, _month_days(y, m)), _mask(d))


_DOW = {"MO": 0, "MON": 0, "MONDAY": 0, "TU": 1, "TUE": 1, "TUESDAY": 1, "WE": 2, "WED": 2, "WEDNESDAY": 2,
        "TH": 3, "THU": 3, "THURSDAY": 3, "FR": 4, "FRI": 4, "FRIDAY": 4, "SA": 5, "SAT": 5, "SATURDAY": 5,
        "SU": 6, "SUN": 6, "SUNDAY": 6}


@kernel("next_day", lambda a, o: f"next_day({a[0]}, {o['day']})")
def next_day(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    d = _d(v[0], n)
    target = _DOW.get(str(o["day"]).upper())
    if target is None:
        return pa.nulls(n, pa.date32())
    days = _days(d)
    dow = (days + 3) % 7     # 1970-01-01 was a Thursday (Monday = 0)
    delta = (target - dow) % 7
    delta = np.where(delta == 0, 7, delta)
    return _date_from_days(days + delta, _mask(d))


def _trunc_days(days: np.ndarray, unit: str) -> np.ndarray | None:
    if unit in ("YEAR", "YYYY", "YY"):
        return days.astype("datetime64[D]").astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
    if unit in ("MONTH", "MON", "MM"):
        return days.astype("datetime64[D]").astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    if unit == "QUARTER":
        months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        return (months - months % 3).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    if unit == "WEEK":
        return days - (days + 3) % 7
    if unit in ("DAY", "DD"):
        return days
    return None


@kernel("trunc", lambda a, o: f"trunc({a[0]}, {o['format']})")
def trunc(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    d = _d(v[0], n)
    out = _trunc_days(_days(d), str(o["format"]).upper())
    if out is None or str(o["format"]).upper() in ("DAY", "DD"):
        return pa.nulls(n, pa.date32())
    return _date_from_days(out, _mask(d))


_MICROS = {"SECOND": 1_000_000, "MINUTE": 60_000_000, "HOUR": 3_600_000_000, "MILLISECOND": 1000,
           "MICROSECOND": 1}


@kernel("date_trunc", lambda a, o: f"date_trunc({o['format']}, {a[0]})")
def date_trunc(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    t = _t(v[0], n)
    unit = str(o["format"]).upper()
    us = t.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    if unit in _MICROS:
        step = _MICROS[unit]
        out = us - us % step
    else:
        days = _trunc_days(us // 86_400_000_000, unit)
        if days is None:
            return pa.nulls(n, TS)
        out = days * 86_400_000_000
    return pa.array(out, pa.int64(), mask=_mask(t)).cast(TS)


@kernel("months_between", lambda a, o: f"months_between({a[0]}, {a[1]}, {str(o.get('round', True)).lower()})")
def months_between(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    t1, t2 = _t(v[0], n), _t(v[1], n)
    d1, d2 = t1.cast(pa.date32()), t2.cast(pa.date32())
    y1, m1, day1 = _ymd(d1)
    y2, m2, day2 = _ymd(d2)
    months = (y1 - y2) * 12 + (m1 - m2)
    last1 = day1 == _month_days(y1, m1)
    last2 = day2 == _month_days(y2, m2)
    # whole seconds of the day, as Spark's monthsBetween drops the microseconds
    s1 = t1.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False) % 86_400_000_000 // 1_000_000
    s2 = t2.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False) % 86_400_000_000 // 1_000_000
    secs = (day1 - day2) * 86400 + (s1 - s2)
    frac = months + secs / (31 * 86400.0)
    out = np.where((day1 == day2) | (last1 & last2), months.astype(np.float64), frac)
    if o.get("round", True):
        out = np.round(out, 8)
    return pa.array(out, pa.float64(), mask=_mask(t1, t2))


@kernel("make_date")
def make_date(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    def one(y: int, m: int, d: int) -> dt.date | None:
        try:
            return dt.date(y, m, d)
        except ValueError:
            return None
    return per_row(one, [as_array(x, n).cast(pa.int64()) for x in v], pa.date32())


@kernel("make_timestamp")
def make_timestamp(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    def one(y: int, mo: int, d: int, h: int, mi: int, s: float) -> dt.datetime | None:
        try:
            whole = int(s)
            return dt.datetime(y, mo, d, h, mi, whole, int(round((s - whole) * 1e6)), tzinfo=dt.timezone.utc)
        except ValueError:
            return None
    arrays = [as_array(x, n).cast(pa.int64()) for x in v[:5]] + [as_array(v[5], n).cast(pa.float64())]
    return per_row(one, arrays, TS)


@kernel("unix_timestamp", lambda a, o: f"unix_timestamp({', '.join(a)}, {o.get('format', 'yyyy-MM-dd HH:mm:ss')})")
def unix_timestamp(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    if not v:
        return pa.scalar(int(o["now"]), pa.int64())
    a = as_array(v[0], n)
    if pa.types.is_string(a.type) or pa.types.is_large_string(a.type):
        t = parse_timestamps(a, o.get("format") or "yyyy-MM-dd HH:mm:ss")
    else:
        t = _t(a, n)
    us = t.cast(pa.int64())
    return pc.divide(pc.subtract(us, pc.if_else(pc.less(us, 0), 999_999, 0)), 1_000_000)


@kernel("from_unixtime", lambda a, o: f"from_unixtime({a[0]}, {o.get('format', 'yyyy-MM-dd HH:mm:ss')})")
def from_unixtime(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    secs = as_array(v[0], n).cast(pa.int64())
    t = pc.multiply(secs, 1_000_000).cast(TS)
    return format_timestamps(t, o.get("format") or "yyyy-MM-dd HH:mm:ss")


def _from_epoch(scale: int) -> Any:
    def run(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
        a = as_array(v[0], n)
        if pa.types.is_floating(a.type):
            x = a.to_numpy(zero_copy_only=False) * scale
            return pa.array(np.nan_to_num(x).astype(np.int64), mask=a.is_null().to_numpy(
                zero_copy_only=False)).cast(TS)
        return pc.multiply(a.cast(pa.int64()), scale).cast(TS)
    return run


kernel("timestamp_seconds")(_from_epoch(1_000_000))
kernel("timestamp_millis")(_from_epoch(1000))
kernel("timestamp_micros")(_from_epoch(1))


def _to_epoch(scale: int) -> Any:
    def run(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
        us = _t(v[0], n).cast(pa.int64())
        if scale == 1:
            return us
        floor = pc.subtract(us, pc.if_else(pc.less(us, 0), scale - 1, 0))
        return pc.divide(floor, scale)
    return run


kernel("unix_seconds")(_to_epoch(1_000_000))
kernel("unix_millis")(_to_epoch(1000))
kernel("unix_micros")(_to_epoch(1))


@kernel("unix_date")
def unix_date(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _d(v[0], n).cast(pa.int32())


@kernel("date_from_unix_date")
def date_from_unix_date(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return as_array(v[0], n).cast(pa.int32()).cast(pa.date32())


@kernel("current_date", lambda a, o: "current_date()")
def current_date(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pa.scalar(dt.datetime.fromtimestamp(o["now"], dt.timezone.utc).date(), pa.date32())


@kernel("current_timestamp", lambda a, o: "current_timestamp()")
def current_timestamp(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pa.scalar(int(o["now"] * 1_000_000), pa.int64()).cast(TS)


def _shift_zone(v: list[Any], n: int, to_utc: bool) -> pa.Array:
    t = _t(v[0], n)
    zone = scalar_value(v[1])
    if zone is None:
        return pa.nulls(n, TS)
    if to_utc:   # the wall time t in ``zone`` -> the UTC instant
        naive = t.cast(pa.timestamp("us"))
        return pc.assume_timezone(naive, zone, ambiguous="earliest", nonexistent="earliest").cast(TS)
    local = pc.local_timestamp(t.cast(pa.timestamp("us", tz=zone)))
    return local.cast(TS)


@kernel("from_utc_timestamp", lambda a, o: f"from_utc_timestamp({a[0]}, {a[1]})")
def from_utc_timestamp(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _shift_zone(v, n, to_utc=False)


@kernel("to_utc_timestamp", lambda a, o: f"to_utc_timestamp({a[0]}, {a[1]})")
def to_utc_timestamp(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _shift_zone(v, n, to_utc=True)


_PARTS = {"YEAR": "year", "Y": "year", "YEARS": "year", "YR": "year", "YRS": "year", "MONTH": "month",
          "MON": "month", "MONS": "month", "MONTHS": "month", "DAY": "dayofmonth", "D": "dayofmonth",
          "DAYS": "dayofmonth", "HOUR": "hour", "H": "hour", "HOURS": "hour", "HR": "hour", "HRS": "hour",
          "MINUTE": "minute", "M": "minute", "MIN": "minute", "MINS": "minute", "MINUTES": "minute",
          "QUARTER": "quarter", "QTR": "quarter", "WEEK": "weekofyear", "W": "weekofyear", "WEEKS": "weekofyear",
          "DOY": "dayofyear", "DOW": "dayofweek", "DAYOFWEEK": "dayofweek", "DOW_ISO": "dow_iso"}


@kernel("date_part", lambda a, o: f"date_part({o['field']}, {a[0]})")
def date_part(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    from chukonu.engine.kernels import KERNELS
    field = str(o["field"]).upper()
    if field in ("SECOND", "S", "SEC", "SECONDS", "SECS"):
        t = _t(v[0], n)
        secs = pc.add(pc.second(t).cast(pa.float64()), pc.divide(pc.add(pc.multiply(pc.millisecond(t), 1000),
                                                                         pc.microsecond(t)).cast(pa.float64()), 1e6))
        return pc.cast(secs, pa.decimal128(8, 6))
    if field == "DOW_ISO":
        return pc.add(pc.day_of_week(_d(v[0], n)), 1).cast(pa.int32())
    name = _PARTS.get(field)
    if name is None:
        raise ValueError(f"[INVALID_EXTRACT_FIELD] Cannot extract {o['field']} from {v[0].type}")
    return KERNELS[name](v, {}, n, ctx)


_UNIT_MICROS = {"MICROSECOND": 1, "MILLISECOND": 1000, "SECOND": 1_000_000, "MINUTE": 60_000_000,
                "HOUR": 3_600_000_000, "DAY": 86_400_000_000, "WEEK": 7 * 86_400_000_000}


@kernel("timestamp_add", lambda a, o: f"timestampadd({o['unit']}, {a[0]}, {a[1]})")
def timestamp_add(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    unit = str(o["unit"]).upper()
    q = as_array(v[0], n).cast(pa.int64())
    t = _t(v[1], n)
    if unit in _UNIT_MICROS:
        return pc.add(t.cast(pa.int64()), pc.multiply(q, _UNIT_MICROS[unit])).cast(TS)
    months = pc.multiply(q, {"MONTH": 1, "QUARTER": 3, "YEAR": 12}[unit])
    d = add_months([t.cast(pa.date32()), months], {}, n, ctx)
    tod = pc.subtract(t.cast(pa.int64()), pc.multiply(t.cast(pa.date32()).cast(pa.int32()).cast(pa.int64()),
                                                     86_400_000_000))
    return pc.add(pc.multiply(d.cast(pa.int32()).cast(pa.int64()), 86_400_000_000), tod).cast(TS)


@kernel("timestamp_diff", lambda a, o: f"timestampdiff({o['unit']}, {a[0]}, {a[1]})")
def timestamp_diff(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    unit = str(o["unit"]).upper()
    t1, t2 = _t(v[0], n), _t(v[1], n)
    if unit in _UNIT_MICROS:
        diff = pc.subtract(t2.cast(pa.int64()), t1.cast(pa.int64()))
        return pc.divide(diff, _UNIT_MICROS[unit])   # truncates toward zero, as Spark's
    mb = months_between([t2, t1], {"round": False}, n, ctx)
    whole = pc.trunc(mb).cast(pa.int64())
    return pc.divide(whole, {"MONTH": 1, "QUARTER": 3, "YEAR": 12}[unit])




def days_in_month(y: int, m: int) -> int:
    return calendar.monthrange(y, m)[1]


__all__ = ["parse_dates", "days_in_month"]
