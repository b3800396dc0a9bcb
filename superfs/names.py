"""Validation of names and paths, with the errno Linux gives for each fault."""
from __future__ import annotations

import errno

from superfs.errors import FsError

NAME_MAX = 255
PATH_MAX = 4096


def check_name(name: str) -> bytes:
    """A single directory-entry name: 1..255 bytes, no '/', no NUL, not . or .."""
    raw = name.encode("utf-8", "surrogateescape")
    if not raw:
        raise FsError(errno.ENOENT, "empty name")
    if len(raw) > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG, f"name is {len(raw)} bytes (max {NAME_MAX})")
    if b"/" in raw or b"\0" in raw:
        raise FsError(errno.EINVAL, "name contains '/' or NUL")
    if raw in (b".", b".."):
        raise FsError(errno.EINVAL, f"'{name}' is not a valid entry name here")
    return raw


def split_path(path: str) -> list[str]:
    """Components of an absolute path; '.' and empty components dropped."""
    if "\0" in path:
        raise FsError(errno.EINVAL, "path contains NUL")
    if len(path.encode("utf-8", "surrogateescape")) >= PATH_MAX:
        raise FsError(errno.ENAMETOOLONG, "path too long")
    parts = [p for p in path.split("/") if p and p != "."]
    for p in parts:
        if len(p.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise FsError(errno.ENAMETOOLONG, f"component of {len(p.encode())} bytes")
    return parts
