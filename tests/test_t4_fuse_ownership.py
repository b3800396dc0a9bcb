"""Ownership and permissions through a real mount, as ``superfs up --mount`` makes it.

Each script runs on a local directory and on a mount made with no option but
the cluster's address, and the outcomes must be equal: a directory chowned
to a user is that user's at once (through one long-lived mount, and through
another mount once the kernel's attribute timeout passed, however long the
client's lease on the directory), chown by a non-owner is EPERM, setuid and
setgid are dropped on chown and on a non-owner's write, setgid directories
pass on their group, supplementary groups count, O_CREAT/O_TRUNC follow
open(2), and sticky directories protect other users' names.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from typing import Any, Callable, Iterator

import pytest
from fuse_helpers import (OTHER_GID, OTHER_UID, MountProcess, as_user, fuse_cluster, ldir,  # noqa: F401
                          mount_factory, mount_root)

from superfs.client.meta import Creds
from superfs.client.sync import Client

Steps = list[tuple[str, Callable[[str], Any]]]
U, G = OTHER_UID, OTHER_GID


@pytest.fixture(scope="module")
def dmnt(mount_factory: Callable[..., MountProcess]) -> MountProcess:
    """A mount with the defaults (no --allow-other: root mounts are for every user)."""
    return mount_factory("defaults", defaults=True)


@pytest.fixture
def ddir(dmnt: MountProcess, request: pytest.FixtureRequest) -> Iterator[str]:
    path = os.path.join(dmnt.mountpoint, request.node.name[:100])
    os.mkdir(path)
    os.chmod(path, 0o755)
    yield path


def outcomes(base: str, steps: Steps) -> list[tuple[str, str, Any]]:
    out = []
    for label, step in steps:
        try:
            out.append((label, "ok", step(base)))
        except OSError as e:
            out.append((label, errno.errorcode.get(e.errno or 0, str(e.errno)), None))
    return out


def same_as_local(ldir: str, mdir: str, steps: Steps) -> list[tuple[str, str, Any]]:
    os.chmod(ldir, 0o755)
    local = outcomes(ldir, steps)
    mounted = outcomes(mdir, steps)
    assert mounted == local
    return mounted


def create(path: str, mode: int = 0o644, flags: int = os.O_WRONLY | os.O_CREAT) -> None:
    os.close(os.open(path, flags, mode))


def put(path: str, data: bytes, flags: int = os.O_WRONLY) -> int:
    fd = os.open(path, flags)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def owner(path: str) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def user(fn: Callable[..., Any], *args: Any, groups: tuple[int, ...] = ()) -> tuple[str, Any]:
    return as_user(fn, *args, groups=groups)


# ------------------------------------------------------- chowned directories

def _use_chowned_dir(b: str) -> list[tuple[str, Any]]:
    """What the new owner of a directory does in it."""
    return [user(create, f"{b}/x"), user(os.mkdir, f"{b}/d", 0o755), user(os.rename, f"{b}/x", f"{b}/y"),
            user(os.chmod, f"{b}/y", 0o600), user(create, f"{b}/z", 0o644, os.O_RDWR | os.O_CREAT),
            user(os.symlink, "y", f"{b}/l"), user(os.link, f"{b}/y", f"{b}/h"), user(os.mkfifo, f"{b}/p"),
            user(os.unlink, f"{b}/h"), user(os.rename, f"{b}/d", f"{b}/e"), user(os.rmdir, f"{b}/e"),
            user(os.chmod, b, 0o700), user(lambda p: sorted(os.listdir(p)), b)]


def test_chowned_dir_is_its_owners_at_once(ldir: str, ddir: str) -> None:
    """The issue's case: root chowns a directory; its new owner works in it through the same mount."""
    def script(b: str) -> list[Any]:
        os.mkdir(f"{b}/b", 0o755)
        before = [user(os.listdir, f"{b}/b"), user(create, f"{b}/b/x")]  # warms every cache as the user
        os.chown(f"{b}/b", U, G)
        return before + _use_chowned_dir(f"{b}/b")

    os.chmod(ldir, 0o755)
    mounted = script(ddir)
    assert mounted == script(ldir)
    assert mounted[1] == ("EACCES", None) and mounted[2] == ("ok", None)


def test_chmod_of_dir_by_its_owner_through_the_mount(ldir: str, ddir: str) -> None:
    """A user's own chmod of a directory lets them in at once (the mount's caches follow its own changes)."""
    def script(b: str) -> list[Any]:
        os.mkdir(f"{b}/m", 0o755)
        os.chown(f"{b}/m", U, G)
        return [user(os.chmod, f"{b}/m", 0o500), user(create, f"{b}/m/x"), user(os.chmod, f"{b}/m", 0o700),
                user(create, f"{b}/m/x"), user(os.chmod, f"{b}/m", 0o600), user(os.stat, f"{b}/m/x")[0],
                user(os.chmod, f"{b}/m", 0o755), user(lambda p: sorted(os.listdir(p)), f"{b}/m")]

    os.chmod(ldir, 0o755)
    assert script(ddir) == script(ldir)


@pytest.mark.parametrize("timeouts", [["--attr-timeout", "0", "--entry-timeout", "0"], []],
                         ids=["no-kernel-cache", "kernel-cache"])
def test_chowned_dir_through_two_mounts(mount_factory: Callable[..., MountProcess], dmnt: MountProcess,
                                        timeouts: list[str], request: pytest.FixtureRequest) -> None:
    """Chowned through one mount, written by its new owner through another that had refused it.

    With the kernel's caches off the other mount must allow it at once; with
    them (1 s by default) once they expired, well before the client's 5 s
    lease on the directory ends."""
    other = mount_factory(f"other-{request.node.callspec.id}", timeouts, defaults=True)
    name = f"two-{request.node.callspec.id}"
    here, there = f"{dmnt.mountpoint}/{name}", f"{other.mountpoint}/{name}"
    os.mkdir(here, 0o755)
    assert user(create, f"{there}/x") == ("EACCES", None)  # the other mount caches root's directory
    os.chown(here, U, G)
    if timeouts == []:
        time.sleep(1.5)  # the kernel's attribute and entry timeouts (1 s), not the lease (5 s)
    assert user(create, f"{there}/x") == ("ok", None)
    assert user(os.mkdir, f"{there}/d") == ("ok", None)
    assert user(os.rename, f"{there}/x", f"{there}/d/x") == ("ok", None)
    assert owner(f"{here}/d/x")[:2] == (U, G)


def test_chowned_dir_through_a_long_lived_library_client(fuse_cluster: Any, dmnt: MountProcess) -> None:
    """The library: a client that cached the directory (and a capability without W) before the chown."""
    os.mkdir(f"{dmnt.mountpoint}/lib", 0o755)
    address = str(fuse_cluster.config["dir_server"])
    with Client(address, creds=Creds(U, G, (G,))) as c:
        with pytest.raises(PermissionError):
            c.write_bytes("/lib/x", b"no")
        os.chown(f"{dmnt.mountpoint}/lib", U, G)  # through the mount, another client
        c.write_bytes("/lib/x", b"yes")
        c.mkdir("/lib/d")
        c.rename("/lib/x", "/lib/d/x")
        assert c.read_bytes("/lib/d/x") == b"yes"


# ----------------------------------------------------------------- chown

def test_chown_by_non_owner_is_eperm(ldir: str, ddir: str) -> None:
    def setup(b: str) -> None:
        create(f"{b}/f")
        os.mkdir(f"{b}/d")
        os.symlink("f", f"{b}/l")
        create(f"{b}/mine")
        os.chown(f"{b}/mine", U, G)

    same_as_local(ldir, ddir, [
        ("setup", setup),
        ("chown file", lambda b: user(os.chown, f"{b}/f", U, G)),
        ("chown dir", lambda b: user(os.chown, f"{b}/d", U, -1)),
        ("chgrp file", lambda b: user(os.chown, f"{b}/f", -1, G)),
        ("lchown", lambda b: user(os.lchown, f"{b}/l", U, G)),
        ("chown to -1 -1", lambda b: user(os.chown, f"{b}/f", -1, -1)),
        ("give away own file", lambda b: user(os.chown, f"{b}/mine", 0, -1)),
        ("chgrp own file, foreign group", lambda b: user(os.chown, f"{b}/mine", -1, 4444)),
        ("chgrp own file, own group", lambda b: user(os.chown, f"{b}/mine", -1, G)),
        ("owners", lambda b: [owner(f"{b}/{n}")[:2] for n in ("f", "d", "mine")]),
    ])


def test_setid_bits_dropped_on_chown_and_write(ldir: str, ddir: str) -> None:
    def make(b: str, name: str, mode: int) -> tuple[int, int, int]:
        create(f"{b}/{name}", 0o777)
        os.chmod(f"{b}/{name}", mode)
        return owner(f"{b}/{name}")

    same_as_local(ldir, ddir, [
        ("suid", lambda b: make(b, "u", 0o4777)),
        ("chown by root", lambda b: (os.chown(f"{b}/u", U, G), owner(f"{b}/u"))),
        ("sgid+x", lambda b: make(b, "g", 0o2777)),
        ("chgrp", lambda b: (os.chown(f"{b}/g", -1, G), owner(f"{b}/g"))),
        ("sgid no x", lambda b: make(b, "gn", 0o2767)),
        ("chown keeps non-x sgid", lambda b: (os.chown(f"{b}/gn", U, -1), owner(f"{b}/gn"))),
        ("both", lambda b: make(b, "w", 0o6777)),
        ("write by non-owner", lambda b: user(put, f"{b}/w", b"x")),
        ("after write", lambda b: owner(f"{b}/w")),
        ("suid, sgid without x", lambda b: make(b, "nx", 0o6767)),
        ("write by non-owner keeps sgid", lambda b: (user(put, f"{b}/nx", b"x"), owner(f"{b}/nx"))),
        ("both again", lambda b: make(b, "r", 0o6777)),
        ("write by root keeps", lambda b: (put(f"{b}/r", b"x"), owner(f"{b}/r"))),
        ("truncate by non-owner", lambda b: (make(b, "t", 0o4777), user(os.truncate, f"{b}/t", 0),
                                             owner(f"{b}/t"))),
    ])


# ------------------------------------------------------------- setgid dirs

def test_setgid_directory_passes_on_its_group(ldir: str, ddir: str) -> None:
    def setup(b: str) -> None:
        os.mkdir(f"{b}/s", 0o777)
        os.chown(f"{b}/s", 0, 4444)
        os.chmod(f"{b}/s", 0o2777)

    same_as_local(ldir, ddir, [
        ("setup", setup),
        ("file by root", lambda b: (create(f"{b}/s/rf"), owner(f"{b}/s/rf"))),
        ("file by user", lambda b: (user(create, f"{b}/s/uf", 0o2755), owner(f"{b}/s/uf"))),
        ("member keeps sgid", lambda b: (user(create, f"{b}/s/mf", 0o2755, groups=(4444,)), owner(f"{b}/s/mf"))),
        ("subdir", lambda b: (user(os.mkdir, f"{b}/s/d", 0o755), owner(f"{b}/s/d"))),
        ("in subdir", lambda b: (user(create, f"{b}/s/d/f"), owner(f"{b}/s/d/f"))),
        ("fifo", lambda b: (user(os.mkfifo, f"{b}/s/p"), owner(f"{b}/s/p"))),
        ("symlink", lambda b: (user(os.symlink, "x", f"{b}/s/l"), owner(f"{b}/s/l")[:2])),
        ("not setgid", lambda b: (os.chmod(f"{b}/s", 0o777), user(create, f"{b}/s/n"), owner(f"{b}/s/n"))),
    ])


def test_setgid_directory_through_the_library(fuse_cluster: Any, dmnt: MountProcess) -> None:
    d = f"{dmnt.mountpoint}/sgidlib"
    os.mkdir(d)
    os.chown(d, 0, 4444)
    os.chmod(d, 0o2777)
    with Client(str(fuse_cluster.config["dir_server"]), creds=Creds(U, G)) as c:
        c.write_bytes("/sgidlib/f", b"x")
        c.mkdir("/sgidlib/sub")
        assert (c.stat("/sgidlib/f").st_gid, c.stat("/sgidlib/sub").st_gid) == (4444, 4444)
        assert c.stat("/sgidlib/sub").st_mode & stat.S_ISGID


# ---------------------------------------------------- supplementary groups

def test_supplementary_groups(ldir: str, ddir: str) -> None:
    def setup(b: str) -> None:
        os.mkdir(f"{b}/g", 0o770)
        os.chown(f"{b}/g", 0, 4444)
        os.chmod(f"{b}/g", 0o770)
        create(f"{b}/gf", 0o660)
        os.chown(f"{b}/gf", 0, 5555)
        os.chmod(f"{b}/gf", 0o660)

    same_as_local(ldir, ddir, [
        ("setup", setup),
        ("not a member", lambda b: user(create, f"{b}/g/x")),
        ("member", lambda b: user(create, f"{b}/g/x", groups=(4444,))),
        ("second group", lambda b: user(create, f"{b}/g/y", groups=(7, 4444))),
        ("list as member", lambda b: user(os.listdir, f"{b}/g", groups=(4444,))),
        ("write by group", lambda b: user(put, f"{b}/gf", b"g", groups=(5555,))),
        ("write by other", lambda b: user(put, f"{b}/gf", b"g")),
        ("chgrp to a group of mine", lambda b: user(os.chown, f"{b}/g/x", -1, 4444, groups=(4444,))),
        ("chgrp to another of mine", lambda b: user(os.chown, f"{b}/g/x", -1, 7, groups=(7, 4444))),
        ("chgrp to one not mine", lambda b: user(os.chown, f"{b}/g/x", -1, 5555, groups=(4444,))),
        ("owners", lambda b: owner(f"{b}/g/x")),
    ])


# ------------------------------------------------------ O_CREAT / O_TRUNC

def test_open_creat_and_trunc_rules(ldir: str, ddir: str) -> None:
    def setup(b: str) -> None:
        os.mkdir(f"{b}/ro", 0o755)
        create(f"{b}/ro/mine", 0o666)
        os.chmod(f"{b}/ro/mine", 0o666)
        os.chown(f"{b}/ro/mine", U, G)
        create(f"{b}/ro/theirs", 0o644)
        put(f"{b}/ro/theirs", b"keep")

    same_as_local(ldir, ddir, [
        ("setup", setup),
        ("O_CREAT of existing in unwritable dir", lambda b: user(create, f"{b}/ro/mine", 0o600,
                                                                 os.O_WRONLY | os.O_CREAT)),
        ("O_CREAT of new in unwritable dir", lambda b: user(create, f"{b}/ro/new")),
        ("O_CREAT|O_EXCL of existing", lambda b: user(create, f"{b}/ro/mine", 0o600,
                                                      os.O_WRONLY | os.O_CREAT | os.O_EXCL)),
        ("O_TRUNC without write", lambda b: user(create, f"{b}/ro/theirs", 0o644, os.O_RDONLY | os.O_TRUNC)),
        ("O_TRUNC|O_WRONLY without write", lambda b: user(create, f"{b}/ro/theirs", 0o644,
                                                          os.O_WRONLY | os.O_TRUNC)),
        ("kept", lambda b: os.stat(f"{b}/ro/theirs").st_size),
        ("O_CREAT mode ignored for existing", lambda b: owner(f"{b}/ro/mine")),
        ("O_CREAT on a dir", lambda b: create(f"{b}/ro", 0o644, os.O_RDONLY | os.O_CREAT)),
        ("O_TRUNC by owner", lambda b: (create(f"{b}/ro/theirs", 0o644, os.O_WRONLY | os.O_TRUNC),
                                        os.stat(f"{b}/ro/theirs").st_size)),
    ])


# ---------------------------------------------------------------- sticky

def test_sticky_directory_rules(ldir: str, ddir: str) -> None:
    def setup(b: str) -> None:
        os.mkdir(f"{b}/t", 0o777)
        os.chmod(f"{b}/t", 0o1777)
        create(f"{b}/t/roots")
        os.mkdir(f"{b}/t/rootdir")

    same_as_local(ldir, ddir, [
        ("setup", setup),
        ("user's file", lambda b: user(create, f"{b}/t/users")),
        ("unlink root's", lambda b: user(os.unlink, f"{b}/t/roots")),
        ("rename root's", lambda b: user(os.rename, f"{b}/t/roots", f"{b}/t/moved")),
        ("rename over root's", lambda b: user(os.rename, f"{b}/t/users", f"{b}/t/roots")),
        ("rmdir root's", lambda b: user(os.rmdir, f"{b}/t/rootdir")),
        ("rename root's dir", lambda b: user(os.rename, f"{b}/t/rootdir", f"{b}/t/d2")),
        ("user's own", lambda b: user(os.rename, f"{b}/t/users", f"{b}/t/users2")),
        ("root removes user's", lambda b: os.unlink(f"{b}/t/users2")),
        ("dir owner removes", lambda b: (os.chown(f"{b}/t", U, G), user(os.unlink, f"{b}/t/roots"))),
        ("listing", lambda b: sorted(os.listdir(f"{b}/t"))),
    ])
