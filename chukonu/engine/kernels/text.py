"""More string kernels: positions, pieces, encodings, formatting, distances, URL parts.

Spark's rules kept here: positions are 1-based and 0 means "not found";
``left``/``right``/``substring_index`` count characters; ``format_number``
rounds half-even and groups thousands; ``levenshtein`` counts edits over
characters and, with a threshold, is -1 past it; ``soundex`` leaves a
string that does not start with a letter unchanged.
"""
from __future__ import annotations

import base64
import re
import urllib.parse
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import as_array
from chukonu.engine.kernels import kernel
from chukonu.engine.kernels.fallback import per_row, scalar_value, string_array
from chukonu.engine.kernels.strings import _JAVA_GROUP


@kernel("ascii")
def ascii_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return per_row(lambda s: ord(s[0]) if s else 0, [string_array(v[0], n)], pa.int32())


@kernel("base64")
def base64_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    return per_row(lambda s: base64.b64encode(s.encode() if isinstance(s, str) else bytes(s)).decode(), [a],
                   pa.string())


@kernel("unbase64")
def unbase64(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    def one(s: str) -> bytes | None:
        try:
            return base64.b64decode(s + "=" * (-len(s) % 4))
        except ValueError:
            return None
    return per_row(one, [string_array(v[0], n)], pa.binary())


@kernel("bit_length")
def bit_length(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.multiply(pc.binary_length(as_array(v[0], n)), 8).cast(pa.int32())


@kernel("octet_length")
def octet_length(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.binary_length(as_array(v[0], n)).cast(pa.int32())


@kernel("btrim")
def btrim(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    chars = scalar_value(v[1]) if len(v) > 1 else " "
    if chars is None:
        return pa.nulls(n, pa.string())
    return pc.utf8_trim(string_array(v[0], n), characters=chars)


@kernel("chr")
def chr_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    def one(x: int) -> str:
        return "" if x < 0 else chr(x % 256)
    return per_row(one, [as_array(v[0], n).cast(pa.int64())], pa.string())


@kernel("left", lambda a, o: f"left({a[0]}, {a[1]})")
def left(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    k = scalar_value(v[1])
    return pc.utf8_slice_codeunits(string_array(v[0], n), start=0, stop=max(0, k))


@kernel("right", lambda a, o: f"right({a[0]}, {a[1]})")
def right(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    k = scalar_value(v[1])
    if k <= 0:
        return pc.utf8_slice_codeunits(string_array(v[0], n), start=0, stop=0)
    return pc.utf8_slice_codeunits(string_array(v[0], n), start=-k)


@kernel("locate", lambda a, o: f"locate({o['substr']}, {a[0]}, {o.get('pos', 1)})")
def locate(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    sub, pos = o["substr"], o.get("pos", 1)

    def one(s: str) -> int:
        if pos < 1:
            return 0
        return s.find(sub, pos - 1) + 1
    return per_row(one, [string_array(v[0], n)], pa.int32())


@kernel("overlay", lambda a, o: f"overlay({a[0]}, {a[1]}, {o['pos']}, {o['len']})")
def overlay(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    pos, ln = o["pos"], o["len"]

    def one(s: str, r: str) -> str:
        k = len(r) if ln < 0 else ln
        return s[:pos - 1] + r + s[pos - 1 + k:]
    return per_row(one, [string_array(v[0], n), string_array(v[1], n)], pa.string())


_SOUNDEX = {c: d for d, letters in {"1": "BFPV", "2": "CGJKQSXZ", "3": "DT", "4": "L", "5": "MN", "6": "R"}.items()
            for c in letters}


def soundex_of(s: str) -> str:
    if not s or not ("A" <= s[0].upper() <= "Z"):
        return s
    up = s.upper()
    out = up[0]
    last = _SOUNDEX.get(up[0], "")
    for ch in up[1:]:
        code = _SOUNDEX.get(ch, "")
        if code and code != last:
            out += code
            if len(out) == 4:
                break
        if ch not in "HW":
            last = code
    return (out + "000")[:4]


@kernel("soundex")
def soundex(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return per_row(soundex_of, [string_array(v[0], n)], pa.string())


def levenshtein_of(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = np.arange(len(b) + 1)
    for i, ca in enumerate(a, 1):
        cur = np.empty_like(prev)
        cur[0] = i
        eq = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32) != ord(ca) if b else np.zeros(0, bool)
        sub = prev[:-1] + eq
        ins = prev[1:] + 1
        best = np.minimum(sub, ins)
        for j in range(1, len(b) + 1):   # deletions chain along the row
            c = best[j - 1]
            d = cur[j - 1] + 1
            cur[j] = c if c < d else d
        prev = cur
    return int(prev[-1])


@kernel("levenshtein", lambda a, o: f"levenshtein({a[0]}, {a[1]})" if o.get("threshold") is None
        else f"levenshtein({a[0]}, {a[1]}, {o['threshold']})")
def levenshtein(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    limit = o.get("threshold")

    def one(a: str, b: str) -> int:
        d = levenshtein_of(a, b)
        return -1 if limit is not None and d > limit else d
    return per_row(one, [string_array(v[0], n), string_array(v[1], n)], pa.int32())


@kernel("substring_index", lambda a, o: f"substring_index({a[0]}, {o['delim']}, {o['count']})")
def substring_index(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    delim, count = o["delim"], o["count"]

    def one(s: str) -> str:
        if count == 0 or not delim:
            return ""
        parts = s.split(delim)
        return delim.join(parts[:count]) if count > 0 else delim.join(parts[count:])
    return per_row(one, [string_array(v[0], n)], pa.string())


@kernel("split_part")
def split_part(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    def one(s: str, d: str, k: int) -> str | None:
        if k == 0:
            raise ValueError("[INVALID_INDEX_OF_ZERO] split_part index 0 is invalid")
        parts = s.split(d) if d else [s]
        i = k - 1 if k > 0 else len(parts) + k
        return parts[i] if 0 <= i < len(parts) else ""
    return per_row(one, [string_array(v[0], n), string_array(v[1], n), as_array(v[2], n).cast(pa.int64())],
                   pa.string())


def _rx(pattern: Any) -> re.Pattern:
    return re.compile(str(pattern), re.ASCII)   # Java's \w, \d and \s are ASCII-only


@kernel("regexp_count")
def regexp_count(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    rx = _rx(scalar_value(v[1]))
    return per_row(lambda s: len(rx.findall(s)), [string_array(v[0], n)], pa.int32())


@kernel("regexp_extract_all")
def regexp_extract_all(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    rx = _rx(scalar_value(v[1]))
    idx = scalar_value(v[2]) if len(v) > 2 else 1
    return per_row(lambda s: [m.group(idx) or "" for m in rx.finditer(s)], [string_array(v[0], n)],
                   pa.list_(pa.string()))


@kernel("regexp_substr")
def regexp_substr(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    rx = _rx(scalar_value(v[1]))

    def one(s: str) -> str | None:
        m = rx.search(s)
        return m.group(0) if m else None
    return per_row(one, [string_array(v[0], n)], pa.string())


@kernel("regexp_instr")
def regexp_instr(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    rx = _rx(scalar_value(v[1]))

    def one(s: str) -> int:
        m = rx.search(s)
        return m.start() + 1 if m else 0
    return per_row(one, [string_array(v[0], n)], pa.int32())


@kernel("replace")
def replace(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    search = scalar_value(v[1])
    repl = scalar_value(v[2]) if len(v) > 2 else ""
    if search == "":
        return string_array(v[0], n)
    return pc.replace_substring(string_array(v[0], n), pattern=search, replacement=repl)


@kernel("encode")
def encode(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    cs = _charset(o["charset"])
    return per_row(lambda s: s.encode(cs, errors="replace"), [string_array(v[0], n)], pa.binary())


@kernel("decode")
def decode(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    cs = _charset(o["charset"])
    return per_row(lambda b: bytes(b).decode(cs, errors="replace"), [as_array(v[0], n).cast(pa.binary())],
                   pa.string())


def _charset(name: str) -> str:
    return {"utf-8": "utf-8", "us-ascii": "ascii", "iso-8859-1": "latin-1", "utf-16be": "utf-16-be",
            "utf-16le": "utf-16-le", "utf-16": "utf-16"}.get(name.lower(), name)


@kernel("elt")
def elt(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    idx = as_array(v[0], n).cast(pa.int64()).to_pylist()
    cols = [string_array(x, n).to_pylist() for x in v[1:]]
    return pa.array([cols[i - 1][r] if i is not None and 1 <= i <= len(cols) else None
                     for r, i in enumerate(idx)], type=pa.string())


@kernel("find_in_set")
def find_in_set(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    def one(s: str, lst: str) -> int:
        if "," in s:
            return 0
        parts = lst.split(",")
        return parts.index(s) + 1 if s in parts else 0
    return per_row(one, [string_array(v[0], n), string_array(v[1], n)], pa.int32())


@kernel("format_number", lambda a, o: f"format_number({a[0]}, {o['d']})")
def format_number(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    d = o["d"]
    import decimal

    def one(x: Any) -> str | None:
        if d < 0:
            return None
        # the exact binary value, rounded half-even, as Java's DecimalFormat does
        q = decimal.Decimal(x if isinstance(x, float) else str(x)).quantize(
            decimal.Decimal(1).scaleb(-d), rounding=decimal.ROUND_HALF_EVEN)
        return f"{q:,.{d}f}"
    return per_row(one, [as_array(v[0], n)], pa.string())


_JAVA_FMT = re.compile(r"%(\d+\$)?([-#+ 0,(<]*)?(\d+)?(\.\d+)?([a-zA-Z%])")


def java_format(fmt: str, args: list[Any]) -> str:
    """Java's String.format for the common conversions (%s %d %f %x %e %%, widths, flags, 1$ indexes)."""
    pos = 0

    def sub(m: re.Match) -> str:
        nonlocal pos
        index, flags, width, prec, conv = m.groups()
        if conv == "%":
            return "%"
        if conv == "n":
            return "\n"
        if index:
            val = args[int(index[:-1]) - 1]
        else:
            val = args[pos] if pos < len(args) else None
            pos += 1
        flags = flags or ""
        py = "%" + flags.replace(",", "") + (width or "") + (prec or "")
        if conv in "sS":
            text = "null" if val is None else (str(val).lower() if isinstance(val, bool) else str(val))
            out = (py + "s") % text
            return out.upper() if conv == "S" else out
        if val is None:
            return "null"
        if conv == "d" and "," in flags:
            return format(int(val), ",")
        if conv in "dxXoeEfgG":
            return (py + conv) % val
        return str(val)
    return _JAVA_FMT.sub(sub, fmt)


@kernel("format_string", lambda a, o: f"format_string({o['format']}, {', '.join(a)})")
def format_string(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    cols = [as_array(x, n).to_pylist() for x in v]
    fmt = o["format"]
    return pa.array([java_format(fmt, list(vals)) for vals in zip(*cols)] if cols else [fmt] * n, type=pa.string())


@kernel("url_encode")
def url_encode(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return per_row(lambda s: urllib.parse.quote_plus(s, safe="*"), [string_array(v[0], n)], pa.string())


@kernel("url_decode")
def url_decode(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return per_row(urllib.parse.unquote_plus, [string_array(v[0], n)], pa.string())


@kernel("parse_url")
def parse_url(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    part = scalar_value(v[1])
    key = scalar_value(v[2]) if len(v) > 2 else None

    def one(s: str) -> str | None:
        try:
            u = urllib.parse.urlsplit(s)
        except ValueError:
            return None
        if part == "HOST":
            return u.hostname
        if part == "PATH":
            return u.path
        if part == "QUERY":
            if key is None:
                return u.query or None
            m = re.search(r"(?:^|&)" + re.escape(key) + r"=([^&]*)", u.query)
            return m.group(1) if m else None
        if part == "REF":
            return u.fragment or None
        if part == "PROTOCOL":
            return u.scheme or None
        if part == "FILE":
            return u.path + ("?" + u.query if u.query else "")
        if part == "AUTHORITY":
            return u.netloc or None
        if part == "USERINFO":
            return u.netloc.rsplit("@", 1)[0] if "@" in u.netloc else None
        return None
    return per_row(one, [string_array(v[0], n)], pa.string())


@kernel("mask")
def mask(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    up, low, dig, other = o.get("upper", "X"), o.get("lower", "x"), o.get("digit", "n"), o.get("other")

    def one(s: str) -> str:
        out = []
        for ch in s:
            if ch.isupper() and up is not None:
                out.append(up)
            elif ch.islower() and low is not None:
                out.append(low)
            elif ch.isdigit() and dig is not None:
                out.append(dig)
            elif other is not None and not ch.isalnum():
                out.append(other)
            else:
                out.append(ch)
        return "".join(out)
    return per_row(one, [string_array(v[0], n)], pa.string())


@kernel("quote")
def quote(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return per_row(lambda s: "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'", [string_array(v[0], n)],
                   pa.string())


@kernel("regexp_replace_col")
def regexp_replace_col(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    """regexp_replace whose pattern or replacement is a column: one regex per row."""
    def one(s: str, p: str, r: str) -> str:
        return re.sub(p, _JAVA_GROUP.sub(r"\\\1", r), s)
    return per_row(one, [string_array(x, n) for x in v], pa.string())


@kernel("is_valid_utf8")
def is_valid_utf8(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    if pa.types.is_string(a.type):
        return pc.is_valid(a).cast(pa.bool_()) if a.null_count == 0 else pc.if_else(pc.is_null(a), None, True)

    def one(b: bytes) -> bool:
        try:
            bytes(b).decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False
    return per_row(one, [a], pa.bool_())


@kernel("typeof")
def typeof(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    from chukonu.sql.types import from_arrow
    t = v[0].type
    return pa.scalar(from_arrow(t).simpleString(), pa.string())
