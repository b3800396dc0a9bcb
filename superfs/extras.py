"""Optional dependencies: what each extra of the ``superfs`` distribution brings, and saying so.

``pip install superfs`` brings the file system; chukonu's engine, ckpt's
PyTorch adapters, kvserve's numba kernel and the fsspec file system need an
extra (``pip install 'superfs[chukonu]'``). Code that needs one calls
:func:`require` before importing it, so a missing module becomes one
:class:`MissingExtra` naming the extra to install, never a traceback about
a module the user never asked for; command-line entry points turn it into
one line on stderr and exit status 2 (:func:`exit_status`).
"""
from __future__ import annotations

import importlib.util
import sys

# extra -> the modules it installs that the code imports (pyproject.toml's optional-dependencies)
EXTRAS: dict[str, tuple[str, ...]] = {
    "chukonu": ("pyarrow", "pandas", "numba", "cloudpickle", "sqlglot"),
    "torch": ("torch",),
    "kvserve": ("numba",),
    "fsspec": ("fsspec",),
    "ray": ("ray",),
}
EXIT_MISSING = 2


class MissingExtra(ModuleNotFoundError):
    """Modules of an extra are not installed; the message says which extra to install."""

    def __init__(self, extra: str, missing: list[str], what: str) -> None:
        self.extra = extra
        names = ", ".join(missing)
        super().__init__(f"{what} needs {names}, not installed here: pip install 'superfs[{extra}]'",
                         name=missing[0])


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: sys.modules holds None for it (import blocked)
        return False


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtra` unless every module of ``extra`` is installed; ``what`` needs them."""
    missing = [m for m in EXTRAS[extra] if not installed(m)]
    if missing:
        raise MissingExtra(extra, missing, what)


def exit_status(prog: str, e: MissingExtra) -> int:
    """A command's answer to a missing extra: one line on stderr, exit status 2."""
    print(f"{prog}: {e}", file=sys.stderr)
    return EXIT_MISSING
