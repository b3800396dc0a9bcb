"""Storage: how bytes reach a file system, behind three small ABCs (the planner decides what).

Call order for a save, per rank::

    storage.makedirs(dir)
    w = storage.create(path, size)   # exclusive; w.chunk_size/w.chunk_map say how logical
    w.write_at(physical_offset, view)*   # bytes map to physical ones (None: identity)
    w.close()                        # every byte durable when it returns; raises the first error
    storage.write_atomic(manifest, data)   # readers see the old file or the new, never a mix

and for a load: ``r = storage.open(path); r.read_into(offset, buf)*; r.close()``.
Paths are relative to the storage root, '/'-separated. Backends raise
OSError (FileNotFoundError, ...) and nothing else; ckpt adds item names.

``open_storage`` picks the backend from a URL: ``superfs://HOST:PORT/dir``
or ``superfs:///dir`` (the local cluster) go through the SuperFS client
library; anything else is a directory (local, NFS, or a SuperFS mount).
"""
from __future__ import annotations

import posixpath
from abc import ABC, abstractmethod
from typing import Any

SUPERFS_SCHEME = "superfs://"


class FileWriter(ABC):
    """One new data file being written; ``write_at`` may return before the bytes are durable.

    The caller must leave ``data`` unchanged until ``close()`` returns.
    """

    chunk_size: int = 0
    chunk_map: list[int] | None = None  # logical chunk i -> physical chunk; None: identity

    @abstractmethod
    def write_at(self, offset: int, data: memoryview) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Wait for every write, make the file durable, raise the first error."""

    @abstractmethod
    def abort(self) -> None:
        """Stop writing; the file is left for cleanup."""

    @property
    def server_bytes(self) -> dict[int, int]:
        """Bytes sent to each data server (backends that know placement)."""
        return {}


class FileReader(ABC):
    @property
    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def read_into(self, offset: int, buf: memoryview) -> int:
        """Fill ``buf`` from ``offset``; returns bytes read (short only at end of file)."""

    def read_many(self, requests: list[tuple[int, memoryview]]) -> list[int]:
        """Several reads, which a backend may run concurrently."""
        return [self.read_into(off, buf) for off, buf in requests]

    def close(self) -> None:
        pass


class Storage(ABC):
    """A directory tree checkpoints live in; all paths are relative to its root."""

    url: str

    @abstractmethod
    def makedirs(self, path: str) -> None: ...

    @abstractmethod
    def listdir(self, path: str) -> list[str]: ...

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def read_bytes(self, path: str) -> bytes: ...

    @abstractmethod
    def write_atomic(self, path: str, data: bytes) -> None:
        """Write a whole small file under a temporary name, make it durable, rename over ``path``."""

    @abstractmethod
    def create(self, path: str, size: int) -> FileWriter:
        """Create a new file (fails if it exists) that will hold ``size`` logical bytes."""

    @abstractmethod
    def open(self, path: str) -> FileReader: ...

    @abstractmethod
    def remove(self, path: str) -> None: ...

    @abstractmethod
    def remove_tree(self, path: str) -> None:
        """Remove a directory and everything under it (missing is fine)."""

    def sync_dir(self, path: str) -> None:
        """Make the names created in ``path`` durable (no-op where creates already are)."""

    def close(self) -> None:
        pass

    def __enter__(self) -> "Storage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def join(*parts: str) -> str:
    return posixpath.join(*[p for p in parts if p])


def open_storage(location: Any) -> Storage:
    """The Storage for a URL or directory path (a Storage is returned unchanged)."""
    if isinstance(location, Storage):
        return location
    loc = str(location)
    if loc.startswith(SUPERFS_SCHEME):
        from ckpt.superfs_storage import SuperFsStorage

        return SuperFsStorage.from_url(loc)
    from ckpt.local_storage import LocalStorage

    return LocalStorage(loc.removeprefix("file://"))
