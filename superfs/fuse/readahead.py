"""The kernel's read-ahead for a mount, raised so sequential reads arrive in big requests.

A FUSE mount starts with the kernel's read-ahead capped at what libfuse
offered in INIT (128 KiB), so a program reading a large file sequentially
reaches the mount as 128 KiB requests, one FUSE round trip each. The cap is
the mount's backing device info (``/sys/class/bdi/MAJOR:MINOR/read_ahead_kb``);
raised after INIT, the kernel reads ahead in requests as large as the
connection allows (libfuse 3 negotiates up to 1 MiB) and several at once.
pyfuse3 has no hook to set it in INIT, so the mount writes it once INIT has
been answered. Only root may: otherwise the mount keeps the kernel's value.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

DEFAULT_READ_AHEAD_KB = 4096
BDI_ROOT = "/sys/class/bdi"


def mount_device(mountpoint: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """'MAJOR:MINOR' of the file system mounted at ``mountpoint`` (the last one mounted there).

    Read from mountinfo, and the path only normalised, never resolved: a
    stat(2) of the mountpoint (realpath does one) from the mount process is
    a request to itself that its blocked event loop never answers.
    """
    real = os.path.normpath(os.path.abspath(mountpoint))
    found = None
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and _unescape(fields[4]) == real:
                found = fields[2]
    return found


def _unescape(path: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, ch)
    return path


def set_read_ahead(mountpoint: str, kb: int, bdi_root: str = BDI_ROOT) -> int | None:
    """Set the mount's read-ahead to ``kb`` KiB; the value now in force, or None if unknown."""
    try:
        dev = mount_device(mountpoint)
        if dev is None:
            log.warning("read-ahead: %s is not in the mount table", mountpoint)
            return None
        path = os.path.join(bdi_root, dev, "read_ahead_kb")
        try:
            with open(path, "w") as f:
                f.write(str(kb))
        except PermissionError:
            log.info("read-ahead: not root, the kernel's default stays (%s)", path)
        with open(path) as f:
            now = int(f.read().strip())
    except (OSError, ValueError) as e:
        log.warning("read-ahead of %s not set: %s", mountpoint, e)
        return None
    log.debug("read-ahead of %s: %d KiB", mountpoint, now)
    return now
