"""Slot files held open between short-circuit reads, and closed once idle.

A client that reads a file sequentially on a data server's host reads its
chunks from the server's slot files (local_reads.py), several at once. With a
fresh descriptor per read and ``POSIX_FADV_WILLNEED``, the kernel read each
4 MiB chunk from disk in 2 MiB pieces (the advice's step), or smaller when
four reads ran at once. Raw reads of one slot file's chunks, 4 threads, caches
dropped, against a local file (which reached the disk in 4 MiB requests, at
2.17 GB/s): fresh descriptors and the advice 0.81 (1-2 MiB requests); one
shared descriptor, no advice 1.0 (3.5-4 MiB requests). The library, five
rounds in turn with a local file: 0.71 of its speed before, 0.80 with a
shared descriptor per slot file and a file's chunks read from one replica
(routing.read_order).

A descriptor is shared only while it names what the data server named
(path, st_dev and st_ino: a replaced file is a new entry), is never closed
while a read uses it, and is closed ``IDLE_CLOSE_S`` after its last use, so
a slot file deleted meanwhile (a data server taken out of the cluster) gives
its space back within seconds, whatever clients are still running.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

IDLE_CLOSE_S = 2.0   # a descriptor unused this long is closed
MAX_OPEN = 64        # at most this many held open; the longest idle go first

Key = tuple[str, int, int]   # path, st_dev, st_ino


@dataclass
class OpenFile:
    fd: int
    users: int = 0
    idle_since: float = 0.0


class OpenFiles:
    """Descriptors by (path, st_dev, st_ino), shared by the threads of one process."""

    def __init__(self, idle_close_s: float = IDLE_CLOSE_S, max_open: int = MAX_OPEN) -> None:
        self.idle_close_s = idle_close_s
        self.max_open = max_open
        self._lock = threading.Lock()
        self._files: dict[Key, OpenFile] = {}
        self._timer: threading.Timer | None = None
        self._closed = False
        self.opened = 0   # descriptors opened (tests look)

    def acquire(self, key: Key, open_fn: Callable[[], int | None]) -> OpenFile | None:
        """The open file for ``key``, opened with ``open_fn`` (a descriptor, or None: not here)
        unless held already. Give it back with :meth:`release`."""
        with self._lock:
            f = self._files.get(key)
            if f is not None:
                f.users += 1
                return f
        fd = open_fn()   # outside the lock: another thread may open it meanwhile, then one is closed
        if fd is None:
            return None
        with self._lock:
            f = self._files.get(key)
            if f is None and not self._closed:
                f = self._files[key] = OpenFile(fd)
                self.opened += 1
                fd = -1
            if f is not None:
                f.users += 1
        if fd >= 0:
            os.close(fd)
        return f

    def release(self, f: OpenFile) -> None:
        with self._lock:
            f.users -= 1
            f.idle_since = time.monotonic()
            doomed = self._sweep_locked(f.idle_since)
            self._arm_locked()
        _close_all(doomed)

    def close(self) -> None:
        """Close every descriptor not in use now; those in use close as their reads end."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
            doomed = self._sweep_locked(float("inf"))
        if timer is not None:
            timer.cancel()
        _close_all(doomed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._files)

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            doomed = self._sweep_locked(time.monotonic())
            self._arm_locked()   # some still open: look again later
        _close_all(doomed)

    def _arm_locked(self) -> None:
        """(under the lock) A sweep ``idle_close_s`` from now, while files are held and none is due."""
        if self._files and self._timer is None and not self._closed:
            self._timer = threading.Timer(self.idle_close_s, self._on_timer)
            self._timer.daemon = True
            self._timer.start()

    def _sweep_locked(self, now: float) -> list[int]:
        """(under the lock) Forget the files idle too long, or past ``max_open``, or all idle ones
        once closed; their descriptors, for the caller to close outside the lock."""
        idle = sorted((f.idle_since, key) for key, f in self._files.items() if f.users == 0)
        excess = max(0, len(self._files) - self.max_open)
        doomed = []
        for i, (since, key) in enumerate(idle):
            if self._closed or i < excess or now - since >= self.idle_close_s:
                doomed.append(self._files.pop(key).fd)
        return doomed


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError as e:  # pragma: no cover - a descriptor we own: only a bug gets here
            log.warning("closing a slot file's descriptor %d failed: %s", fd, e)
