"""statfs: the cluster's usage as a statvfs reply, asked for at most once a second.

``df``, ``du`` and many copy tools call statfs often; the answer is a
fan-out to every daemon, so it is cached briefly. Data servers do not report
their capacity yet, so the total is a fixed 1 PiB (and 2^40 inodes), large
enough never to stop a tool that checks for free space first.
"""
from __future__ import annotations

import time

import pyfuse3

from superfs.client.fs import AsyncFs

TTL_S = 1.0
VIRTUAL_CAPACITY = 1 << 50
VIRTUAL_INODES = 1 << 40
FRSIZE = 4096
BSIZE = 128 * 1024


class StatfsCache:
    def __init__(self, fs: AsyncFs) -> None:
        self.fs = fs
        self._cached: tuple[float, pyfuse3.StatvfsData] | None = None

    async def get(self) -> pyfuse3.StatvfsData:
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < TTL_S:
            return cached[1]
        stats = await self.fs.statfs()
        used_blocks = (stats["bytes_used"] + FRSIZE - 1) // FRSIZE
        total_blocks = max(VIRTUAL_CAPACITY // FRSIZE, used_blocks * 2)
        inodes = stats["files"] + stats["directories"]
        s = pyfuse3.StatvfsData()
        s.f_bsize = BSIZE
        s.f_frsize = FRSIZE
        s.f_blocks = total_blocks
        s.f_bfree = s.f_bavail = total_blocks - used_blocks
        s.f_files = max(VIRTUAL_INODES, inodes * 2)
        s.f_ffree = s.f_favail = s.f_files - inodes
        s.f_namemax = 255
        self._cached = (time.monotonic(), s)
        return s
