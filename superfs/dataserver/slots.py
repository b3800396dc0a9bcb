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
crash can leak nothing: a slot written but never committed is free again.

Free slots are *dirty* (their old blocks kept, up to ``reserve_bytes`` per
store) or *clean* (punched: they read as zeros). Dirty ones are handed out
first, because overwriting allocated blocks is what the disk does fastest
(measured here: 3.1 GB/s overwriting with a flush per 4 MiB, against 0.38
GB/s for a fresh file's blocks, 1.5 GB/s for fallocated ones); the rest is
punched, so deleted bytes give their space back. A writer told its slot is
dirty writes every byte it will ever read (gaps as explicit zeros): a
chunk's bytes past its length are never read, so stale bytes never leak.
Bytes about to be written to fresh space are fallocated first.

A freed slot is not handed out again while anyone who might still read it
is at work: readers (and in-place writers) *pin* the current epoch; a slot
released at epoch r is punched and reused only once no pin of an epoch <= r
remains. So a read that found a chunk's old location in its LMDB snapshot
reads the old bytes intact, never another chunk's.

Bulk writes go around the page cache: a piece of a streamed write that is
aligned (4 KiB in memory, in the file and in length) is written with
``O_DIRECT``, straight from the receive buffer to the disk. Filling the page
cache is what a buffered write costs most here: 2.2 CPU-seconds per GiB
into fresh file space, against 0.05 with ``O_DIRECT`` (which also wrote
1.0-1.7 GB/s with a flush every 4-16 MiB, where buffered writes managed
0.27-0.6). Reads stay buffered (see :meth:`SlotFiles.pread_into`), so data
read again comes from the cache. Unaligned heads and tails, and small
writes, are buffered; the kernel keeps the two views of a file coherent.

Durability: :meth:`sync` makes a slot's file durable (``fdatasync``) before
the header pointing at it commits. Every write starts its own writeback at
once (``sync_file_range``), so the flush at commit finds little left to do,
and concurrent writers of one file share one ``fdatasync`` (a flush started
after your write covers it): syncing every 4 MiB write alone ran at 0.30
GB/s here, one flush per 32 MiB at 1.64 GB/s, and starting writeback after
each write lifted a flush per 4 MiB from 0.38 to 1.29 GB/s. In async mode
files are flushed every ``async_flush_s`` by a thread, as the LMDB store is.
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
RESERVE_BYTES = 512 << 20     # freed slots kept allocated (dirty) for reuse, per store
DIRECT_ALIGN = 4096           # O_DIRECT: memory, offset and length in multiples of this
WILLNEED_MIN = 1 << 20        # reads this large announce their range to the kernel first
_NAME = re.compile(r"^s(\d\d)-(\d{5})\.dat$")
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_SYNC_FILE_RANGE_WRITE = 0x02

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.c_long, ctypes.c_uint]


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


def preallocate(fd: int, offset: int, length: int) -> None:
    """Allocate a byte range's blocks now (a no-op where they are; ignored where unsupported)."""
    if length > 0:
        _libc.fallocate(fd, 0, offset, length)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range out now, without waiting for it."""
    _libc.sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


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
                 async_flush_s: float = 1.0, reserve_bytes: int = RESERVE_BYTES) -> None:
        self.directory = directory
        self.durable = durable
        self.slots_per_file = slots_per_file
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        self._fds: dict[tuple[int, int], int] = {}
        self._direct_fds: dict[int, int] = {}   # buffered fd -> the same file opened O_DIRECT
        self.direct = hasattr(os, "O_DIRECT")
        self._syncs: dict[int, _FileSync] = {}
        self.reserve_bytes = reserve_bytes
        self._free: dict[int, list[tuple[int, int]]] = {}   # class -> heap of clean (file, index)
        self._dirty_free: dict[int, list[tuple[int, int]]] = {}  # class -> heap of dirty (file, index)
        self._dirty_bytes = 0
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

    def path(self, slot: Slot) -> str:
        """The file that holds ``slot``."""
        return self._path(slot.size_log2, slot.file_no)

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
                keep = max(0, min(len(free), (self.reserve_bytes - self._dirty_bytes) >> c))
                dirty, clean = free[:keep], free[keep:]
                self._dirty_bytes += len(dirty) << c
                heapq.heapify(dirty)
                self._dirty_free[c] = dirty
                self._free[c] = clean
                for (fc, f), fd in list(self._fds.items()):
                    if fc != c:
                        continue
                    if f > end_file or (f == end_file and end_index == 0):
                        os.ftruncate(fd, 0)   # past the last used slot: whatever is there was never committed
                    elif f == end_file:
                        os.ftruncate(fd, min(os.fstat(fd).st_size, end_index << c))
                for f, i in clean:
                    punch(self._open(c, f), i << c, 1 << c)
        n_free = sum(len(v) for v in self._free.values())
        log.debug("slot files in %s: %d classes, %d free slots", self.directory, len(self._free), n_free)

    # ------------------------------------------------------------- allocating

    def allocate(self, size_log2: int) -> tuple[Slot, bool]:
        """A slot of the class, and whether it is clean (reads as zeros); dirty ones first."""
        self._recycle()
        with self._lock:
            dirty = self._dirty_free.setdefault(size_log2, [])
            free = self._free.setdefault(size_log2, [])
            clean = True
            if dirty:
                f, i = heapq.heappop(dirty)
                self._dirty_bytes -= 1 << size_log2
                clean = False
            elif free:
                f, i = heapq.heappop(free)
            else:
                f, i = self._end.get(size_log2, (0, 0))
                nxt = (f, i + 1) if i + 1 < self.slots_per_file else (f + 1, 0)
                self._end[size_log2] = nxt
            self._open(size_log2, f)
            return Slot(size_log2, f, i), clean

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
            to_punch = []
            for s in ready:
                if self._dirty_bytes + s.size <= self.reserve_bytes:
                    self._dirty_bytes += s.size  # kept allocated: the next write overwrites it fast
                    heapq.heappush(self._dirty_free.setdefault(s.size_log2, []), (s.file_no, s.index))
                else:
                    to_punch.append(s)
            fds = [self._open(s.size_log2, s.file_no) for s in to_punch]
        for s, fd in zip(to_punch, fds):
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

    def prepare(self, slot: Slot, start: int, end: int) -> None:
        """Bytes [start, end) of the slot are about to be written: allocate their blocks in one go."""
        preallocate(self.fd(slot), slot.offset + start, end - start)

    def _direct_fd(self, fd: int, slot: Slot) -> int | None:
        with self._lock:
            dfd = self._direct_fds.get(fd)
            if dfd is None and self.direct:
                try:
                    dfd = os.open(self._path(slot.size_log2, slot.file_no),
                                  os.O_RDWR | os.O_CLOEXEC | os.O_DIRECT)
                except OSError as e:  # a file system without O_DIRECT (tmpfs): buffered from now on
                    log.info("slot files in %s: no O_DIRECT (%s); writes go through the page cache",
                             self.directory, e.strerror or e)
                    self.direct = False
                    return None
                self._direct_fds[fd] = dfd
            return dfd

    def pwrite(self, slot: Slot, offset: int, data: bytes | bytearray | memoryview, *, aligned: bool = False) -> None:
        """Write ``data`` at ``offset`` of the slot. ``aligned``: ``data`` starts on a 4 KiB
        boundary in memory (an mmap'd receive buffer), so it may go around the page cache."""
        if offset + len(data) > slot.size:
            raise ValueError(f"write of {len(data)} bytes at {offset} overflows slot {slot}")
        fd = self.fd(slot)
        view = memoryview(data).cast("B")
        pos = 0
        at = slot.offset + offset
        if aligned and at % DIRECT_ALIGN == 0 and len(view) >= DIRECT_ALIGN:
            dfd = self._direct_fd(fd, slot)
            if dfd is not None:
                whole = len(view) // DIRECT_ALIGN * DIRECT_ALIGN
                try:
                    while pos < whole:
                        pos += os.pwrite(dfd, view[pos:whole], at + pos)
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise
                    log.info("slot files in %s: O_DIRECT refused (%s); writes go through the page cache",
                             self.directory, e.strerror)
                    self.direct = False
        buffered = pos
        while pos < len(view):
            pos += os.pwrite(fd, view[pos:], at + pos)
        if pos > buffered:
            if self.durable:
                start_writeback(fd, at + buffered, pos - buffered)
            else:
                self._dirty.add(fd)

    def pread_into(self, slot: Slot, offset: int, buf: bytearray | memoryview, *, aligned: bool = False) -> int:
        """Fill ``buf`` from ``offset`` of the slot; the bytes read (short only past the file's end).

        A large read first tells the kernel it will read the whole range (``POSIX_FADV_WILLNEED``),
        so a cold chunk comes off the disk in large requests, not in read-ahead's small steps:
        measured here on 4 MiB reads of a cold file, 0.49 GB/s plain and 1.8 with the hint. Reads
        stay in the page cache: a chunk read again comes from memory (direct reads measured 1.0-1.3
        GB/s cold here, and every read would be cold; ``aligned`` is kept for callers that may use
        them).
        """
        fd = self.fd(slot)
        view = memoryview(buf).cast("B")
        pos = 0
        at = slot.offset + offset
        if len(view) >= WILLNEED_MIN:
            os.posix_fadvise(fd, at, len(view), os.POSIX_FADV_WILLNEED)
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
            for dfd in self._direct_fds.values():
                os.close(dfd)
            self._fds.clear()
            self._direct_fds.clear()
