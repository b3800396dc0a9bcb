"""An LMDB environment with group commit, shared by all three daemons.

Durable mode (the default) opens LMDB with sync on: a write transaction is
on disk when it commits. Group commit keeps that affordable: mutations are
queued to one writer thread, which runs every queued mutation inside one
LMDB write transaction (each in a nested child transaction, so one failing
mutation rolls back alone) and commits them with a single fsync. Callers are
answered only after that commit, so an acknowledged mutation survives
``kill -9``.

Async mode turns LMDB's sync off and flushes every ``async_flush_s`` seconds
from a background thread: a crash of the machine (not of the process: LMDB
pages are in the OS page cache) can lose up to that window.

An LMDB write transaction never spans an ``await``: mutation functions are
plain synchronous callables ``fn(txn) -> result`` run on the writer thread.
Reads run inline on the caller's thread: they hit the mmap and take
microseconds, which is cheaper than a thread hop.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import queue
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import lmdb

from superfs.deadlines import call_deadline
from superfs.errors import FsError

log = logging.getLogger(__name__)

T = TypeVar("T")
Mutation = Callable[["lmdb.Transaction[bytes]"], T]

MAX_BATCH = 512
DEFAULT_MAP_SIZE = 1 << 40  # address space only; the file grows as used


class LmdbStore:
    """One LMDB environment, named sub-databases, and a group-commit writer."""

    def __init__(
        self,
        path: str,
        db_names: list[str],
        *,
        durable: bool = True,
        map_size: int = DEFAULT_MAP_SIZE,
        async_flush_s: float = 1.0,
        readahead: bool = False,
    ) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.durable = durable
        self.env = lmdb.open(
            path,
            map_size=map_size,
            max_dbs=len(db_names) + 2,
            sync=durable,
            metasync=durable,
            readahead=readahead,  # off for metadata (random pages), on for chunk bytes
            max_readers=1024,
            lock=True,
        )
        self.dbs = {name: self.env.open_db(name.encode()) for name in db_names}
        self._queue: queue.SimpleQueue[tuple[Callable[[Any], Any], Callable[[bool, Any], None]] | None] = (
            queue.SimpleQueue()
        )
        self._closed = False
        # called on the writer thread after a group commit in which a change failed (or the commit):
        # for copies in memory that were changed inside those transactions (dirserver/intents.py)
        self.after_failed_batch: list[Callable[[], None]] = []
        self.batches = 0
        self.batched_ops = 0
        self._writer = threading.Thread(target=self._write_loop, name=f"lmdb-writer:{path}", daemon=True)
        self._writer.start()
        self._flusher: threading.Thread | None = None
        if not durable:
            self._stop_flush = threading.Event()
            self._flusher = threading.Thread(
                target=self._flush_loop, args=(async_flush_s,), name="lmdb-flusher", daemon=True
            )
            self._flusher.start()

    # ------------------------------------------------------------------ reads

    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction[bytes]]:
        with self.env.begin(write=False, buffers=False) as txn:
            yield txn

    def db(self, name: str) -> Any:
        return self.dbs[name]

    # ----------------------------------------------------------------- writes

    async def write(self, fn: Mutation[T]) -> T:
        """Run ``fn(txn)`` in the next group commit; return its result once durable.

        Called while serving a session call with a deadline (superfs/deadlines.py),
        ``fn`` is not run at all once that deadline has passed: ETIMEDOUT, nothing changed.
        Only the call's first change is held to it: once one is made, the rest follow.
        """
        if self._closed:
            raise FsError(5, "store is closed")
        deadline = call_deadline.get()
        if deadline is not None:
            fn = _before(deadline, fn)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()

        def done(ok: bool, value: Any) -> None:
            loop.call_soon_threadsafe(_settle, fut, ok, value)

        self._queue.put((fn, done))
        result = await fut
        if deadline is not None:
            # the call has made its change: its later steps (cross-server operations) must go on
            call_deadline.set(None)
        return result

    def write_now(self, fn: Mutation[T]) -> T:
        """Synchronous write for start-up, recovery and unit tests."""
        if self._closed:
            raise FsError(5, "store is closed")
        box: list[tuple[bool, Any]] = []
        ev = threading.Event()

        def done(ok: bool, value: Any) -> None:
            box.append((ok, value))
            ev.set()

        self._queue.put((fn, done))
        ev.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(nxt)
            self._run_batch(batch)

    def _run_batch(self, batch: list[tuple[Callable[[Any], Any], Callable[[bool, Any], None]]]) -> None:
        outcomes: list[tuple[Callable[[bool, Any], None], bool, Any]] = []
        try:
            with self.env.begin(write=True) as txn:
                for fn, done in batch:
                    child = self.env.begin(write=True, parent=txn)
                    try:
                        result = fn(child)
                    except lmdb.MapFullError:  # this change alone does not fit; the others may
                        child.abort()
                        outcomes.append((done, False, FsError(errno.ENOSPC, "metadata store is full")))
                    except BaseException as e:  # noqa: BLE001 - reported to the caller
                        child.abort()
                        outcomes.append((done, False, e))
                    else:
                        child.commit()
                        outcomes.append((done, True, result))
            # the with-block committed (and, in durable mode, fsynced)
        except lmdb.MapFullError:
            outcomes = [(done, False, FsError(errno.ENOSPC, "metadata store is full")) for _, done in batch]
        except lmdb.Error as e:
            log.error("LMDB commit failed in %s: %s", self.path, e)
            outcomes = [(done, False, FsError(errno.EIO, f"commit failed: {e}")) for _, done in batch]
        self.batches += 1
        self.batched_ops += len(batch)
        if any(not ok for _, ok, _ in outcomes):
            for hook in self.after_failed_batch:
                try:
                    hook()
                except Exception:  # noqa: BLE001 - a hook must not stop the writer
                    log.exception("after-failed-batch hook %r failed", hook)
        for done, ok, value in outcomes:
            done(ok, value)

    def _flush_loop(self, interval: float) -> None:
        while not self._stop_flush.wait(interval):
            try:
                self.env.sync(True)
            except lmdb.Error as e:  # pragma: no cover - disk trouble
                log.error("async flush failed: %s", e)

    # -------------------------------------------------------------- lifecycle

    def db_bytes(self) -> int:
        """Bytes of the store on disk (allocated, not the sparse map size)."""
        total = 0
        for name in ("data.mdb", "lock.mdb"):
            try:
                total += os.stat(os.path.join(self.path, name)).st_blocks * 512
            except FileNotFoundError:
                pass
        return total

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._writer.join()
        if self._flusher is not None:
            self._stop_flush.set()
            self._flusher.join()
        self.env.sync(True)
        self.env.close()


def _before(deadline: float, fn: Mutation[T]) -> Mutation[T]:
    def checked(txn: lmdb.Transaction[bytes]) -> T:
        if time.monotonic() > deadline:
            raise FsError(errno.ETIMEDOUT, "the caller stopped waiting before this change could be applied")
        return fn(txn)
    return checked


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
