"""Special files through a real mount: FIFOs, sockets, character and block devices.

SuperFS stores them as metadata (type, mode, owner, times, device number);
the kernel makes them work. Every script runs on a local directory and on
the mount, and the outcomes (errno, types, modes, rdev) must be equal.
"""
from __future__ import annotations

import os
import socket
import stat
import threading
from typing import Any, Callable

from fuse_helpers import OTHER_GID, OTHER_UID, as_user, fuse_cluster, ldir, mdir, mnt, mount_factory, mount_root  # noqa: F401

from superfs.client.meta import Creds
from superfs.client.sync import Client

Steps = list[tuple[str, Callable[[str], Any]]]


def outcomes(base: str, steps: Steps) -> list[tuple[str, str, Any]]:
    import errno

    out = []
    for label, step in steps:
        try:
            out.append((label, "ok", step(base)))
        except OSError as e:
            out.append((label, errno.errorcode.get(e.errno or 0, str(e.errno)), None))
    return out


def kind(path: str) -> tuple[str, int, int]:
    """(type letter, permission bits, rdev) as ls -l shows them."""
    st = os.lstat(path)
    letter = {stat.S_IFIFO: "p", stat.S_IFSOCK: "s", stat.S_IFCHR: "c", stat.S_IFBLK: "b",
              stat.S_IFREG: "-", stat.S_IFDIR: "d", stat.S_IFLNK: "l"}[stat.S_IFMT(st.st_mode)]
    return letter, stat.S_IMODE(st.st_mode), st.st_rdev


def bind(path: str) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(path)
    finally:
        s.close()


def test_every_file_type_like_local(ldir: str, mdir: str) -> None:
    old = os.umask(0o022)
    try:
        steps: Steps = [
            ("mkfifo", lambda b: (os.mkfifo(f"{b}/fifo", 0o640), kind(f"{b}/fifo"))),
            ("mknod fifo", lambda b: (os.mknod(f"{b}/fifo2", stat.S_IFIFO | 0o777), kind(f"{b}/fifo2"))),
            ("mknod sock", lambda b: (os.mknod(f"{b}/sock", stat.S_IFSOCK | 0o600), kind(f"{b}/sock"))),
            ("bind", lambda b: (bind(f"{b}/bound"), kind(f"{b}/bound"))),
            ("char dev", lambda b: (os.mknod(f"{b}/chr", stat.S_IFCHR | 0o644, os.makedev(1, 3)), kind(f"{b}/chr"))),
            ("block dev", lambda b: (os.mknod(f"{b}/blk", stat.S_IFBLK | 0o600, os.makedev(7, 255)),
                                     kind(f"{b}/blk"))),
            ("regular", lambda b: (os.mknod(f"{b}/reg", stat.S_IFREG | 0o640), kind(f"{b}/reg"))),
            ("dev numbers", lambda b: (os.major(os.lstat(f"{b}/blk").st_rdev), os.minor(os.lstat(f"{b}/blk").st_rdev))),
            ("exists", lambda b: os.mkfifo(f"{b}/chr")),
            ("fifo over file", lambda b: os.mknod(f"{b}/reg", stat.S_IFIFO | 0o600)),
            ("in missing dir", lambda b: os.mkfifo(f"{b}/nodir/f")),
            ("chmod", lambda b: (os.chmod(f"{b}/fifo", 0o4711), kind(f"{b}/fifo"))),
            ("chown", lambda b: (os.chown(f"{b}/sock", 7, 8), os.lstat(f"{b}/sock").st_uid,
                                 os.lstat(f"{b}/sock").st_gid)),
            ("link", lambda b: (os.link(f"{b}/chr", f"{b}/chr2"), os.lstat(f"{b}/chr").st_nlink,
                                kind(f"{b}/chr2"))),
            ("rename", lambda b: (os.rename(f"{b}/fifo2", f"{b}/fifo3"), kind(f"{b}/fifo3"))),
            ("rename over", lambda b: (os.rename(f"{b}/fifo3", f"{b}/reg"), kind(f"{b}/reg"))),
            ("truncate fifo", lambda b: os.truncate(f"{b}/fifo", 0)),
            ("unlink", lambda b: [os.unlink(f"{b}/{n}") for n in ("chr", "blk", "bound")]),
            ("listing", lambda b: sorted(os.listdir(b))),
            ("types", lambda b: sorted((e.name, e.is_file(), e.is_dir(), e.is_symlink()) for e in os.scandir(b))),
        ]
        local = outcomes(ldir, steps)
        mounted = outcomes(mdir, steps)
    finally:
        os.umask(old)
    assert mounted == local
    assert ("char dev", "ok", (None, ("c", 0o644, os.makedev(1, 3)))) in mounted


def test_fifo_and_socket_work_through_the_mount(mdir: str) -> None:
    """The kernel runs them: a FIFO passes bytes, a bound socket accepts a connection."""
    os.mkfifo(f"{mdir}/pipe", 0o600)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(open(f"{mdir}/pipe", "rb").read()))
    reader.start()
    with open(f"{mdir}/pipe", "wb") as w:
        w.write(b"through the fifo")
    reader.join(30)
    assert got == [b"through the fifo"]

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(f"{mdir}/sock")
    server.listen(1)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(f"{mdir}/sock")
    conn, _ = server.accept()
    client.sendall(b"ping")
    assert conn.recv(4) == b"ping"
    for s in (conn, client, server):
        s.close()
    assert stat.S_ISSOCK(os.lstat(f"{mdir}/sock").st_mode)


def test_devices_are_root_only(ldir: str, mdir: str) -> None:
    for base in (ldir, mdir):
        os.chmod(base, 0o777)
    for base in (ldir, mdir):
        assert as_user(os.mknod, f"{base}/c", stat.S_IFCHR | 0o600, os.makedev(1, 3)) == ("EPERM", None)
        assert as_user(os.mkfifo, f"{base}/f", 0o600)[0] == "ok"
        assert (os.lstat(f"{base}/f").st_uid, os.lstat(f"{base}/f").st_gid) == (OTHER_UID, OTHER_GID)


def test_library_makes_special_files(mnt: Any, fuse_cluster: Any, mdir: str) -> None:
    """superfs.Client.mknod/mkfifo, seen through the mount; a user's device is refused by the shard."""
    base = "/" + os.path.basename(mdir)
    os.chmod(mdir, 0o777)
    address = str(fuse_cluster.config["dir_server"])
    with Client(address, creds=Creds(0, 0)) as c:
        c.mkfifo(f"{base}/lf", 0o640)
        c.mknod(f"{base}/lc", stat.S_IFCHR | 0o600, os.makedev(4, 5))
        assert stat.S_ISCHR(c.lstat(f"{base}/lc").st_mode) and c.lstat(f"{base}/lc").st_rdev == os.makedev(4, 5)
    with Client(address, creds=Creds(OTHER_UID, OTHER_GID)) as c:
        try:
            c.mknod(f"{base}/uc", stat.S_IFBLK | 0o600, 1)
            raise AssertionError("a user made a device")
        except PermissionError as e:
            assert e.errno == 1
        c.mknod(f"{base}/us", stat.S_IFSOCK | 0o600)
    assert kind(f"{mdir}/lf")[:2] == ("p", 0o640 & ~0o022)
    assert kind(f"{mdir}/lc") == ("c", 0o600, os.makedev(4, 5))
    assert kind(f"{mdir}/us")[0] == "s" and not os.path.exists(f"{mdir}/uc")
