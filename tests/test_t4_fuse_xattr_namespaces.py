"""Extended attribute namespaces through a real mount and the library, as Linux has them.

``user.*`` needs read/write permission and a regular file or directory;
``trusted.*`` is root's (EPERM to change, ENODATA to read, hidden from
listings); ``security.*`` is read by anyone and changed by root; other
prefixes are EOPNOTSUPP. Each script runs on a local directory (ext4 or
whatever /tmp is) and on the mount, as root and as another user.
"""
from __future__ import annotations

import errno
import os
from typing import Any, Callable

import pytest
from fuse_helpers import OTHER_GID, OTHER_UID, as_user, fuse_cluster, ldir, mdir, mnt, mount_factory, mount_root  # noqa: F401

from superfs.client.meta import Creds
from superfs.client.sync import Client

Steps = list[tuple[str, Callable[[str], Any]]]


def outcomes(base: str, steps: Steps) -> list[tuple[str, str, Any]]:
    out = []
    for label, step in steps:
        try:
            out.append((label, "ok", step(base)))
        except OSError as e:
            out.append((label, errno.errorcode.get(e.errno or 0, str(e.errno)), None))
    return out


def local_supports_namespaces(path: str) -> bool:
    try:
        for name in ("user.probe", "trusted.probe", "security.probe"):
            os.setxattr(path, name, b"1")
            os.removexattr(path, name)
        return True
    except OSError:
        return False


def setup(b: str) -> None:
    os.chmod(b, 0o755)
    for name, mode in (("open", 0o666), ("mine", 0o644), ("closed", 0o600)):
        os.close(os.open(f"{b}/{name}", os.O_CREAT | os.O_WRONLY, mode))
        os.chmod(f"{b}/{name}", mode)
    os.chown(f"{b}/mine", OTHER_UID, OTHER_GID)
    os.mkdir(f"{b}/d", 0o777)
    os.chmod(f"{b}/d", 0o777)
    os.mkdir(f"{b}/sticky", 0o777)
    os.chmod(f"{b}/sticky", 0o1777)
    os.mkfifo(f"{b}/fifo", 0o666)
    os.chmod(f"{b}/fifo", 0o666)
    for name in ("user.u", "trusted.t", "security.s"):
        os.setxattr(f"{b}/closed", name, b"v")


def user(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    return as_user(fn, *args)


def test_namespaces_like_local(ldir: str, mdir: str) -> None:
    if not local_supports_namespaces(ldir):
        pytest.skip(f"{ldir} does not store user.*, trusted.* and security.* attributes")
    steps: Steps = [
        ("setup", setup),
        ("root trusted", lambda b: (os.setxattr(f"{b}/open", "trusted.r", b"1"), os.getxattr(f"{b}/open", "trusted.r"))),
        ("root security", lambda b: (os.setxattr(f"{b}/open", "security.r", b"2"),
                                     os.getxattr(f"{b}/open", "security.r"))),
        ("root on a dir", lambda b: [os.setxattr(f"{b}/d", n, b"3") for n in ("user.d", "trusted.d", "security.d")]),
        ("unknown prefix", lambda b: os.setxattr(f"{b}/open", "nosuch.x", b"1")),
        ("user: set trusted", lambda b: user(os.setxattr, f"{b}/open", "trusted.x", b"1")),
        ("user: get trusted", lambda b: user(os.getxattr, f"{b}/open", "trusted.r")),
        ("user: remove trusted", lambda b: user(os.removexattr, f"{b}/open", "trusted.r")),
        ("user: set security", lambda b: user(os.setxattr, f"{b}/mine", "security.x", b"1")),
        ("user: get security", lambda b: user(os.getxattr, f"{b}/open", "security.r")),
        ("user: get security, no read", lambda b: user(os.getxattr, f"{b}/closed", "security.s")),
        ("user: list, no read", lambda b: user(lambda p: sorted(os.listxattr(p)), f"{b}/closed")),
        ("root: list", lambda b: sorted(os.listxattr(f"{b}/closed"))),
        ("user: get user, no read", lambda b: user(os.getxattr, f"{b}/closed", "user.u")),
        ("user: set user on writable", lambda b: user(os.setxattr, f"{b}/open", "user.w", b"1")),
        ("user: set user on own read-only", lambda b: (os.chmod(f"{b}/mine", 0o444),
                                                      user(os.setxattr, f"{b}/mine", "user.w", b"1"))),
        ("user: set user on dir", lambda b: user(os.setxattr, f"{b}/d", "user.w", b"1")),
        ("user: set user on root's sticky dir", lambda b: user(os.setxattr, f"{b}/sticky", "user.w", b"1")),
        ("user: set user on fifo", lambda b: user(os.setxattr, f"{b}/fifo", "user.w", b"1")),
        ("root: set user on fifo", lambda b: os.setxattr(f"{b}/fifo", "user.w", b"1")),
        ("root: get user on fifo", lambda b: os.getxattr(f"{b}/fifo", "user.w")),
        ("user: dir listing", lambda b: user(lambda p: sorted(os.listxattr(p)), f"{b}/d")),
        ("remove", lambda b: [os.removexattr(f"{b}/d", n) for n in ("user.d", "trusted.d", "security.d")]),
    ]
    os.chmod(ldir, 0o755)
    assert outcomes(mdir, steps) == outcomes(ldir, steps)


def test_security_capability_follows_setcap(mdir: str) -> None:
    """security.capability is stored (setcap works), and the mount's memory of it for open
    files (the kernel asks before every write) follows its changes."""
    f = f"{mdir}/prog"
    fd = os.open(f, os.O_CREAT | os.O_RDWR, 0o755)
    try:
        for i in range(20):
            os.write(fd, b"x" * 100)  # each write asks; only the first goes to the shard
        # a valid v2 capability set (cap_net_bind_service=ep), as setcap writes it
        caps = bytes.fromhex("0100000200040000000000000000000000000000")
        os.setxattr(f, "security.capability", caps)
        assert os.getxattr(f, "security.capability") == caps
        os.write(fd, b"y")  # a write drops file capabilities (the kernel removes them, as on ext4)
        with pytest.raises(OSError) as ei:
            os.getxattr(f, "security.capability")
        assert ei.value.errno == errno.ENODATA
        os.setxattr(f, "security.capability", caps)
        os.removexattr(f, "security.capability")
        with pytest.raises(OSError) as ei:
            os.getxattr(f, "security.capability")
        assert ei.value.errno == errno.ENODATA
    finally:
        os.close(fd)


def test_trusted_is_roots_through_the_library(mnt: Any, fuse_cluster: Any) -> None:
    """The servers refuse what the kernel would: a library client cannot skip the kernel's checks."""
    d = f"{mnt.mountpoint}/libxattr"
    os.mkdir(d)
    os.chmod(d, 0o777)
    with open(f"{d}/f", "wb"):
        pass
    os.chmod(f"{d}/f", 0o666)
    os.setxattr(f"{d}/f", "trusted.t", b"t")
    address = str(fuse_cluster.config["dir_server"])
    with Client(address, creds=Creds(OTHER_UID, OTHER_GID)) as c:
        for name, path, want in [("trusted.x", "/libxattr/f", errno.EPERM), ("security.x", "/libxattr/f", errno.EPERM),
                                 ("trusted.x", "/libxattr", errno.EPERM), ("odd.x", "/libxattr/f", errno.EOPNOTSUPP)]:
            with pytest.raises(OSError) as ei:
                c.setxattr(path, name, b"1")
            assert ei.value.errno == want, name
        with pytest.raises(OSError) as ei:
            c.getxattr("/libxattr/f", "trusted.t")
        assert ei.value.errno == errno.ENODATA
        assert c.listxattr("/libxattr/f") == []
        c.setxattr("/libxattr/f", "user.ok", b"1")  # write permission is enough for user.*
    with Client(address, creds=Creds(0, 0)) as c:
        assert sorted(c.listxattr("/libxattr/f")) == ["trusted.t", "user.ok"]
