"""Who is asking: the calling process's uid, gid and groups, as client Creds.

Every FUSE request carries the caller's uid, gid and pid. The supplementary
groups are not in the request: pyfuse3 reads them from /proc/PID/status.
That read is cheap but not free, so groups are remembered per pid for a
second (a process that changes its groups is seen within that second; pid
reuse within a second is not a realistic concern). Root needs no groups:
root passes every check, so its lookups are skipped entirely.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

import pyfuse3

from superfs.client.meta import Creds

log = logging.getLogger(__name__)

GROUPS_TTL_S = 1.0
MAX_PIDS = 4096

ROOT = Creds(0, 0)


class CredsOf:
    """Builds Creds from request contexts, caching supplementary groups."""

    def __init__(self) -> None:
        self._groups: OrderedDict[int, tuple[float, tuple[int, ...]]] = OrderedDict()

    def __call__(self, ctx: Any) -> Creds:
        uid, gid = ctx.uid, ctx.gid
        if uid == 0 and gid == 0:
            return ROOT
        return Creds(uid, gid, self._groups_of(ctx.pid))

    def _groups_of(self, pid: int) -> tuple[int, ...]:
        now = time.monotonic()
        hit = self._groups.get(pid)
        if hit is not None and now - hit[0] < GROUPS_TTL_S:
            return hit[1]
        try:
            groups = tuple(sorted(pyfuse3.get_sup_groups(pid)))
        except (OSError, ValueError) as e:
            # the process may be gone already (pid 0 for kernel-internal requests)
            log.debug("no supplementary groups for pid %d: %s", pid, e)
            groups = ()
        self._groups[pid] = (now, groups)
        self._groups.move_to_end(pid)
        while len(self._groups) > MAX_PIDS:
            self._groups.popitem(last=False)
        return groups
