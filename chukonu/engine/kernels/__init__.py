"""The registry of scalar kernels: name -> function over Arrow arrays.

Every kernel has the signature ``kernel(values, options, num_rows, ctx)``:
``values`` are the evaluated arguments (arrays or scalars), ``options`` the
non-column parameters (a regex, a separator). Modules register kernels by
job (operators, strings, arrays, hashes, casts); ``display_name`` gives the
column name Spark would give the call.
"""
from __future__ import annotations

from typing import Any, Callable

Kernel = Callable[[list[Any], dict[str, Any], int, Any], Any]

KERNELS: dict[str, Kernel] = {}
_LABELS: dict[str, Callable[[list[str], dict[str, Any]], str]] = {}


def kernel(name: str, label: Callable[[list[str], dict[str, Any]], str] | None = None) -> Callable[[Kernel], Kernel]:
    def register(fn: Kernel) -> Kernel:
        KERNELS[name] = fn
        if label is not None:
            _LABELS[name] = label
        return fn
    return register


def display_name(fn: str, args: list[str], options: dict[str, Any]) -> str:
    label = _LABELS.get(fn)
    if label is not None:
        return label(args, options)
    shown = list(args) + [_show(v) for k, v in options.items() if not k.startswith("_")]
    return f"{fn}({', '.join(shown)})"


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


# the kernel modules register themselves on import
from chukonu.engine.kernels import (arrays, casts, collections, datetimes, hashes, jsonfns, mathfns,  # noqa: E402,F401
                                    murmur3, operators, session, strings, text)

__all__ = ["KERNELS", "display_name", "kernel"]
