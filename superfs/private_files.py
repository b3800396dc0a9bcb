"""Files that hold secrets: the cluster secret, tokens files, a client's token file.

Anyone who can read the cluster secret can sign capabilities for any
directory or inode; anyone who can read a tokens file or a token file can act
as its credentials; anyone who can write one can grant themselves more. So a
daemon or client refuses to start from such a file when users other than its
owner could read it, or anyone but the owner could change it. Read access
for the file's group is allowed: a deployment may keep the file
``root:superfs`` mode 0640 so that daemons running as ``superfs`` read it
without owning it.
"""
from __future__ import annotations

import os
import stat

# what a secret's mode may not have: any bit for others, write for the group
FORBIDDEN = stat.S_IRWXO | stat.S_IWGRP


class LooseFileError(ValueError):
    """A secret file that others can read or change; the message names it and its mode."""


def check(path: str, key: str) -> None:
    """Raise :class:`LooseFileError` (``key``: the setting that names the file) if others can reach ``path``.

    A file that cannot be stat'ed is left to the caller's open(), which says why.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    loose = mode & FORBIDDEN
    if not loose:
        return
    who = []
    if loose & stat.S_IROTH:
        who.append("read by others")
    if loose & (stat.S_IWOTH | stat.S_IWGRP):
        who.append("changed by " + ("its group and others" if loose & stat.S_IWGRP and loose & stat.S_IWOTH
                                    else "its group" if loose & stat.S_IWGRP else "others"))
    if loose & stat.S_IXOTH and not who:
        who.append("reached by others")
    raise LooseFileError(f"{key}: {path} has mode {stat.S_IMODE(mode):04o}, so it can be {' and '.join(who)}; "
                         f"it holds secrets (chmod 600 {path})")
