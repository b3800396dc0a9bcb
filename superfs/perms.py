"""POSIX permission checks, done by the servers (and mirrored by the client)."""
from __future__ import annotations

import errno
import stat
from typing import Protocol, Sequence

from superfs.errors import FsError

R_OK, W_OK, X_OK = 4, 2, 1


class CredsLike(Protocol):
    @property
    def uid(self) -> int: ...

    @property
    def gid(self) -> int: ...

    @property
    def groups(self) -> Sequence[int]: ...


def allowed(mode: int, owner: int, group: int, creds: CredsLike, want: int) -> bool:
    """Does ``creds`` hold every right in ``want`` (R_OK|W_OK|X_OK)?"""
    if creds.uid == 0:
        # root: everything, except execute needs some x bit on non-directories
        if want & X_OK and not stat.S_ISDIR(mode) and not mode & 0o111:
            return False
        return True
    if creds.uid == owner:
        bits = (mode >> 6) & 7
    elif creds.gid == group or group in creds.groups:
        bits = (mode >> 3) & 7
    else:
        bits = mode & 7
    return bits & want == want


def require(mode: int, owner: int, group: int, creds: CredsLike, want: int, what: str = "") -> None:
    if not allowed(mode, owner, group, creds, want):
        raise FsError(errno.EACCES, f"permission denied{': ' + what if what else ''}")


def rights(mode: int, owner: int, group: int, creds: CredsLike) -> int:
    """The subset of R|W|X that creds hold on an object."""
    return sum(bit for bit in (R_OK, W_OK, X_OK) if allowed(mode, owner, group, creds, bit))


def check_sticky(dir_sticky: bool, dir_owner: int, file_owner: int, creds: CredsLike) -> None:
    """In a sticky directory only root, the dir owner or the file owner may remove."""
    if dir_sticky and creds.uid not in (0, dir_owner, file_owner):
        raise FsError(errno.EPERM, "sticky directory: not the owner")


def check_hardlink(mode: int, owner: int, group: int, creds: CredsLike) -> None:
    """Linux's ``fs.protected_hardlinks=1``: may ``creds`` make a new name for this inode?

    Root and the owner may; anyone else only for a regular file that is not
    setuid (nor setgid and group-executable) and that they may read and write.
    Otherwise EPERM, as link(2) answers.
    """
    if creds.uid in (0, owner):
        return
    safe = (stat.S_ISREG(mode) and not mode & stat.S_ISUID
            and not (mode & stat.S_ISGID and mode & stat.S_IXGRP))
    if not safe or not allowed(mode, owner, group, creds, R_OK | W_OK):
        raise FsError(errno.EPERM, "hard link refused: not the owner, and the file is not one you may "
                                   "read and write (protected hardlinks)")
