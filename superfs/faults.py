"""Test-only fault injection: a daemon kills itself at a named point of a multi-server operation.

Crash-consistency tests must stop a daemon *between* two steps of an
operation (after its intent is durable, before the peer is told, ...) and
check that recovery finishes or undoes it. Killing from outside at the right
moment is a race; so every multi-server operation calls
:func:`crash_point` with a stable name between its steps, and a daemon
started with the environment variable ``SUPERFS_CRASH_AT`` naming that point
dies there with ``os._exit(137)`` (what a shell reports for ``kill -9``):
no finally blocks, no flushing, no graceful shutdown, exactly like a crash.

``SUPERFS_CRASH_AT`` holds one or more names separated by commas; a name
may end in ``@N`` to die at its N-th passage instead of the first (for
points that an operation passes more than once). The variable is read once,
at import: when it is unset, :func:`crash_point` is a function that returns
at once, so production pays one call per step and nothing else.

The names in use are listed in :data:`POINTS` so that tests can check they
are exercising real ones; a name not in the list is a typo and is refused
at start-up.
"""
from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

ENV = "SUPERFS_CRASH_AT"
EXIT_CODE = 137

POINTS = frozenset({
    # dir server (coordinator of directory operations)
    "dir.mkdir.after_intent", "dir.mkdir.after_reserve",
    "dir.rmdir.after_intent", "dir.rmdir.after_seal", "dir.rmdir.after_commit",
    "dir.renamedir.after_intent", "dir.renamedir.after_seal_replaced",
    "dir.renamedir.after_reserve", "dir.renamedir.after_commit",
    "dir.exchange.after_intent", "dir.exchange.after_first", "dir.exchange.after_second",
    "dir.exchange.after_commit",
    # file-metadata shards
    "shard.rename.after_intent", "shard.rename.after_remote_link", "shard.rename.after_finish",
    "shard.remote_link.after_commit",
    "shard.exchange.after_remote", "shard.exchange.after_finish", "shard.remote_exchange.after_commit",
    "shard.link.after_intent", "shard.link.after_adjust", "shard.adjust_nlink.after_commit",
    "shard.unlink.after_commit", "shard.outbox.after_deliver",
    "shard.seal.after_commit",
    "shard.reclaim.after_delete",
    # data servers
    "data.delete_chunks.after_commit",
})


def _parse(spec: str) -> dict[str, int]:
    """``"a,b@3"`` -> {"a": 1, "b": 3}: the passage at which to die."""
    armed: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, nth = item.partition("@")
        if name not in POINTS:
            raise ValueError(f"{ENV}: unknown crash point {name!r} (known: {', '.join(sorted(POINTS))})")
        armed[name] = int(nth) if nth else 1
        if armed[name] < 1:
            raise ValueError(f"{ENV}: {item!r}: the passage count starts at 1")
    return armed


_ARMED = _parse(os.environ.get(ENV, ""))
_passed: dict[str, int] = {}


def _crash_point_armed(name: str) -> None:
    if name not in _ARMED:
        return
    _passed[name] = _passed.get(name, 0) + 1
    if _passed[name] < _ARMED[name]:
        return
    # One line that tests (and people reading the log) can find; then die
    # without running anything else, as kill -9 would.
    msg = f"superfs: crash point {name} reached (pid {os.getpid()}): exiting with {EXIT_CODE}\n"
    try:
        sys.stderr.write(msg)
        sys.stderr.flush()
    finally:
        os._exit(EXIT_CODE)


def _crash_point_disarmed(name: str) -> None:
    return None


# Chosen once: with the variable unset there is no lookup at all.
crash_point = _crash_point_armed if _ARMED else _crash_point_disarmed
crash_point.__doc__ = "Die here (os._exit(137)) if ``SUPERFS_CRASH_AT`` names this point."


def armed() -> dict[str, int]:
    """The crash points this process was started with (name -> passage)."""
    return dict(_ARMED)
