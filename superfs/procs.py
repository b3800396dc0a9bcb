"""Processes: whether one is alive, and how to start a Python module as one.

Shared by the launcher, the FUSE mount, the benchmarks and the companions.
"""
from __future__ import annotations

import os
import sys

# Python 3.10 has no -P: drop sys.path[0] (the working directory) by hand, then run the module
_NO_CWD = ("import runpy, sys; del sys.path[0]; m = sys.argv.pop(1); sys.argv[0] = m; "
           "runpy.run_module(m, run_name='__main__', alter_sys=True)")


def python_module(module: str) -> list[str]:
    """argv running ``python -m module`` with the working directory left off sys.path.

    ``python -m`` puts the working directory first on sys.path, so a directory
    there named like a package (a mountpoint called ``superfs``, a checkout)
    would be imported instead of the installed one; every child interpreter
    must be immune to where its caller stands.
    """
    if sys.version_info >= (3, 11):
        return [sys.executable, "-P", "-m", module]
    return [sys.executable, "-c", _NO_CWD, module]


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (an exited child not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
