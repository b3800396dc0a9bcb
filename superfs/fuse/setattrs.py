"""setattr: which SuperFS SetAttr fields a kernel request changes.

pyfuse3 hands over the fields to change and the new values. It turns
UTIME_NOW into the current time of the mount's clock, which hides the
difference POSIX makes: any writer may set "now", only the owner may set an
explicit time. :func:`as_now` recovers "now" when the servers refuse an
explicit time that was, in all likelihood, "now" (the kernel has already
checked the rights for the request it saw, thanks to default_permissions).
"""
from __future__ import annotations

import time
from typing import Any

from superfs.client.meta import SET_ATIME, SET_ATIME_NOW, SET_GID, SET_MODE, SET_MTIME, SET_MTIME_NOW, SET_UID

NOW_SLACK_NS = 2_000_000_000  # a time this close to the clock may have been UTIME_NOW


def changes(attr: Any, fields: Any) -> tuple[int, dict[str, int]]:
    """(SetAttr mask, keyword values) for everything but the size."""
    mask, kw = 0, {}
    if fields.update_mode:
        mask |= SET_MODE
        kw["mode"] = attr.st_mode & 0o7777
    if fields.update_uid:
        mask |= SET_UID
        kw["uid"] = attr.st_uid
    if fields.update_gid:
        mask |= SET_GID
        kw["gid"] = attr.st_gid
    if fields.update_atime:
        mask |= SET_ATIME
        kw["atime_ns"] = attr.st_atime_ns
    if fields.update_mtime:
        mask |= SET_MTIME
        kw["mtime_ns"] = attr.st_mtime_ns
    return mask, kw


def as_now(mask: int, kw: dict[str, int]) -> int | None:
    """The mask with explicit times replaced by "now", if they could have been; else None."""
    if not mask & (SET_ATIME | SET_MTIME):
        return None
    now = time.time_ns()
    if any(abs(kw[k] - now) > NOW_SLACK_NS for k in ("atime_ns", "mtime_ns") if k in kw):
        return None
    return (mask & ~(SET_ATIME | SET_MTIME)) | (SET_ATIME_NOW if mask & SET_ATIME else 0) | (
        SET_MTIME_NOW if mask & SET_MTIME else 0)
