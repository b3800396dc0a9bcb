"""Slot files: where a data server keeps chunk bytes, many chunks per large sparse file.

Chunk bytes do not belong in LMDB values (every write copies them into the
map and LMDB keeps a transaction's dirty pages in memory), nor in one file
per chunk (the small-file problem underneath us). They live in fixed-size
*slots* of large files: a slot class per power of two (a 4 MiB chunk in a
4 MiB slot), ``SLOTS_PER_FILE`` slots per file, ``slots/sNN-FFFFF.dat``. The
files are sparse: a slot holding 100 KiB uses 100 KiB of disk, and a freed
slot's blocks are given back at once (``fallocate(PUNCH_HOLE)``), so there
is nothing to compact. Measured alternatives are in bench/README.md.

Which slot holds which chunk is recorded only in the chunk's LMDB header;
the free lists are rebuilt from those headers when the store opens, so a
crash can leak nothing: a slot written but never committed is free again,
and punched (bytes of an unacknowledged write must not leak into a new
chunk, which relies on a fresh slot reading as zeros).

A freed slot is not handed out again while anyone who might still read it
is at work: readers (and in-place writers) *pin* the current epoch; a slot
released at epoch r is punched and reused only once no pin of an epoch <= r
remains. So a read that found a chunk's old location in its LMDB snapshot
reads the old bytes intact, never another chunk's.

Durability: :meth:`sync` makes a slot's file durable (``fdatasync``) before
the header pointing at it commits. Concurrent writers of one file share one
``fdatasync`` (a flush started after your write covers it): syncing every
4 MiB write alone ran at 0.30 GB/s here, one flush per 32 MiB at 1.64 GB/s.
In async mode files are flushed every ``async_flush_s`` by a thread, as the
LMDB store is.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import heapq
import logging
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

log = logging.getLogger(__name__)

SLOTS_PER_FILE = 1024
MIN_SLOT_LOG2 = 16            # 64 KiB: one checksum block
MAX_SLOT_LOG2 = 26            # 64 MiB: the largest chunk
_NAME = re.compile(r"^s(\d\d)-(\d{5})\.dat$")
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


@dataclass(frozen=True, order=True)
class Slot:
    """Slot ``index`` of file ``file_no`` of the class of 2**size_log2-byte slots."""

    size_log2: int
    file_no: int
    index: int

    @property
    def size(self) -> int:
        return 1 << self.size_log2

    @property
    def offset(self) -> int:
        return self.index << self.size_log2


def slot_class(length: int) -> int:
    """The smallest slot class that holds ``length`` bytes."""
    log2 = max(MIN_SLOT_LOG2, (max(length, 1) - 1).bit_length())
    if log2 > MAX_SLOT_LOG2:
        raise ValueError(f"{length} bytes do not fit in a slot")
    return log2


def punch(fd: int, offset: int, length: int) -> None:
    """Give the blocks of a byte range back to the file system; the range reads as zeros."""
    if _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return
    err = ctypes.get_errno()
    if err not in (errno.EOPNOTSUPP, errno.ENOSYS):
        raise OSError(err, os.strerror(err))
    zeros = bytes(min(length, 1 << 20))  # no hole punching here: zeros, the slow way
    pos = offset
    while pos < offset + length:
        pos += os.pwrite(fd, zeros[:offset + length - pos], pos)


class _FileSync:
    """One file's coalesced fdatasync: a flush that starts after your write covers it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.requested = 0
        self.done = 0
        self.running = False

    def sync(self, fd: int) -> None:
        with self.cond:
            self.requested += 1
            mine = self.requested
            while self.done < mine:
                if self.running:
                    self.cond.wait()
                    continue
                self.running = True
                target = self.requested
                self.cond.release()
                try:
                    os.fdatasync(fd)
                finally:
                    self.cond.acquire()
                    self.running = False
                    self.cond.notify_all()
                self.done = max(self.done, target)


class SlotFiles:
    """The slot files of one data server store."""

    def __init__(self, directory: str, *, durable: bool = True, slots_per_file: int = SLOTS_PER_FILE,
                 async_flush_s: float = 1.0) -> None:
        self.directory = directory
        self.durable = durable
        self.slots_per_file = slots_per_file
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        self._fds: dict[tuple[int, int], int] = {}
        self._syncs: dict[int, _FileSync] = {}
        self._free: dict[int, list[tuple[int, int]]] = {}   # class -> heap of (file, index)
        self._end: dict[int, tuple[int, int]] = {}          # class -> first never-used (file, index)
        self._epoch = 0
        self._pins: dict[int, int] = {}                     # epoch -> pins taken at it
        self._quarantine: list[tuple[int, Slot]] = []       # (epoch released at, slot)
        self._dirty: set[int] = set()
        self._closed = False
        self._flusher: threading.Thread | None = None
        if not durable:
            self._stop_flush = threading.Event()
            self._flusher = threading.Thread(target=self._flush_loop, args=(async_flush_s,),
                                             name="slot-flusher", daemon=True)
            self._flusher.start()
        for name in os.listdir(directory):
            m = _NAME.match(name)
            if m:
                self._open(int(m.group(1)), int(m.group(2)))

    # ------------------------------------------------------------------ files

    def _path(self, size_log2: int, file_no: int) -> str:
        return os.path.join(self.directory, f"s{size_log2:02d}-{file_no:05d}.dat")

    def _open(self, size_log2: int, file_no: int) -> int:
        fd = self._fds.get((size_log2, file_no))
        if fd is None:
            fd = os.open(self._path(size_log2, file_no), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fds[(size_log2, file_no)] = fd
            self._syncs[fd] = _FileSync()
        return fd

    def fd(self, slot: Slot) -> int:
        with self._lock:
            return self._open(slot.size_log2, slot.file_no)

    def adopt(self, used: Iterable[Slot]) -> None:
        """Rebuild the free lists from the slots the index references; clear every other one."""
        by_class: dict[int, set[tuple[int, int]]] = {}
        for s in used:
            by_class.setdefault(s.size_log2, set()).add((s.file_no, s.index))
        with self._lock:
            classes = set(by_class) | {c for c, _ in self._fds}
            for c in classes:
                taken = by_class.get(c, set())
                end = max(taken) if taken else (0, -1)
                end_file, end_index = end[0], end[1] + 1
                if end_index >= self.slots_per_file:
                    end_file, end_index = end_file + 1, 0
                self._end[c] = (end_file, end_index)
                free = [(f, i) for f in range(end_file + 1) for i in range(self.slots_per_file)
                        if (f, i) < (end_file, end_index) and (f, i) not in taken]
                heapq.heapify(free)
                self._free[c] = free
                for (fc, f), fd in list(self._fds.items()):
                    if fc != c:
                        continue
                    if f > end_file or (f == end_file and end_index == 0):
                        os.ftruncate(fd, 0)   # past the last used slot: whatever is there was never committed
                    elif f == end_file:
                        os.ftruncate(fd, min(os.fstat(fd).st_size, end_index << c))
                for f, i in free:
                    punch(self._open(c, f), i << c, 1 << c)
        n_free = sum(len(v) for v in self._free.values())
        log.debug("slot files in %s: %d classes, %d free slots", self.directory, len(self._free), n_free)

    # ------------------------------------------------------------- allocating

    def allocate(self, size_log2: int) -> Slot:
        """A slot of the class, reading as zeros."""
        self._recycle()
        with self._lock:
            free = self._free.setdefault(size_log2, [])
            if free:
                f, i = heapq.heappop(free)
            else:
                f, i = self._end.get(size_log2, (0, 0))
                nxt = (f, i + 1) if i + 1 < self.slots_per_file else (f + 1, 0)
                self._end[size_log2] = nxt
            self._open(size_log2, f)
            return Slot(size_log2, f, i)

    def release(self, slot: Slot) -> None:
        """The index no longer references ``slot``: reuse it once nobody may still read it."""
        with self._lock:
            self._quarantine.append((self._epoch, slot))
            self._epoch += 1
        self._recycle()

    def discard(self, slot: Slot) -> None:
        """A slot allocated and never committed (its write failed): free again."""
        self.release(slot)

    def _recycle(self) -> None:
        with self._lock:
            if not self._quarantine:
                return
            oldest_pin = min(self._pins) if self._pins else self._epoch + 1
            ready = [s for r, s in self._quarantine if r < oldest_pin]
            if not ready:
                return
            self._quarantine = [(r, s) for r, s in self._quarantine if r >= oldest_pin]
            fds = [self._open(s.size_log2, s.file_no) for s in ready]
        for s, fd in zip(ready, fds):
            try:
                punch(fd, s.offset, s.size)
            except OSError as e:
                log.error("cannot clear freed slot %s in %s: %s; not reused", s, self.directory, e)
                continue
            with self._lock:
                heapq.heappush(self._free.setdefault(s.size_log2, []), (s.file_no, s.index))

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """While inside, no slot released from now on is reused (read what your snapshot found)."""
        with self._lock:
            epoch = self._epoch
            self._pins[epoch] = self._pins.get(epoch, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                n = self._pins[epoch] - 1
                if n:
                    self._pins[epoch] = n
                else:
                    del self._pins[epoch]
            self._recycle()

    # -------------------------------------------------------------------- I/O

    def pwrite(self, slot: Slot, offset: int, data: bytes | bytearray | memoryview) -> None:
        if offset + len(data) > slot.size:
            raise ValueError(f"write of {len(data)} bytes at {offset} overflows slot {slot}")
        fd = self.fd(slot)
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            pos += os.pwrite(fd, view[pos:], slot.offset + offset + pos)
        if not self.durable:
            self._dirty.add(fd)

    def pread_into(self, slot: Slot, offset: int, buf: bytearray | memoryview) -> int:
        """Fill ``buf`` from ``offset`` of the slot; the bytes read (short only past the file's end)."""
        fd = self.fd(slot)
        view = memoryview(buf)
        pos = 0
        while pos < len(view):
            n = os.preadv(fd, [view[pos:]], slot.offset + offset + pos)
            if n == 0:
                view[pos:] = bytes(len(view) - pos)  # a sparse tail never written: zeros
                break
            pos += n
        return pos

    def sync(self, slot: Slot) -> None:
        """Make what was written to the slot durable (durable mode; a no-op otherwise)."""
        if not self.durable:
            return
        fd = self.fd(slot)
        self._syncs[fd].sync(fd)

    def _flush_loop(self, interval: float) -> None:
        while not self._stop_flush.wait(interval):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for fd in dirty:
            try:
                os.fdatasync(fd)
            except OSError as e:  # pragma: no cover - disk trouble, or closed meanwhile
                log.error("flush of a slot file in %s failed: %s", self.directory, e)

    # -------------------------------------------------------------- lifecycle

    def allocated_bytes(self) -> int:
        with self._lock:
            fds = list(self._fds.values())
        return sum(os.fstat(fd).st_blocks * 512 for fd in fds)

    def file_count(self) -> int:
        with self._lock:
            return len(self._fds)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            self._stop_flush.set()
            self._flusher.join()
        self.flush()
        with self._lock:
            for fd in self._fds.values():
                if self.durable:
                    os.fdatasync(fd)
                os.close(fd)
            self._fds.clear()
