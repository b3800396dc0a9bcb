"""Short-circuit reads: a client on a data server's host reads a chunk from the server's slot file itself.

Over the byte path a chunk's bytes are copied three times (page cache to
the server, server to socket, socket to the caller's buffer) and cost the
server a thread's work per read. On the same host the client can instead
ask where the chunk lies (LOCATE, answered on the local socket only, with
the chunk capability checked as for READ), open that slot file and read the
bytes straight into its buffer: one copy, as a local file read. HDFS calls
this a short-circuit read.

Nothing is trusted that the client did not check. The file must be the one
the server named (same st_dev and st_ino after opening), and every block
read must match the block sums the server sent; anything else (a file the
client may not open: slot files are 0600, the data server's user's; a block
that fails, because it is corrupt or because its slot was reused since the
LOCATE) makes the caller send an ordinary READ, which the server verifies
and repairs. So the operating system's permissions decide who may read this
way, and nothing is read here that could not be read from the file already.

``SUPERFS_LOCAL_READS=0`` in the environment turns it off for a process.
"""
from __future__ import annotations

import logging
import os
import struct
import threading

import xxhash

from superfs.rpc.open_files import OpenFiles
from superfs.v1 import bytes_pb2 as bpb

log = logging.getLogger(__name__)

MIN_READ = 256 * 1024    # smaller reads are not worth a LOCATE before them
_SUM = struct.Struct("<Q")


def enabled() -> bool:
    return os.environ.get("SUPERFS_LOCAL_READS", "1") not in ("0", "no", "off", "false")


class LocalFiles:
    """Reads of data servers' slot files on this host, from any thread.

    Reads of one slot file share one descriptor while they follow each other
    (open_files.py: the kernel's read-ahead then reads the file in large
    requests); it is closed seconds after the last, so a data server's files
    deleted after it was taken out of the cluster free their space soon,
    whatever clients are still running.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refused: set[str] = set()   # paths this process may not open
        self.files = OpenFiles()
        self.reads = 0        # chunk ranges read here (tests and benchmarks look)
        self.fallbacks = 0    # ranges handed back to READ (refused, replaced, or failed a sum)

    def read(self, where: bpb.ByteReply, offset: int, view: memoryview) -> int | None:
        """Bytes [offset, offset + len(view)) of the chunk ``where`` (a LOCATE reply) describes, read
        into ``view`` and verified: how many (short at the chunk's end), or None: use READ."""
        n = max(0, min(len(view), where.length - offset))
        if n == 0:
            return 0
        got = self._read(where, offset, view[:n])
        with self._lock:
            if got:
                self.reads += 1
            else:
                self.fallbacks += 1
        return n if got else None

    def _read(self, where: bpb.ByteReply, offset: int, view: memoryview) -> bool:
        block = 1 << where.block_log2
        first, last = offset // block, (offset + len(view) - 1) // block
        if not where.path or not where.block_log2 or len(where.sums) < (last + 1) * _SUM.size:
            return False
        start, stop = first * block, min(where.length, (last + 1) * block)
        f = self.files.acquire((where.path, where.file_dev, where.file_ino), lambda: self._open(where))
        if f is None:
            return False
        try:
            if start == offset and stop == offset + len(view):   # whole blocks: straight into the caller's buffer
                buf = view
            else:
                buf = memoryview(bytearray(stop - start))
            _pread_full(f.fd, buf, where.file_offset + start)
        except OSError as e:
            log.debug("local read of %s failed (%s): reading through the data server", where.path, e)
            return False
        finally:
            self.files.release(f)
        for k in range(first, last + 1):
            lo, hi = (k - first) * block, min(stop, (k + 1) * block) - start
            if xxhash.xxh3_64_intdigest(buf[lo:hi]) != _SUM.unpack_from(where.sums, k * _SUM.size)[0]:
                return False   # corrupt, or the slot was reused since LOCATE: the server will tell
        if buf is not view:
            view[:] = buf[offset - start:offset - start + len(view)]
        return True

    def _open(self, where: bpb.ByteReply) -> int | None:
        """The file the server named, opened; None: not readable here, or not that file."""
        path = where.path
        with self._lock:
            if path in self._refused:
                return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            log.debug("cannot open %s (%s): reading through the data server", path, e.strerror or e)
            with self._lock:
                if len(self._refused) < 4096:
                    self._refused.add(path)
            return None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (where.file_dev, where.file_ino):
            os.close(fd)   # not the file the server named (another namespace, or replaced)
            return None
        return fd


def _pread_full(fd: int, view: memoryview, at: int) -> None:
    """No POSIX_FADV_WILLNEED first: on the shared descriptor the kernel's own read-ahead
    reads in larger requests than the advice's 2 MiB steps (open_files.py)."""
    pos = 0
    while pos < len(view):
        k = os.preadv(fd, [view[pos:]], at + pos)
        if k == 0:
            view[pos:] = bytes(len(view) - pos)   # past the file's end: never written, zeros
            return
        pos += k
