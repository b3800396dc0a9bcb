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

Two more test hooks live here, for the same reason (a test must reach a
window that real timing makes rare, without waiting for it):

- ``SUPERFS_PAUSE_AT`` names points of :data:`PAUSE_POINTS` where a process
  *stops* instead of dying: :func:`pause_point` writes
  ``$SUPERFS_PAUSE_DIR/<name>.paused`` and blocks the calling thread until
  ``<name>.resume`` appears there (a writer frozen between pushing its bytes
  and sizing them, while a test runs fsck). Blocking is the point: in the
  client the caller is the event loop thread, so nothing else of that
  process makes progress either, as with SIGSTOP at that exact step.
- ``SUPERFS_TEST_CLOCK_OFFSET_S`` shifts what :func:`wall_ns` answers, so a
  test can start a daemon "an hour later" without waiting an hour.
"""
from __future__ import annotations

import logging
import os
import sys
import time

log = logging.getLogger(__name__)

ENV = "SUPERFS_CRASH_AT"
EXIT_CODE = 137

POINTS = frozenset({
    # shard: a lease holder's batch is committed, its answer not sent; or half applied, not committed
    "shard.batch.after_commit", "shard.batch.mid_apply",
    # client (the mount): a batch's answer arrived, nobody told yet
    "client.batch.after_reply",
    # dir server (coordinator of directory operations)
    "dir.mkdir.after_intent", "dir.mkdir.after_reserve",
    "dir.rmdir.after_intent", "dir.rmdir.after_seal", "dir.rmdir.after_commit",
    "dir.renamedir.after_intent", "dir.renamedir.after_seal_replaced",
    "dir.renamedir.after_reserve", "dir.renamedir.after_commit",
    "dir.exchange.after_intent", "dir.exchange.after_first", "dir.exchange.after_second",
    "dir.exchange.after_commit",
    # file-metadata shards
    "shard.rename.after_intent", "shard.rename.after_remote_link", "shard.rename.after_finish",
    "shard.remote_link.before_commit", "shard.remote_link.after_commit",
    "shard.exchange.after_remote", "shard.exchange.after_finish", "shard.remote_exchange.after_commit",
    "shard.link.after_intent", "shard.link.after_adjust", "shard.adjust_nlink.after_commit",
    "shard.unlink.after_commit", "shard.outbox.after_deliver",
    "shard.seal.after_commit",
    "shard.reclaim.after_delete",
    # data servers
    "data.delete_chunks.after_commit",
    "data.chain_write.mid_payload", "data.chain_write.after_commit",
    # the chunk mover (superfs/rebalance/mover.py): copies made, fence up, layout switched
    "mover.after_copy", "mover.before_switch", "mover.after_switch",
    # partition moves: the dir server after recording each step; the target after adopting the
    # map that lists the move, the source after draining its freeze, the target after committing a
    # page of copied rows, either after adopting the map that flips the partition, a shard after
    # dropping its copy
    "dir.move.after_prepare", "dir.move.after_freeze", "dir.move.after_copy", "dir.move.after_flip",
    "dir.move.after_cleanup",
    "shard.move.after_prepare", "shard.move.after_freeze", "shard.move.after_import",
    "shard.move.after_flip", "shard.move.after_drop",
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


# ------------------------------------------------------------ pause points

PAUSE_ENV = "SUPERFS_PAUSE_AT"
PAUSE_DIR_ENV = "SUPERFS_PAUSE_DIR"
PAUSE_POLL_S = 0.01
PAUSE_MAX_S = 120.0  # a test that forgets to resume never leaves a process behind for good

PAUSE_POINTS = frozenset({
    # client: chunk bytes pushed to the data servers, the file's size not yet committed
    "client.commit_size",
    # client: the shard answered a truncate (and has cut the chunks past the new end)
    "client.truncate.after_setattr",
    # fsck: its first scan is done, the confirming one not begun
    "fsck.after_first_scan",
    # the chunk mover: a file's chunks copied, the old servers not yet fenced
    "mover.after_copy",
})


def _parse_pauses(spec: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, nth = item.partition("@")
        if name not in PAUSE_POINTS:
            raise ValueError(f"{PAUSE_ENV}: unknown pause point {name!r} (known: {', '.join(sorted(PAUSE_POINTS))})")
        armed[name] = int(nth) if nth else 1
    return armed


_PAUSES = _parse_pauses(os.environ.get(PAUSE_ENV, ""))
_paused: dict[str, int] = {}


def pause_point(name: str) -> None:
    """Block here (once, at the armed passage) until the test says resume; see the module docstring."""
    if name not in _PAUSES:
        return
    _paused[name] = _paused.get(name, 0) + 1
    if _paused[name] != _PAUSES[name]:
        return
    where = os.environ.get(PAUSE_DIR_ENV) or "."
    with open(os.path.join(where, f"{name}.paused"), "w") as f:
        f.write(str(os.getpid()))
    sys.stderr.write(f"superfs: paused at {name} (pid {os.getpid()})\n")
    resume = os.path.join(where, f"{name}.resume")
    deadline = time.monotonic() + PAUSE_MAX_S
    while not os.path.exists(resume) and time.monotonic() < deadline:
        time.sleep(PAUSE_POLL_S)


# -------------------------------------------------------------- wall clock

CLOCK_ENV = "SUPERFS_TEST_CLOCK_OFFSET_S"
_CLOCK_OFFSET_NS = int(float(os.environ.get(CLOCK_ENV, "0") or 0) * 1e9)


def wall_ns() -> int:
    """The wall clock in ns, shifted by ``SUPERFS_TEST_CLOCK_OFFSET_S`` (tests only; 0 when unset)."""
    return time.time_ns() + _CLOCK_OFFSET_NS
