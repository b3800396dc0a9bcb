"""Where a benchmark runs: a directory (local, tmpfs, any mount) or SuperFS through the library.

A target string is either a directory path, or ``superfs://HOST:PORT/dir``
(a dir server by address) or ``superfs:///dir`` (the local cluster of
``--state-dir``, else the default one). :class:`TargetSpec` is what worker
processes receive (picklable); each worker opens its own :class:`FsOps`.
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Any, Protocol


class FsOps(Protocol):
    """The operations the metadata benchmark times; every path is absolute within the target."""

    def mkdir(self, path: str) -> None: ...
    def makedirs(self, path: str) -> None: ...
    def rmdir(self, path: str) -> None: ...
    def create(self, path: str) -> None: ...
    def write(self, path: str, data: bytes) -> None: ...
    def read(self, path: str) -> bytes: ...
    def stat(self, path: str) -> Any: ...
    def unlink(self, path: str) -> None: ...
    def scandir(self, path: str) -> list[tuple[str, bool]]: ...
    def dir_rpcs(self) -> int | None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class TargetSpec:
    """A parsed target: ``kind`` is "dir" or "library"; ``root`` the directory to work in."""

    kind: str
    root: str
    address: str | None = None
    state_dir: str | None = None

    @classmethod
    def parse(cls, target: str, state_dir: str | None = None) -> "TargetSpec":
        if target.startswith("superfs://"):
            rest = target[len("superfs://"):]
            host, _, path = rest.partition("/")
            return cls("library", posixpath.normpath("/" + path), host or None, state_dir)
        return cls("dir", os.path.abspath(target))

    def open(self) -> FsOps:
        if self.kind == "library":
            return LibraryOps(self.address, self.state_dir)
        return LocalOps()

    def join(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts) if self.kind == "library" else os.path.join(self.root, *parts)

    def __str__(self) -> str:
        if self.kind == "library":
            return f"superfs://{self.address or ''}{self.root}"
        return self.root


class LocalOps:
    """System calls on a directory: a local disk, tmpfs, a FUSE mount, any peer's mount."""

    def mkdir(self, path: str) -> None:
        os.mkdir(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def create(self, path: str) -> None:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))

    def write(self, path: str, data: bytes) -> None:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def read(self, path: str) -> bytes:
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.read(fd, 1 << 20)
        finally:
            os.close(fd)

    def stat(self, path: str) -> os.stat_result:
        return os.stat(path)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def scandir(self, path: str) -> list[tuple[str, bool]]:
        with os.scandir(path) as it:
            return [(e.name, e.is_dir(follow_symlinks=False)) for e in it]

    def dir_rpcs(self) -> int | None:
        return None

    def close(self) -> None:
        pass


class LibraryOps:
    """The same operations through ``superfs.connect`` (no FUSE, no kernel)."""

    def __init__(self, address: str | None, state_dir: str | None) -> None:
        import superfs
        self.client = superfs.connect(address, state_dir=state_dir) if address else superfs.connect(
            state_dir=state_dir)

    def mkdir(self, path: str) -> None:
        self.client.mkdir(path)

    def makedirs(self, path: str) -> None:
        self.client.makedirs(path, exist_ok=True)

    def rmdir(self, path: str) -> None:
        self.client.rmdir(path)

    def create(self, path: str) -> None:
        self.client.open(path, "xb").close()

    def write(self, path: str, data: bytes) -> None:
        with self.client.open(path, "xb") as f:
            f.write(data)

    def read(self, path: str) -> bytes:
        with self.client.open(path, "rb") as f:
            return f.read()

    def stat(self, path: str) -> os.stat_result:
        return self.client.stat(path)

    def unlink(self, path: str) -> None:
        self.client.unlink(path)

    def scandir(self, path: str) -> list[tuple[str, bool]]:
        return [(e.name, e.is_dir()) for e in self.client.scandir(path)]

    def dir_rpcs(self) -> int | None:
        return int(self.client.aio.cluster.dir_rpcs)

    def close(self) -> None:
        self.client.close()
