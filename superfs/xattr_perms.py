"""Who may read and change which extended attributes: Linux's rules, for the
dir server (directories) and the shards (files) alike.

By namespace, as Linux's xattr_permission() and its capability checks have it:

- ``user.*``: regular files and directories only (anything else: EPERM to
  change, ENODATA to read); reading needs read permission, changing needs
  write permission (EACCES), and in a sticky directory only its owner
  changes them (EPERM).
- ``trusted.*``: root's only: EPERM to change and ENODATA to read for
  anyone else, and left out of their listings.
- ``security.*``: anyone reads them; only root changes them (CAP_SYS_ADMIN,
  CAP_SETFCAP for ``security.capability``), EPERM for others.
- ``system.*`` (POSIX ACLs) and any other prefix: EOPNOTSUPP.

Listing needs no permission on the object itself.
"""
from __future__ import annotations

import errno
import stat

from superfs import perms
from superfs.errors import FsError
from superfs.perms import CredsLike

USER, TRUSTED, SECURITY = "user.", "trusted.", "security."


def check(name: str, *, mode: int, uid: int, gid: int, creds: CredsLike, write: bool) -> None:
    """Raise what Linux raises when ``creds`` reads (or, ``write``, changes) xattr ``name``."""
    root = creds.uid == 0
    if name.startswith(TRUSTED):
        if not root:
            raise FsError(errno.EPERM if write else errno.ENODATA, "trusted.* attributes are root's")
        return
    if name.startswith(SECURITY):
        if write and not root:
            raise FsError(errno.EPERM, "only root changes security.* attributes")
        return
    if not name.startswith(USER):
        raise FsError(errno.EOPNOTSUPP, f"the namespace of {name!r} is not supported")
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise FsError(errno.EPERM if write else errno.ENODATA, "user.* attributes are for files and directories")
    if write and stat.S_ISDIR(mode) and mode & stat.S_ISVTX and creds.uid not in (0, uid):
        raise FsError(errno.EPERM, "sticky directory: only its owner changes its user.* attributes")
    perms.require(mode, uid, gid, creds, perms.W_OK if write else perms.R_OK,
                  "change xattrs" if write else "read xattrs")


def listed(name: str, creds: CredsLike) -> bool:
    """Does a listing for ``creds`` show ``name``?"""
    return creds.uid == 0 or not name.startswith(TRUSTED)
