"""Arena: the DRAM tier's bytes, one shared-memory file mapped by daemon and clients.

The daemon creates an anonymous memory file of the tier's capacity (a
memfd, or where the host would give that only 4 KiB pages, an unlinked file
on a private huge-page tmpfs: kvserve.huge_shmem); pages cost memory only
once written. A client on the same host opens it
through ``/proc/<daemon pid>/fd/<fd>`` and maps it too, so bulk bytes move
with one memcpy between the arena and the caller's buffer instead of through
gRPC messages. Being anonymous, the file disappears with the daemon: a crash
leaks nothing into /dev/shm.

The first page holds a random token: a client checks it after mapping, so a
recycled pid or a different mount namespace can never make it read the wrong
memory (it falls back to gRPC instead).

Extents here are byte ranges ``(offset, length)``; an object's extents, in
order, hold exactly its bytes.
"""
from __future__ import annotations

import logging
import mmap
import os
import secrets
import socket
from typing import Any, Sequence

import numpy as np
import xxhash

from kvserve.errors import ShmUnavailable
from kvserve.huge_shmem import huge_tmpfs_file, pmd_mapped_bytes

log = logging.getLogger(__name__)

TOKEN_BYTES = 16
Extent = tuple[int, int]  # (byte offset, byte length)
HASH_PIECE = 256 * 1024  # copy then hash this much at a time: hashed while still in cache


def host_id() -> str:
    """Names this host (boot): equal on both ends means the arena is reachable."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = "?"
    return f"{socket.gethostname()}/{boot}"


SHMEM_THP = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
MADV_POPULATE_WRITE = 23  # Linux 5.14; not in Python's mmap module
PAGE = mmap.PAGESIZE


def shmem_huge_pages() -> str:
    """The host's policy for huge pages in shared memory ('never', 'advise', ...; '?' if unknown)."""
    try:
        with open(SHMEM_THP) as f:
            words = f.read().split()
    except OSError:
        return "?"
    chosen = [w for w in words if w.startswith("[")]
    return chosen[0].strip("[]") if chosen else "?"


def _advise_huge_pages(mm: mmap.mmap) -> str:
    """Ask for transparent huge pages (before any page exists): what the host then gives.

    Decode attention reads the arena at memory speed, and with 4 KiB pages
    it loses ~15% of it to TLB misses (bench/README.md). Shared memory gets
    huge pages only where the host allows it: shmem_enabled 'advise' (with
    this call), 'within_size' or 'always'. The default 'never' keeps 4 KiB.
    """
    policy = shmem_huge_pages()
    try:
        mm.madvise(mmap.MADV_HUGEPAGE)
    except (AttributeError, OSError) as e:
        return f"4 KiB pages (no huge-page advice: {e})"
    if policy in ("advise", "within_size", "always", "force"):
        return f"huge pages (shmem_enabled={policy})"
    return f"4 KiB pages (shmem_enabled={policy})"


def _huge_page_file(size: int) -> tuple[int | None, str]:
    """(a file on huge pages, what the start line says) or (None, "") for a memfd and its advice."""
    policy = shmem_huge_pages()
    if policy in ("advise", "within_size", "always", "force", "deny"):
        return None, ""  # the memfd gets huge pages with advice, or nothing can
    fd, why = huge_tmpfs_file(size)
    if fd is None:
        log.info("the arena stays on 4 KiB pages: %s", why)
        return None, ""
    return fd, f"huge pages (private tmpfs; shmem_enabled={policy})"


def _populate(mm: mmap.mmap) -> None:
    """Allocate and map every page now (as MAP_POPULATE would, after the huge-page advice)."""
    try:
        mm.madvise(MADV_POPULATE_WRITE)
        return
    except OSError:
        pass  # an older kernel: touch a byte of every page
    view = np.frombuffer(mm, dtype=np.uint8)
    view[::PAGE] = 0
    del view


def as_bytes_view(buf: Any, *, writable: bool = False) -> np.ndarray:
    """A flat uint8 numpy view of any buffer (bytes, bytearray, memoryview, ndarray)."""
    if isinstance(buf, np.ndarray):
        if not buf.flags.c_contiguous:
            raise ValueError("buffers must be C-contiguous")
        arr = buf.reshape(-1).view(np.uint8)
    else:
        arr = np.frombuffer(buf, dtype=np.uint8)
    if writable and not arr.flags.writeable:
        raise ValueError("the output buffer is read-only")
    return arr


class Arena:
    def __init__(self, mm: mmap.mmap, size: int, path: str, token: bytes, fd: int | None) -> None:
        self._mm = mm
        self.size = size
        self.path = path
        self.token = token
        self._fd = fd  # the daemon keeps its file open: clients reach it through /proc/<pid>/fd
        self.pages = ""  # what the host gave the daemon's arena (huge pages or not), for its start line
        self.view = np.frombuffer(mm, dtype=np.uint8)

    @classmethod
    def create(cls, size: int, *, prefault: bool = True, huge_pages: bool = True) -> "Arena":
        """The daemon's arena: a fresh anonymous file of ``size`` bytes.

        With ``huge_pages``, where the host's policy would leave shared
        memory on 4 KiB pages, the arena is a file on a private huge-page
        tmpfs instead (kvserve.huge_shmem), if the host lets the daemon make one.

        With ``prefault`` every page is allocated and mapped now: a first touch
        costs a page fault per 4 KiB (in the daemon and again in each client),
        which would otherwise cap copies at a few GB/s.
        """
        fd, huge = _huge_page_file(size) if huge_pages else (None, "")
        if fd is None:
            fd = os.memfd_create("kvserve-arena", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            huge = huge or _advise_huge_pages(mm)
            if prefault:
                _populate(mm)
        except BaseException:
            os.close(fd)
            raise
        token = secrets.token_bytes(TOKEN_BYTES)
        mm[:TOKEN_BYTES] = token
        path = f"/proc/{os.getpid()}/fd/{fd}"
        arena = cls(mm, size, path, token, fd)
        if prefault and huge.startswith("huge"):
            try:  # what the kernel gave: huge pages are best effort
                share = pmd_mapped_bytes(arena.view.ctypes.data) / size
                huge = f"{huge[:-1]}; {min(100.0, share * 100):.0f}% mapped huge)"
            except OSError:
                pass
        log.debug("arena of %d bytes at %s (%s)", size, path, huge)
        arena.pages = huge
        return arena

    @classmethod
    def attach(cls, path: str, size: int, token: bytes) -> "Arena":
        """A client's mapping of a daemon's arena; ShmUnavailable if it is not reachable."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise ShmUnavailable(f"cannot open the daemon's arena {path}: {e.strerror}") from None
        try:
            if os.fstat(fd).st_size < size:
                raise ShmUnavailable(f"{path} is not the daemon's arena (too small)")
            # map every page now: they exist already, and faulting them in one
            # by one during copies would halve the copy rate
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED | mmap.MAP_POPULATE, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as e:
            raise ShmUnavailable(f"cannot map {path}: {e}") from None
        finally:
            os.close(fd)  # the mapping keeps the file alive
        if mm[:TOKEN_BYTES] != token:
            mm.close()
            raise ShmUnavailable(f"{path} is not the daemon's arena (token mismatch)")
        return cls(mm, size, path, token, None)

    def close(self) -> None:
        # numpy views pin the buffer: drop ours; the mapping goes when the last view does
        self.view = np.empty(0, dtype=np.uint8)
        try:
            self._mm.close()
        except BufferError:
            log.debug("arena %s still has views; unmapped when they go", self.path)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # ------------------------------------------------------------- byte moves

    def write(self, extents: Sequence[Extent], data: Any) -> None:
        """Copy ``data`` (exactly the extents' total length) into the extents."""
        src = as_bytes_view(data)
        pos = 0
        for off, length in extents:
            np.copyto(self.view[off:off + length], src[pos:pos + length])
            pos += length
        if pos != len(src):
            raise ValueError(f"{len(src)} bytes for extents of {pos}")

    def write_at(self, extents: Sequence[Extent], start: int, data: Any) -> None:
        """Copy ``data`` to bytes ``[start, start+len)`` of the object laid out in ``extents``."""
        src = as_bytes_view(data)
        end = start + len(src)
        base = 0
        for off, length in extents:
            lo, hi = max(start, base), min(end, base + length)
            if lo < hi:
                np.copyto(self.view[off + lo - base:off + hi - base], src[lo - start:hi - start])
            base += length
            if base >= end:
                break
        if end > base:
            raise ValueError("write past the end of the object")

    def read_into(self, extents: Sequence[Extent], out: Any) -> int:
        """Copy the extents' bytes into ``out``; returns the byte count."""
        dst = as_bytes_view(out, writable=True)
        pos = 0
        for off, length in extents:
            np.copyto(dst[pos:pos + length], self.view[off:off + length])
            pos += length
        return pos

    def read_into_hashed(self, extents: Sequence[Extent], out: Any) -> int:
        """Copy the extents' bytes into ``out`` and return the xxh3_64 of what landed there.

        Each piece is hashed right after it is copied, while it is in cache:
        hashing a large object after the whole copy would read it from memory
        a second time.
        """
        dst = as_bytes_view(out, writable=True)
        h = xxhash.xxh3_64()
        pos = 0
        for off, length in extents:
            for p in range(0, length, HASH_PIECE):
                n = min(HASH_PIECE, length - p)
                piece = dst[pos:pos + n]
                np.copyto(piece, self.view[off + p:off + p + n])
                h.update(memoryview(piece))  # type: ignore[arg-type]
                pos += n
        return h.intdigest()

    def write_hashed(self, extents: Sequence[Extent], data: Any) -> int:
        """Copy ``data`` into the extents and return the xxh3_64 of what landed in the arena."""
        src = as_bytes_view(data)
        h = xxhash.xxh3_64()
        pos = 0
        for off, length in extents:
            for p in range(0, length, HASH_PIECE):
                n = min(HASH_PIECE, length - p)
                piece = self.view[off + p:off + p + n]
                np.copyto(piece, src[pos:pos + n])
                h.update(memoryview(piece))  # type: ignore[arg-type]
                pos += n
        if pos != len(src):
            raise ValueError(f"{len(src)} bytes for extents of {pos}")
        return h.intdigest()

    def to_bytes(self, extents: Sequence[Extent]) -> bytes:
        if len(extents) == 1:
            off, length = extents[0]
            return self.view[off:off + length].tobytes()
        return b"".join(self.view[off:off + length].tobytes() for off, length in extents)

    def pieces(self, extents: Sequence[Extent], piece: int) -> list[memoryview]:
        """The object's bytes as views of at most ``piece`` bytes (no copy)."""
        out = []
        for off, length in extents:
            for p in range(off, off + length, piece):
                out.append(memoryview(self.view[p:min(p + piece, off + length)]))  # type: ignore[arg-type]
        return out

    def checksum(self, extents: Sequence[Extent]) -> int:
        h = xxhash.xxh3_64()
        for off, length in extents:
            h.update(memoryview(self.view[off:off + length]))  # type: ignore[arg-type]
        return h.intdigest()


def checksum_of(data: Any) -> int:
    """xxh3_64 of a buffer: what every object carries."""
    return xxhash.xxh3_64_intdigest(memoryview(as_bytes_view(data)))  # type: ignore[arg-type]
