"""Time stamps through a real mount, compared with a local directory.

Which of atime, mtime and ctime an operation moves, on the file and on its
directory, as the man pages (and pjdfstest) say: a directory's mtime and
ctime move when a name in it is created, removed or renamed (file names live
on the shards, directory times on the dir server: see client/dirtimes.py),
and not when an existing file is opened; a file's ctime moves when its links,
name, mode, owner or bytes change; utimensat's UTIME_NOW and UTIME_OMIT.
"""
from __future__ import annotations

import ctypes
import errno
import os
import socket
import time
from typing import Any, Callable

from fuse_helpers import fuse_cluster, ldir, mdir, mnt, mount_factory, mount_root  # noqa: F401

from superfs.client.meta import Creds
from superfs.client.sync import Client

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
TICK_S = 0.05  # longer than a local file system's timestamp granularity (the kernel's tick)


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def utimensat(path: str, atime: tuple[int, int], mtime: tuple[int, int]) -> None:
    ts = (Timespec * 2)(Timespec(*atime), Timespec(*mtime))
    if libc.utimensat(AT_FDCWD, path.encode(), ts, 0x100) != 0:  # AT_SYMLINK_NOFOLLOW
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)


def times(path: str) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns


def moved(op: Callable[[], Any], *paths: str | tuple[str, str]) -> list[str]:
    """Which of a, m, c moved on each path when ``op`` ran ('-' for one that stayed);
    a pair of paths is one file's name before and after ``op``."""
    pairs = [p if isinstance(p, tuple) else (p, p) for p in paths]
    before = [times(p) for p, _ in pairs]
    time.sleep(TICK_S)
    try:
        op()
    except OSError as e:
        return [errno.errorcode.get(e.errno or 0, "?")]
    out = []
    for (_, p), b in zip(pairs, before):
        a = times(p) if os.path.lexists(p) else b
        out.append("".join(k if a[i] != b[i] else "-" for i, k in enumerate("amc")))
    return out


def create(path: str, flags: int = os.O_WRONLY | os.O_CREAT) -> None:
    os.close(os.open(path, flags, 0o644))


def put(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def bind(path: str) -> None:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(path)
    finally:
        s.close()


def script(b: str) -> list[Any]:
    os.mkdir(f"{b}/d")
    os.mkdir(f"{b}/e")
    d, e = f"{b}/d", f"{b}/e"
    create(f"{d}/keep")
    return [
        ("create", moved(lambda: create(f"{d}/f"), d)),
        ("open existing O_CREAT", moved(lambda: create(f"{d}/f"), d, f"{d}/f")),
        ("failed O_EXCL", moved(lambda: create(f"{d}/f", os.O_WRONLY | os.O_CREAT | os.O_EXCL), d)),
        ("mkfifo", moved(lambda: os.mkfifo(f"{d}/p"), d)),
        ("bind", moved(lambda: bind(f"{d}/s"), d)),
        ("symlink", moved(lambda: os.symlink("f", f"{d}/l"), d)),
        ("mkdir", moved(lambda: os.mkdir(f"{d}/sub"), d)),
        ("link", moved(lambda: os.link(f"{d}/f", f"{e}/f2"), d, e, f"{d}/f")),
        ("unlink one of two links", moved(lambda: os.unlink(f"{e}/f2"), d, e, f"{d}/f")),
        ("rename in dir", moved(lambda: os.rename(f"{d}/f", f"{d}/g"), d, (f"{d}/f", f"{d}/g"))),
        ("rename across dirs", moved(lambda: os.rename(f"{d}/g", f"{e}/g"), d, e, (f"{d}/g", f"{e}/g"))),
        ("rename over", moved(lambda: os.rename(f"{d}/keep", f"{e}/g"), d, e, (f"{d}/keep", f"{e}/g"))),
        ("rename dir across", moved(lambda: os.rename(f"{d}/sub", f"{e}/sub"), d, e)),
        ("write", moved(lambda: put(f"{e}/g", b"bytes"), e, f"{e}/g")),
        ("truncate", moved(lambda: os.truncate(f"{e}/g", 1), e, f"{e}/g")),
        ("chmod", moved(lambda: os.chmod(f"{e}/g", 0o600), e, f"{e}/g")),
        ("chown", moved(lambda: os.chown(f"{e}/g", 5, 5), e, f"{e}/g")),
        ("chmod dir", moved(lambda: os.chmod(d, 0o700), b, d)),
        ("utimensat now/omit", moved(lambda: utimensat(f"{e}/g", (0, UTIME_NOW), (0, UTIME_OMIT)), f"{e}/g")),
        ("utimensat omit/now", moved(lambda: utimensat(f"{e}/g", (0, UTIME_OMIT), (0, UTIME_NOW)), f"{e}/g")),
        ("utimensat values", moved(lambda: utimensat(f"{e}/g", (5, 6), (7, 8)), f"{e}/g")),
        ("set", times(f"{e}/g")[:2]),
        ("unlink", moved(lambda: os.unlink(f"{d}/p"), d)),
        ("rmdir", moved(lambda: os.rmdir(f"{e}/sub"), e)),
    ]


def test_times_like_local(ldir: str, mdir: str) -> None:
    mounted = script(mdir)
    assert mounted == script(ldir)
    assert ("create", ["-mc"]) in mounted  # the directory's times did move (not '---' on both)


def test_explicit_dir_times_after_filling_it_stay(ldir: str, mdir: str) -> None:
    """tar and cp -a set a directory's times after creating its files: a late touch must not undo that."""
    for b in (ldir, mdir):
        os.mkdir(f"{b}/t")
        for i in range(20):
            create(f"{b}/t/f{i}")
        os.utime(f"{b}/t", ns=(1_000_000_000, 2_000_000_000))
    time.sleep(0.3)  # longer than any touch the mount could still have pending
    assert times(f"{mdir}/t")[:2] == times(f"{ldir}/t")[:2] == (1_000_000_000, 2_000_000_000)


def test_dir_times_through_the_library(mnt: Any, fuse_cluster: Any) -> None:
    """The library client: its own stat of a directory sees the times its creates moved."""
    os.mkdir(f"{mnt.mountpoint}/libtimes")
    with Client(str(fuse_cluster.config["dir_server"]), creds=Creds(0, 0)) as c:
        t0 = c.stat("/libtimes").st_mtime_ns
        time.sleep(TICK_S)
        c.write_bytes("/libtimes/f", b"x")
        t1 = c.stat("/libtimes")
        assert t1.st_mtime_ns > t0 and t1.st_ctime_ns == t1.st_mtime_ns
        time.sleep(TICK_S)
        c.unlink("/libtimes/f")
        assert c.stat("/libtimes").st_mtime_ns > t1.st_mtime_ns
