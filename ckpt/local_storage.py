"""LocalStorage: checkpoints in a directory through plain os calls (local disk, NFS, a SuperFS mount).

Durability follows POSIX: data files are fsynced before the rank reports
them done, a small file is written under a temporary name, fsynced and
renamed, and the directory is fsynced after names change. File systems
that cannot fsync a directory (some FUSE mounts) are tolerated.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import uuid

from ckpt.storage import FileReader, FileWriter, Storage

log = logging.getLogger(__name__)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


class LocalFileWriter(FileWriter):
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    def write_at(self, offset: int, data: memoryview) -> None:
        view = memoryview(data).cast("B")
        while len(view):
            n = os.pwrite(self.fd, view, offset)
            view = view[n:]
            offset += n

    def close(self) -> None:
        if self.fd < 0:
            return
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = -1

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LocalFileReader(FileReader):
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self._size = os.fstat(self.fd).st_size

    @property
    def size(self) -> int:
        return self._size

    def read_into(self, offset: int, buf: memoryview) -> int:
        view = memoryview(buf).cast("B")
        done = 0
        while done < len(view):
            n = os.preadv(self.fd, [view[done:]], offset + done)
            if n == 0:
                break
            done += n
        return done

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LocalStorage(Storage):
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = self.root

    def _p(self, path: str) -> str:
        return os.path.join(self.root, path) if path else self.root

    def makedirs(self, path: str) -> None:
        os.makedirs(self._p(path), exist_ok=True)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(self._p(path))

    def exists(self, path: str) -> bool:
        return os.path.exists(self._p(path))

    def read_bytes(self, path: str) -> bytes:
        with open(self._p(path), "rb") as f:
            return f.read()

    def write_atomic(self, path: str, data: bytes) -> None:
        final = self._p(path)
        tmp = f"{final}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _fsync_dir(os.path.dirname(final))

    def create(self, path: str, size: int) -> FileWriter:
        return LocalFileWriter(self._p(path))

    def open(self, path: str) -> FileReader:
        return LocalFileReader(self._p(path))

    def remove(self, path: str) -> None:
        os.unlink(self._p(path))

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(self._p(path), ignore_errors=True)

    def sync_dir(self, path: str) -> None:
        _fsync_dir(self._p(path))
