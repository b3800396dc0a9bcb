"""Settling the intent log: finish or undo directory operations a crash or a down shard cut short.

Runs at start-up (in the background: shards may come up later than the dir
server), periodically, and inline before an operation that depends on a
pending intent (see ``Coordinator.settle``). No operator is involved. Every
step repeats a shard call that is idempotent by ino, so settling an intent
twice, or one whose operation had in fact completed, is harmless.

Per operation (the commit points are described in
:mod:`superfs.dirserver.coordinator`):

- mkdir: never committed (the commit drops the intent), so release the reservation.
- rmdir: directory still here -> unseal it everywhere; gone -> release its name.
- rename: moved -> release the source name; not moved -> roll forward
  (or back, if the coordinator had decided to abort).
- exchange: never committed (the commit drops the intent): roll forward,
  or drop it if the file's name changed before it was touched (exchange.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from superfs.dirserver import exchange
from superfs.dirserver.intents import Intent
from superfs.errors import FsError

if TYPE_CHECKING:
    from superfs.dirserver.coordinator import Coordinator

log = logging.getLogger(__name__)

RECOVERY_INTERVAL_S = 5.0   # a look at the intent log when all is well
RETRY_INTERVAL_S = 1.0      # while some intent is stuck on an unreachable shard


async def recover_intent(coord: Coordinator, intent: Intent) -> None:
    """Finish or undo one intent. Raises FsError (and the intent stays) if a shard fails."""
    rename_lock = coord.rename_lock if intent.op in ("renamedir", "exchange") else contextlib.nullcontext()
    exclusive, shared = intent.lock_keys()
    async with rename_lock, coord.locks.hold(exclusive=exclusive, shared=shared):
        current = coord.intents.get(intent.id)
        if current is None:
            return  # its own operation finished it while we waited for the locks
        log.debug("settling intent %d: %s", current.id, current)
        try:
            await _ROLL[current.op](coord, current)
        except FsError:
            if coord.intents.get(current.id) is not None:
                raise
            # else: the rename was aborted and undone; its error was for its caller


async def recover_all(coord: Coordinator) -> int:
    """Try every pending intent once; return how many are still pending."""
    left = 0
    for intent in coord.intents.all():
        try:
            await recover_intent(coord, intent)
        except FsError as e:
            log.debug("intent %d (%s of %d) still pending: %s", intent.id, intent.op, intent.ino, e)
            left += 1
    return left


async def recovery_loop(coord: Coordinator, interval_s: float = RECOVERY_INTERVAL_S,
                        retry_s: float = RETRY_INTERVAL_S) -> None:
    """Settle intents forever: soon after start, then every ``interval_s``."""
    pending = len(coord.intents.all())
    if pending:
        log.info("recovering %d pending directory operations", pending)
    stuck = False
    while True:
        try:
            left = await recover_all(coord)
        except Exception:  # noqa: BLE001 - a bug here must not stop later attempts
            log.exception("recovery pass failed")
            left = 1
        if left and not stuck:
            log.warning("%d directory operations wait for unreachable shards; retrying every %.1fs",
                        left, retry_s)
        elif not left and stuck:
            log.info("all pending directory operations settled")
        stuck = bool(left)
        await asyncio.sleep(retry_s if left else interval_s)


async def _roll_mkdir(coord: Coordinator, i: Intent) -> None:
    if coord.store.get(i.ino) is None:
        await coord.shards.release(i.parent, i.name, i.ino)
    await _drop(coord, i)


async def _roll_rmdir(coord: Coordinator, i: Intent) -> None:
    if coord.store.get(i.ino) is not None:
        await coord.shards.unseal_all(i.ino)
    else:
        await coord.shards.release(i.parent, i.name, i.ino)
    await _drop(coord, i)


async def _roll_rename(coord: Coordinator, i: Intent) -> None:
    d = coord.store.get(i.ino)
    if d is not None and d.parent_ino == i.dst_parent and d.name == i.dst_name:
        await coord.shards.release(i.parent, i.name, i.ino)
        await _drop(coord, i)
        return
    at_source = d is not None and d.parent_ino == i.parent and d.name == i.name
    if i.aborting or not at_source or coord.store.get(i.dst_parent) is None:
        if not i.aborting:
            log.error("rename intent %d: directory %d is no longer where it was; undoing", i.id, i.ino)
        await coord.rename_undo(i)
        return
    await coord.rename_forward(i)


async def _roll_exchange(coord: Coordinator, i: Intent) -> None:
    await exchange.exchange_forward(coord, i)


async def _drop(coord: Coordinator, i: Intent) -> None:
    await coord.store.db.write(lambda txn: coord.intents.drop_txn(txn, i.id))


_ROLL: dict[str, Callable[[Coordinator, Intent], Awaitable[None]]] = {
    "mkdir": _roll_mkdir,
    "rmdir": _roll_rmdir,
    "renamedir": _roll_rename,
    "exchange": _roll_exchange,
}
