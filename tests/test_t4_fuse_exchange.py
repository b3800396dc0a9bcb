"""renameat2(RENAME_EXCHANGE) through a real mount, compared with a local directory.

Two files (in one directory, and in two: across shards for some of the
names), two directories, a file and a directory either way round, special
files and symlinks swap names atomically; the errors are Linux's (ENOENT,
EINVAL for NOREPLACE|EXCHANGE and for a directory into its own subtree,
EACCES/EPERM for permissions and sticky directories).
"""
from __future__ import annotations

import ctypes
import errno
import os
from typing import Any, Callable

from fuse_helpers import as_user, fuse_cluster, ldir, mdir, mnt, mount_factory, mount_root  # noqa: F401

from superfs.client.meta import Creds
from superfs.client.sync import Client

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
Steps = list[tuple[str, Callable[[str], Any]]]


def exchange(a: str, b: str, flags: int = RENAME_EXCHANGE) -> None:
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), a)


def outcomes(base: str, steps: Steps) -> list[tuple[str, str, Any]]:
    out = []
    for label, step in steps:
        try:
            out.append((label, "ok", step(base)))
        except OSError as e:
            out.append((label, errno.errorcode.get(e.errno or 0, str(e.errno)), None))
    return out


def put(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def get(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def tree(b: str) -> list[Any]:
    """Every name with its type and content (files) or entries (directories), and link counts."""
    out = []
    for top, dirs, files in os.walk(b):
        rel = os.path.relpath(top, b)
        out.append((rel, sorted(dirs), os.stat(top).st_nlink))
        for f in sorted(files):
            p = os.path.join(top, f)
            out.append((rel, f, os.readlink(p) if os.path.islink(p) else
                        get(p) if os.path.isfile(p) else oct(os.lstat(p).st_mode)))
    return sorted(out, key=repr)


def setup(b: str) -> None:
    for d in ("p1", "p2", "p1/da", "p1/da/deep", "p2/db"):
        os.mkdir(f"{b}/{d}")
    for i in range(6):  # several names: some pairs live on one shard, some on two
        put(f"{b}/p1/f{i}", b"one %d" % i)
        put(f"{b}/p2/g{i}", b"two %d" % i)
    put(f"{b}/p1/da/inside", b"in da")
    os.mkfifo(f"{b}/p2/fifo")
    os.symlink("p1/f0", f"{b}/p2/link")


def test_exchange_like_local(ldir: str, mdir: str) -> None:
    steps: Steps = [("setup", setup)]
    steps += [(f"files {i}", lambda b, i=i: exchange(f"{b}/p1/f{i}", f"{b}/p2/g{i}")) for i in range(6)]
    steps += [
        ("same dir", lambda b: exchange(f"{b}/p1/f0", f"{b}/p1/f1")),
        ("with itself", lambda b: exchange(f"{b}/p1/f2", f"{b}/p1/f2")),
        ("dirs", lambda b: exchange(f"{b}/p1/da", f"{b}/p2/db")),
        ("dir and file", lambda b: exchange(f"{b}/p1/da", f"{b}/p2/g3")),
        ("file and dir", lambda b: exchange(f"{b}/p1/da", f"{b}/p2/g3")),
        ("fifo and symlink", lambda b: exchange(f"{b}/p2/fifo", f"{b}/p2/link")),
        ("dir and fifo", lambda b: exchange(f"{b}/p2/da", f"{b}/p2/link")),
        ("missing source", lambda b: exchange(f"{b}/p1/nope", f"{b}/p2/g4")),
        ("missing target", lambda b: exchange(f"{b}/p1/f4", f"{b}/p2/nope")),
        ("with noreplace", lambda b: exchange(f"{b}/p1/f4", f"{b}/p2/g4", RENAME_EXCHANGE | RENAME_NOREPLACE)),
        ("into own subtree", lambda b: exchange(f"{b}/p2/db", f"{b}/p2/db/deep")),
        ("parent into child", lambda b: exchange(f"{b}/p2", f"{b}/p2/db/deep")),
        ("read back", lambda b: (get(f"{b}/p1/f0"), get(f"{b}/p2/g5"), os.readlink(f"{b}/p2/fifo"))),
        ("tree", tree),
    ]
    assert outcomes(mdir, steps) == outcomes(ldir, steps)


def test_exchange_permissions_like_local(ldir: str, mdir: str) -> None:
    def setup_perms(b: str) -> None:
        os.chmod(b, 0o755)
        os.mkdir(f"{b}/open", 0o777)
        os.chmod(f"{b}/open", 0o777)
        os.mkdir(f"{b}/sticky", 0o777)
        os.chmod(f"{b}/sticky", 0o1777)
        put(f"{b}/roots", b"r")
        for d in ("open", "sticky"):
            put(f"{b}/{d}/roots", b"r")
        os.mkdir(f"{b}/open/rootdir", 0o755)

    steps: Steps = [
        ("setup", setup_perms),
        ("user makes files", lambda b: [as_user(put, f"{b}/{d}/users", b"u") for d in ("open", "sticky")]),
        ("no write on a parent", lambda b: as_user(exchange, f"{b}/open/users", f"{b}/roots")),
        ("writable parents", lambda b: as_user(exchange, f"{b}/open/users", f"{b}/open/roots")),
        ("sticky, not the owner", lambda b: as_user(exchange, f"{b}/sticky/users", f"{b}/sticky/roots")),
        ("dir to another parent, no write on it", lambda b: as_user(exchange, f"{b}/open/rootdir",
                                                                    f"{b}/sticky/users")),
        ("root may", lambda b: exchange(f"{b}/sticky/users", f"{b}/sticky/roots")),
        ("tree", tree),
    ]
    assert outcomes(mdir, steps) == outcomes(ldir, steps)


def test_exchange_through_the_library(mnt: Any, fuse_cluster: Any) -> None:
    os.makedirs(f"{mnt.mountpoint}/libx/d")
    put(f"{mnt.mountpoint}/libx/f", b"file")
    with Client(str(fuse_cluster.config["dir_server"]), creds=Creds(0, 0)) as c:
        c.rename("/libx/f", "/libx/d", flags=RENAME_EXCHANGE)
        assert c.read_bytes("/libx/d") == b"file" and c.isdir("/libx/f")
        c.write_bytes("/libx/g", b"g")
        c.rename("/libx/d", "/libx/g", flags=RENAME_EXCHANGE)
        assert (c.read_bytes("/libx/d"), c.read_bytes("/libx/g")) == (b"g", b"file")
        assert sorted(c.listdir("/libx")) == ["d", "f", "g"]
