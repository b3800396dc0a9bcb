"""The same os-like API on a local directory, to compare errnos with SuperFS."""
from __future__ import annotations

import os
from typing import Any, Callable


class LocalFs:
    def __init__(self, root: str) -> None:
        self.root = root

    def p(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/")) + ("/" if path.endswith("/") and path != "/" else "")

    def mkdir(self, path: str, mode: int = 0o777) -> None:
        os.mkdir(self.p(path), mode)

    def rmdir(self, path: str) -> None:
        os.rmdir(self.p(path))

    def unlink(self, path: str) -> None:
        os.unlink(self.p(path))

    def rename(self, a: str, b: str) -> None:
        os.rename(self.p(a), self.p(b))

    def link(self, a: str, b: str) -> None:
        os.link(self.p(a), self.p(b), follow_symlinks=False)

    def symlink(self, target: str, path: str) -> None:
        os.symlink(target if not target.startswith("/") else self.p(target), self.p(path))

    def readlink(self, path: str) -> str:
        return os.readlink(self.p(path))

    def stat(self, path: str) -> os.stat_result:
        return os.stat(self.p(path))

    def lstat(self, path: str) -> os.stat_result:
        return os.lstat(self.p(path))

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(self.p(path)))

    def open(self, path: str, mode: str = "r") -> Any:
        return open(self.p(path), mode)

    def truncate(self, path: str, n: int) -> None:
        os.truncate(self.p(path), n)


def outcome(fn: Callable[[], Any]) -> str:
    """'ok' or the errno name an operation ends with."""
    import errno

    try:
        r = fn()
        if hasattr(r, "close"):
            r.close()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e.errno))
