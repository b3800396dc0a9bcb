"""SuperFS as an fsspec file system: ``superfs://`` URLs for pandas, pyarrow, datasets, dask.

Registered through the ``fsspec.specs`` entry point, so after installing
SuperFS (``pip install superfs[fsspec]``)::

    fs = fsspec.filesystem("superfs")                      # the cluster superfs.connect() reaches
    fs = fsspec.filesystem("superfs", config="/etc/superfs/cluster.toml")
    pandas.read_parquet("superfs:///data/part-0.parquet")
    pandas.read_parquet("superfs://10.0.0.1:7000/data/part-0.parquet")   # a dir server by address

URL form: ``superfs:///ABSOLUTE/PATH`` for the default cluster; a
``host:port`` right after ``//`` names a dir server. Anything else after
``//`` is the first path component (``superfs://data/x`` is ``/data/x``).
Keyword arguments (``address``, ``config``, ``state_dir``, ``timeout_s``)
are those of :func:`superfs.connect`. Everything goes through the client
library, with no mount; one connection per distinct set of arguments
(fsspec caches instances).
"""
from __future__ import annotations

import errno
import posixpath
import re
import stat as stat_mod
from typing import Any

from superfs.client import connect
from superfs.extras import require

try:
    from fsspec.spec import AbstractFileSystem
except ModuleNotFoundError:
    require("fsspec", "superfs:// for fsspec")  # fsspec missing: one line naming the extra
    raise

_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$")


def _split_url(url: str) -> tuple[str | None, str]:
    """'superfs://h:1/a/b' -> ('h:1', '/a/b'); 'superfs:///a' -> (None, '/a')."""
    rest = url[len("superfs://"):] if url.startswith("superfs://") else url
    if url.startswith("superfs://"):
        head, sep, tail = rest.partition("/")
        if _ADDRESS.match(head):
            return head, "/" + tail
        return None, "/" + rest.lstrip("/")
    return None, rest


class SuperFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """fsspec over :class:`superfs.client.Client` (synchronous, thread-safe)."""

    protocol = "superfs"
    root_marker = "/"

    def __init__(self, address: str | None = None, *, config: str | None = None, state_dir: str | None = None,
                 timeout_s: float | None = None, **storage_options: Any) -> None:
        super().__init__(**storage_options)
        self.client = connect(address, config=config, state_dir=state_dir, timeout_s=timeout_s)

    # ---------------------------------------------------------------- paths

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        _, p = _split_url(str(path))
        p = posixpath.normpath("/" + p.lstrip("/"))
        return "/" if p in ("/", "//") else p.rstrip("/")

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        address, _ = _split_url(path)
        return {"address": address} if address else {}

    def unstrip_protocol(self, name: str) -> str:
        return "superfs://" + self._strip_protocol(name)

    # ------------------------------------------------------------ metadata

    def _entry(self, path: str, st: Any) -> dict[str, Any]:
        if stat_mod.S_ISDIR(st.st_mode):
            kind = "directory"
        elif stat_mod.S_ISLNK(st.st_mode):
            kind = "other"
        else:
            kind = "file"
        return {"name": path, "size": st.st_size if kind == "file" else 0, "type": kind,
                "mode": st.st_mode, "mtime": st.st_mtime, "ino": st.st_ino, "nlink": st.st_nlink,
                "uid": st.st_uid, "gid": st.st_gid}

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        return self._entry(path, self.client.stat(path))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        st = self.client.stat(path)
        if not stat_mod.S_ISDIR(st.st_mode):
            entries = [self._entry(path, st)]
        else:
            entries = []
            for e in sorted(self.client.scandir(path), key=lambda e: e.name):
                child = posixpath.join(path, e.name)
                est = e.stat()
                if est is None:
                    try:
                        est = self.client.lstat(child)
                    except FileNotFoundError:  # removed meanwhile
                        continue
                entries.append(self._entry(child, est))
        return entries if detail else [e["name"] for e in entries]

    def modified(self, path: str) -> Any:
        import datetime

        return datetime.datetime.fromtimestamp(self.client.stat(self._strip_protocol(path)).st_mtime,
                                               tz=datetime.timezone.utc)

    def created(self, path: str) -> Any:
        return self.modified(path)

    # --------------------------------------------------------- namespace

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        if create_parents:
            self.client.makedirs(path, exist_ok=True)
        else:
            self.client.mkdir(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.client.makedirs(self._strip_protocol(path), exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        self.client.rmdir(self._strip_protocol(path))

    def rm_file(self, path: str) -> None:
        self.client.unlink(self._strip_protocol(path))

    def _rm(self, path: str) -> None:
        path = self._strip_protocol(path)
        if self.client.isdir(path):
            self.client.rmdir(path)
        else:
            self.client.unlink(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        paths = self.expand_path(path, recursive=recursive, maxdepth=maxdepth)
        for p in sorted(paths, key=lambda p: p.count("/"), reverse=True):  # children before parents
            self._rm(p)

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None,
           **kwargs: Any) -> None:
        self.client.replace(self._strip_protocol(path1), self._strip_protocol(path2))

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        if self.client.isdir(src):
            self.client.makedirs(dst, exist_ok=True)
            return
        with self.client.open(src, "rb") as fin, self.client.open(dst, "wb") as fout:
            while True:
                block = fin.read(4 << 20)
                if not block:
                    break
                fout.write(block)

    # --------------------------------------------------------------- bytes

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> Any:
        path = self._strip_protocol(path)
        if not autocommit:
            raise NotImplementedError("superfs: transactions (autocommit=False) are not supported")
        if "r" in mode and self.client.isdir(path):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        return self.client.open(path, mode.replace("t", "") if "b" in mode else mode + "b")

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        if start is None and end is None:
            return self.client.read_bytes(path)
        with self.client.open(path, "rb") as f:
            size = f.seek(0, 2)
            s = 0 if start is None else (start if start >= 0 else max(0, size + start))
            e = size if end is None else (end if end >= 0 else max(0, size + end))
            f.seek(s)
            return f.read(max(0, e - s))  # type: ignore[no-any-return]

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        if mode == "create" and self.client.exists(path):
            raise FileExistsError(errno.EEXIST, "File exists", path)
        self.client.write_bytes(path, value)

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        if truncate or not self.client.exists(path):
            self.client.write_bytes(path, b"")
        else:
            self.client.utime(path)

    def close(self) -> None:
        self.client.close()
