"""POSIX conformance through a real mount, in the spirit of pjdfstest.

For each operation: its success cases and the errno of each failure case.
Where Linux's local behaviour is the reference, the same script runs on a
local directory and on the mount and the outcomes must be equal; where
SuperFS deliberately differs the expected errno is asserted directly.
Special files, ownership and times have their own files (test_t4_fuse_*). Permission cases run as another uid in a forked child.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest
from fuse_helpers import (FUSE_CHUNK, FUSE_INLINE, OTHER_GID, OTHER_UID, as_user, fuse_cluster,  # noqa: F401
                          ldir, mdir, mnt, mount_factory, mount_root, outcome)

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def renameat2(src: str, dst: str, flags: int) -> None:
    if libc.renameat2(AT_FDCWD, src.encode(), AT_FDCWD, dst.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), src)


def utimensat(path: str, atime: tuple[int, int], mtime: tuple[int, int]) -> None:
    ts = (Timespec * 2)(Timespec(*atime), Timespec(*mtime))
    if libc.utimensat(AT_FDCWD, path.encode(), ts, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)


def script_outcomes(base: str, steps: list[tuple[str, Callable[[str], Any]]]) -> list[tuple[str, Any]]:
    """Run each step on ``base``; record ('ok', value) or (errno name, None)."""
    out = []
    for label, step in steps:
        try:
            out.append((label, "ok", step(base)))
        except OSError as e:
            out.append((label, errno.errorcode.get(e.errno or 0, str(e.errno)), None))
    return out


def same_as_local(ldir: str, mdir: str, steps: list[tuple[str, Callable[[str], Any]]]) -> None:
    local = script_outcomes(ldir, steps)
    mounted = script_outcomes(mdir, steps)
    assert mounted == local


def write(path: str, data: bytes, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode: int = 0o644) -> int:
    fd = os.open(path, flags, mode)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def perm(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# ------------------------------------------------------------------ open/create

def test_open_and_create(ldir: str, mdir: str) -> None:
    long = "n" * 256
    same_as_local(ldir, mdir, [
        ("create", lambda b: write(f"{b}/f", b"hello")),
        ("excl on existing", lambda b: os.close(os.open(f"{b}/f", os.O_CREAT | os.O_EXCL | os.O_WRONLY))),
        ("open missing", lambda b: os.close(os.open(f"{b}/missing", os.O_RDONLY))),
        ("create in missing dir", lambda b: os.close(os.open(f"{b}/nodir/f", os.O_CREAT | os.O_WRONLY))),
        ("file as dir", lambda b: os.close(os.open(f"{b}/f/x", os.O_CREAT | os.O_WRONLY))),
        ("name too long", lambda b: os.close(os.open(f"{b}/{long}", os.O_CREAT | os.O_WRONLY))),
        ("name of 255", lambda b: write(f"{b}/{'m' * 255}", b"x")),
        ("dir for writing", lambda b: (os.mkdir(f"{b}/d"), os.open(f"{b}/d", os.O_WRONLY))),
        ("dir for reading", lambda b: os.close(os.open(f"{b}/d", os.O_RDONLY))),
        ("O_TRUNC", lambda b: (write(f"{b}/f", b"", os.O_WRONLY | os.O_TRUNC), os.stat(f"{b}/f").st_size)),
        ("O_APPEND", lambda b: (write(f"{b}/f", b"ab", os.O_WRONLY | os.O_APPEND),
                               write(f"{b}/f", b"cd", os.O_WRONLY | os.O_APPEND), read(f"{b}/f"))),
        ("mode after umask", lambda b: (write(f"{b}/m", b"", mode=0o777), perm(f"{b}/m"))),
        ("O_EXCL new", lambda b: os.close(os.open(f"{b}/e", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))),
        ("mode 0600", lambda b: perm(f"{b}/e")),
        ("O_DIRECTORY on file", lambda b: os.close(os.open(f"{b}/f", os.O_RDONLY | os.O_DIRECTORY))),
        ("listing", lambda b: sorted(os.listdir(b))),
    ])


# ----------------------------------------------------------------- read/write

@pytest.mark.parametrize("size", [0, 1, 4096, FUSE_INLINE, FUSE_INLINE + 1, FUSE_CHUNK - 1, FUSE_CHUNK + 1,
                                  3 * FUSE_CHUNK + 12345])
def test_write_read_sizes(mdir: str, size: int) -> None:
    data = os.urandom(size)
    assert write(f"{mdir}/f", data) == size
    assert os.stat(f"{mdir}/f").st_size == size
    assert read(f"{mdir}/f") == data


def test_random_io_matches_local(ldir: str, mdir: str) -> None:
    """pwrite/pread at scattered offsets, holes, overwrites across chunk boundaries."""
    import random

    rng = random.Random(7)
    ops = []
    for _ in range(60):
        off = rng.randrange(0, 3 * FUSE_CHUNK)
        ops.append((off, bytes([rng.randrange(256)]) * rng.randrange(1, 70000)))
    results = []
    for base in (ldir, mdir):
        fd = os.open(f"{base}/r", os.O_RDWR | os.O_CREAT, 0o644)
        got = []
        for off, data in ops:
            os.pwrite(fd, data, off)
            got.append(hashlib.sha256(os.pread(fd, 5000, max(0, off - 100))).hexdigest())
        got.append(os.fstat(fd).st_size)
        os.close(fd)
        got.append(hashlib.sha256(read(f"{base}/r")).hexdigest())
        results.append(got)
    assert results[1] == results[0]


def test_hole_reads_zeros(mdir: str) -> None:
    fd = os.open(f"{mdir}/h", os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"end", 2 * FUSE_CHUNK + 10)
    os.close(fd)
    data = read(f"{mdir}/h")
    assert len(data) == 2 * FUSE_CHUNK + 13
    assert data[:-3] == bytes(2 * FUSE_CHUNK + 10) and data[-3:] == b"end"


def test_unclosed_writes_visible_to_stat_and_other_fd(mdir: str) -> None:
    """Buffered writes: stat and a second descriptor see them before close."""
    fd = os.open(f"{mdir}/w", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"x" * 10000)
    assert os.stat(f"{mdir}/w").st_size == 10000
    fd2 = os.open(f"{mdir}/w", os.O_RDONLY)
    assert os.read(fd2, 20000) == b"x" * 10000
    os.write(fd, b"y" * 5)
    assert os.pread(fd2, 10, 9998) == b"xxyyyyy"
    os.close(fd2)
    os.fsync(fd)
    os.close(fd)
    assert read(f"{mdir}/w") == b"x" * 10000 + b"y" * 5


def test_small_file_read_after_write(ldir: str, mdir: str) -> None:
    """Writes with gaps and overwrites, read back before and after close, across the inline threshold."""
    def script(base: str) -> list[bytes]:
        out = []
        fd = os.open(f"{base}/s", os.O_RDWR | os.O_CREAT, 0o644)
        os.pwrite(fd, b"abc", 100)
        out.append(os.pread(fd, 200, 0))
        os.pwrite(fd, b"XY", 1)
        fd2 = os.open(f"{base}/s", os.O_RDONLY)
        out.append(os.pread(fd2, 200, 0))
        os.close(fd)
        out.append(os.pread(fd2, 200, 50))
        os.close(fd2)
        fd = os.open(f"{base}/s", os.O_RDWR)
        os.pwrite(fd, b"z" * 10, FUSE_INLINE - 5)          # crosses the threshold: moves to chunks
        out.append(os.pread(fd, 30, FUSE_INLINE - 20))
        os.close(fd)
        out.append(read(f"{base}/s"))
        return out

    assert script(mdir) == script(ldir)


def test_sequential_large_file(mdir: str) -> None:
    """Streams in big requests, read back sequentially (read-ahead) and at random."""
    block = os.urandom(1 << 20)
    with open(f"{mdir}/big", "wb") as f:
        for i in range(8):
            f.write(block[i:] + block[:i])
    h = hashlib.sha256()
    with open(f"{mdir}/big", "rb") as f:
        while chunk := f.read(1 << 17):
            h.update(chunk)
    expect = hashlib.sha256(b"".join(block[i:] + block[:i] for i in range(8))).hexdigest()
    assert h.hexdigest() == expect
    with open(f"{mdir}/big", "rb") as f:
        f.seek(5 * (1 << 20) + 3)
        assert f.read(100) == (block[5:] + block[:5])[3:103]


# ------------------------------------------------------------------- truncate

def test_truncate(ldir: str, mdir: str) -> None:
    same_as_local(ldir, mdir, [
        ("make", lambda b: write(f"{b}/t", bytes(range(256)) * 100)),
        ("shrink", lambda b: (os.truncate(f"{b}/t", 1000), read(f"{b}/t") == (bytes(range(256)) * 4)[:1000])),
        ("grow past inline", lambda b: (os.truncate(f"{b}/t", FUSE_INLINE + 5000),
                                         read(f"{b}/t")[1000:] == bytes(FUSE_INLINE + 4000))),
        ("grow past chunk", lambda b: (os.truncate(f"{b}/t", 2 * FUSE_CHUNK), os.stat(f"{b}/t").st_size)),
        ("write then shrink", lambda b: (write(f"{b}/t", b"z" * 10, os.O_WRONLY), os.truncate(f"{b}/t", 5),
                                          read(f"{b}/t"))),
        ("ftruncate with buffered writes", lambda b: _ftrunc(f"{b}/t")),
        ("negative", lambda b: os.truncate(f"{b}/t", -1)),
        ("missing", lambda b: os.truncate(f"{b}/missing", 0)),
        ("dir", lambda b: (os.mkdir(f"{b}/d"), os.truncate(f"{b}/d", 0))),
        ("O_TRUNC big", lambda b: (write(f"{b}/t", b"q" * (FUSE_CHUNK + 1)), write(f"{b}/t", b"r"),
                                   read(f"{b}/t"))),
    ])


def _ftrunc(path: str) -> bytes:
    fd = os.open(path, os.O_RDWR)
    os.write(fd, b"abcdefgh")
    os.ftruncate(fd, 3)
    os.pwrite(fd, b"Z", 6)
    os.close(fd)
    return read(path)


# -------------------------------------------------------------- directories

def test_mkdir_rmdir(ldir: str, mdir: str) -> None:
    same_as_local(ldir, mdir, [
        ("mkdir", lambda b: (os.mkdir(f"{b}/d", 0o750), perm(f"{b}/d"))),
        ("exists", lambda b: os.mkdir(f"{b}/d")),
        ("missing parent", lambda b: os.mkdir(f"{b}/x/y")),
        ("file parent", lambda b: (write(f"{b}/f", b""), os.mkdir(f"{b}/f/y"))),
        ("over file", lambda b: os.mkdir(f"{b}/f")),
        ("too long", lambda b: os.mkdir(f"{b}/{'x' * 256}")),
        ("rmdir non-empty", lambda b: (os.mkdir(f"{b}/d/sub"), os.rmdir(f"{b}/d"))),
        ("rmdir file", lambda b: os.rmdir(f"{b}/f")),
        ("rmdir missing", lambda b: os.rmdir(f"{b}/nope")),
        ("rmdir dot", lambda b: os.rmdir(f"{b}/d/sub/.")),
        ("rmdir ok", lambda b: (os.rmdir(f"{b}/d/sub"), os.rmdir(f"{b}/d"), sorted(os.listdir(b)))),
        ("mkdir 0777", lambda b: (os.mkdir(f"{b}/open", 0o777), perm(f"{b}/open"))),
        ("is dir", lambda b: stat.S_ISDIR(os.stat(f"{b}/open").st_mode)),
    ])


def test_unlink(ldir: str, mdir: str) -> None:
    same_as_local(ldir, mdir, [
        ("make", lambda b: (write(f"{b}/f", b"1"), os.mkdir(f"{b}/d"))),
        ("unlink", lambda b: (os.unlink(f"{b}/f"), os.path.exists(f"{b}/f"))),
        ("again", lambda b: os.unlink(f"{b}/f")),
        ("dir", lambda b: os.unlink(f"{b}/d")),
        ("through file", lambda b: (write(f"{b}/g", b""), os.unlink(f"{b}/g/x"))),
        ("symlink not target", lambda b: (os.symlink("g", f"{b}/l"), os.unlink(f"{b}/l"), os.path.exists(f"{b}/g"))),
    ])


# -------------------------------------------------------------------- rename

def test_rename(ldir: str, mdir: str) -> None:
    same_as_local(ldir, mdir, [
        ("setup", lambda b: (write(f"{b}/a", b"A"), write(f"{b}/b", b"B"), os.makedirs(f"{b}/d1/sub"),
                             os.mkdir(f"{b}/d2"), os.makedirs(f"{b}/full/x"))),
        ("file over file", lambda b: (os.rename(f"{b}/a", f"{b}/b"), read(f"{b}/b"), os.path.exists(f"{b}/a"))),
        ("file over dir", lambda b: os.rename(f"{b}/b", f"{b}/d2")),
        ("dir over file", lambda b: os.rename(f"{b}/d2", f"{b}/b")),
        ("dir over empty dir", lambda b: (os.rename(f"{b}/d2", f"{b}/d1/sub"), sorted(os.listdir(f"{b}/d1")))),
        ("dir over non-empty", lambda b: os.rename(f"{b}/d1", f"{b}/full")),
        ("dir into itself", lambda b: os.rename(f"{b}/d1", f"{b}/d1/sub/inner")),
        ("missing", lambda b: os.rename(f"{b}/nope", f"{b}/x")),
        ("to missing dir", lambda b: os.rename(f"{b}/b", f"{b}/nodir/x")),
        ("same name", lambda b: (os.rename(f"{b}/b", f"{b}/b"), read(f"{b}/b"))),
        ("across dirs", lambda b: (os.rename(f"{b}/b", f"{b}/full/x/b2"), read(f"{b}/full/x/b2"))),
        ("dir across dirs", lambda b: (os.rename(f"{b}/full/x", f"{b}/d1/x"), sorted(os.listdir(f"{b}/d1/x")))),
        ("hard links same inode", lambda b: (os.link(f"{b}/d1/x/b2", f"{b}/h"),
                                             os.rename(f"{b}/h", f"{b}/d1/x/b2"), os.path.exists(f"{b}/h"))),
        ("noreplace exists", lambda b: (write(f"{b}/n1", b"1"), write(f"{b}/n2", b"2"),
                                        renameat2(f"{b}/n1", f"{b}/n2", RENAME_NOREPLACE))),
        ("noreplace free", lambda b: (renameat2(f"{b}/n1", f"{b}/n3", RENAME_NOREPLACE), read(f"{b}/n3"))),
        ("tree", lambda b: sorted((os.path.relpath(t, b), sorted(ds), sorted(fs)) for t, ds, fs in os.walk(b))),
    ])


# ----------------------------------------------------------- links, symlinks

def test_hard_links(ldir: str, mdir: str) -> None:
    same_as_local(ldir, mdir, [
        ("link", lambda b: (write(f"{b}/f", b"data"), os.link(f"{b}/f", f"{b}/g"), os.stat(f"{b}/f").st_nlink)),
        ("same inode", lambda b: os.stat(f"{b}/f").st_ino == os.stat(f"{b}/g").st_ino),
        ("shared bytes", lambda b: (write(f"{b}/g", b"new", os.O_WRONLY | os.O_TRUNC), read(f"{b}/f"))),
        ("exists", lambda b: os.link(f"{b}/f", f"{b}/g")),
        ("dir", lambda b: (os.mkdir(f"{b}/d"), os.link(f"{b}/d", f"{b}/dl"))),
        ("missing", lambda b: os.link(f"{b}/nope", f"{b}/x")),
        ("unlink one", lambda b: (os.unlink(f"{b}/f"), read(f"{b}/g"), os.stat(f"{b}/g").st_nlink)),
        ("into subdir", lambda b: (os.link(f"{b}/g", f"{b}/d/g2"), os.stat(f"{b}/d/g2").st_nlink)),
    ])


def test_symlinks(ldir: str, mdir: str) -> None:
    same_as_local(ldir, mdir, [
        ("symlink", lambda b: (write(f"{b}/t", b"target"), os.symlink("t", f"{b}/l"), os.readlink(f"{b}/l"))),
        ("follow", lambda b: read(f"{b}/l")),
        ("lstat", lambda b: (stat.S_ISLNK(os.lstat(f"{b}/l").st_mode), os.lstat(f"{b}/l").st_size)),
        ("exists", lambda b: os.symlink("x", f"{b}/l")),
        ("dangling", lambda b: (os.symlink("nowhere", f"{b}/dl"), os.path.exists(f"{b}/dl"),
                                os.path.lexists(f"{b}/dl"))),
        ("open dangling", lambda b: read(f"{b}/dl")),
        ("create through dangling", lambda b: (write(f"{b}/dl", b"made"), read(f"{b}/nowhere"))),
        ("readlink file", lambda b: os.readlink(f"{b}/t")),
        ("loop", lambda b: (os.symlink("loop2", f"{b}/loop1"), os.symlink("loop1", f"{b}/loop2"),
                            read(f"{b}/loop1"))),
        ("dir link", lambda b: (os.mkdir(f"{b}/d"), write(f"{b}/d/in", b"i"), os.symlink("d", f"{b}/dlink"),
                                sorted(os.listdir(f"{b}/dlink")), read(f"{b}/dlink/in"))),
        ("long target", lambda b: (os.symlink("a/" * 1000, f"{b}/long"), len(os.readlink(f"{b}/long")))),
        ("O_NOFOLLOW", lambda b: os.open(f"{b}/l", os.O_RDONLY | os.O_NOFOLLOW)),
    ])


# ------------------------------------------------------------- attributes

def test_chmod_chown_utimes(ldir: str, mdir: str) -> None:
    same_as_local(ldir, mdir, [
        ("chmod", lambda b: (write(f"{b}/f", b"x"), os.chmod(f"{b}/f", 0o4751), perm(f"{b}/f"))),
        ("chmod dir", lambda b: (os.mkdir(f"{b}/d"), os.chmod(f"{b}/d", 0o1777), perm(f"{b}/d"))),
        ("chown", lambda b: (os.chown(f"{b}/f", 1234, 5678), os.stat(f"{b}/f")[4:6], perm(f"{b}/f"))),
        ("chown -1", lambda b: (os.chown(f"{b}/f", -1, 42), os.stat(f"{b}/f")[4:6])),
        ("lchown link", lambda b: (os.symlink("f", f"{b}/l"), os.lchown(f"{b}/l", 7, 8), os.lstat(f"{b}/l")[4:6],
                                   os.stat(f"{b}/f")[4:6])),
        ("utime ns", lambda b: (os.utime(f"{b}/f", ns=(1_000_000_123, 2_000_000_456)),
                                os.stat(f"{b}/f").st_atime_ns, os.stat(f"{b}/f").st_mtime_ns)),
        ("utime dir", lambda b: (os.utime(f"{b}/d", ns=(5_000_000_000, 6_000_000_000)),
                                 os.stat(f"{b}/d").st_mtime_ns)),
        ("omit atime", lambda b: (utimensat(f"{b}/f", (0, UTIME_OMIT), (77, 0)),
                                  os.stat(f"{b}/f").st_atime_ns, os.stat(f"{b}/f").st_mtime_ns)),
        ("omit mtime", lambda b: (utimensat(f"{b}/f", (88, 0), (0, UTIME_OMIT)),
                                  os.stat(f"{b}/f").st_atime_ns, os.stat(f"{b}/f").st_mtime_ns)),
        ("missing", lambda b: os.chmod(f"{b}/nope", 0o600)),
    ])
    before = time.time_ns()
    utimensat(f"{mdir}/f", (0, UTIME_NOW), (0, UTIME_NOW))
    st = os.stat(f"{mdir}/f")
    assert st.st_mtime_ns >= before - 1_000_000_000 and st.st_atime_ns >= before - 1_000_000_000


def test_times_move_with_writes(mdir: str) -> None:
    write(f"{mdir}/f", b"a" * (FUSE_CHUNK + 10))
    os.utime(f"{mdir}/f", ns=(1_000_000_000, 1_000_000_000))
    with open(f"{mdir}/f", "r+b") as f:  # overwrite inside the size of a chunked file
        f.write(b"b")
    assert os.stat(f"{mdir}/f").st_mtime_ns > 1_000_000_000
    write(f"{mdir}/s", b"small")
    os.utime(f"{mdir}/s", ns=(1_000_000_000, 1_000_000_000))
    write(f"{mdir}/s", b"x", os.O_WRONLY)
    assert os.stat(f"{mdir}/s").st_mtime_ns > 1_000_000_000
    assert os.stat(f"{mdir}/s").st_ctime_ns >= os.stat(f"{mdir}/s").st_mtime_ns - 10**9


# -------------------------------------------------------------------- readdir

def test_readdir_types_and_inodes(mdir: str) -> None:
    write(f"{mdir}/f", b"1")
    os.mkdir(f"{mdir}/d")
    os.symlink("f", f"{mdir}/l")
    entries = {e.name: e for e in os.scandir(mdir)}
    assert sorted(entries) == ["d", "f", "l"]
    assert entries["d"].is_dir() and entries["f"].is_file() and entries["l"].is_symlink()
    for name, e in entries.items():
        assert e.inode() == os.lstat(f"{mdir}/{name}").st_ino
    assert ".superfs-orphans" not in os.listdir(os.path.dirname(mdir))


def test_readdir_stable_while_changing(mdir: str) -> None:
    """Entries added or removed mid-listing never cause skips or repeats."""
    names = [f"e{i:05d}" for i in range(1200)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: os.close(os.open(f"{mdir}/{n}", os.O_CREAT | os.O_WRONLY, 0o644)), names))
    seen = []
    with os.scandir(mdir) as it:
        for i, e in enumerate(it):
            seen.append(e.name)
            if i == 100:
                for j in range(0, 1200, 7):  # remove some that may or may not be listed yet
                    if names[j] not in seen:
                        os.unlink(f"{mdir}/{names[j]}")
                for j in range(50):
                    os.close(os.open(f"{mdir}/new{j}", os.O_CREAT | os.O_WRONLY, 0o644))
    assert len(seen) == len(set(seen)), "an entry was listed twice"
    removed = {names[j] for j in range(0, 1200, 7)} - set(seen[:101])
    survivors = set(names) - removed
    assert survivors <= set(seen), "an entry that was there all along was skipped"


def test_seekdir_returns_to_any_offset_of_a_paged_listing(mdir: str) -> None:
    """telldir/seekdir across the pages a handle lists (dirhandles.py): the same names follow."""
    import ctypes
    import ctypes.util

    class Dirent(ctypes.Structure):
        _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64), ("d_reclen", ctypes.c_ushort),
                    ("d_type", ctypes.c_ubyte), ("d_name", ctypes.c_char * 256)]

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.opendir.restype = ctypes.c_void_p
    libc.readdir.restype = ctypes.POINTER(Dirent)
    libc.readdir.argtypes = libc.telldir.argtypes = libc.closedir.argtypes = [ctypes.c_void_p]
    libc.telldir.restype = ctypes.c_long
    libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
    names = [f"s{i:05d}" for i in range(2500)]  # three pages of the mount's listing
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: os.close(os.open(f"{mdir}/{n}", os.O_CREAT | os.O_WRONLY, 0o644)), names))
    d = libc.opendir(mdir.encode())
    assert d
    try:
        listing: list[tuple[int, bytes]] = []  # (telldir before it, name)
        while True:
            pos = libc.telldir(d)
            ent = libc.readdir(d)
            if not ent:
                break
            listing.append((pos, ent.contents.d_name))
        got = [n.decode() for _, n in listing if n not in (b".", b"..")]
        assert sorted(got) == names and len(got) == len(set(got))
        for k in (3, 999, 1000, 1001, 1803, 2400, 2501):
            pos, name = listing[k]
            libc.seekdir(d, pos)
            ent = libc.readdir(d)
            assert ent and ent.contents.d_name == name, (k, name)
    finally:
        libc.closedir(d)


@pytest.mark.timeout(900)  # 100k creates take a minute on an idle 2-core machine, far more on a busy one
def test_readdir_100k_entries(mnt: Any, fuse_cluster: Any) -> None:
    """A directory of 100,000+ entries is listed completely through the offset protocol."""
    import asyncio

    from superfs.client import AsyncFs
    from superfs.client.meta import Creds
    from superfs.errors import FsError

    n = 100_050
    name = f"big{os.getpid()}"

    async def fill() -> None:
        # made through the client library (much faster than 100k creates through
        # FUSE); generous deadlines and retries, so a loaded machine only slows it
        fs = await AsyncFs(str(fuse_cluster.config["dir_server"]), creds=Creds(0, 0), timeout_s=30).start()
        try:
            d = await fs.meta.mkdir(1, name, 0o755, Creds(0, 0))
            sem = asyncio.Semaphore(64)

            async def one(i: int) -> None:
                async with sem:
                    for attempt in range(5):
                        try:
                            await fs.meta.create(d.ino, f"n{i:06d}", 0o644, Creds(0, 0), exclusive=True)
                            return
                        except FsError as e:
                            if e.errno == errno.EEXIST and attempt:
                                return  # an earlier attempt that timed out did create it
                            if e.errno not in (errno.ETIMEDOUT, errno.EIO) or attempt == 4:
                                raise

            await asyncio.gather(*(one(i) for i in range(n)))
        finally:
            await fs.close()

    asyncio.run(fill())
    listed = os.listdir(f"{mnt.mountpoint}/{name}")
    assert len(listed) == n
    assert set(listed) == {f"n{i:06d}" for i in range(n)}

    # 40 listings of it open at once, each one name in: the mount holds a page per handle, not 40 listings
    def rss() -> int:
        with open(f"/proc/{mnt.pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

    before = rss()
    handles = [os.scandir(f"{mnt.mountpoint}/{name}") for _ in range(40)]
    try:
        firsts = [next(h).name for h in handles]
        grown = rss() - before
        print(f"mount RSS grew by {grown >> 20} MiB with 40 open listings of {n} entries")
        assert grown < 64 << 20, grown  # a whole listing per handle would be ~40 x 40 MiB
        assert len(set(firsts)) == 1
    finally:
        for h in handles:
            h.close()


# ---------------------------------------------------------------- xattrs

def test_xattrs(mdir: str) -> None:
    f = f"{mdir}/f"
    write(f, b"x")
    os.setxattr(f, "user.a", b"1")
    os.setxattr(f, "user.b", b"\x00binary\xff")
    assert os.getxattr(f, "user.a") == b"1"
    assert os.getxattr(f, "user.b") == b"\x00binary\xff"
    assert sorted(os.listxattr(f)) == ["user.a", "user.b"]
    assert outcome(os.setxattr, f, "user.a", b"2", os.XATTR_CREATE) == "EEXIST"
    assert outcome(os.setxattr, f, "user.zz", b"2", os.XATTR_REPLACE) == "ENODATA"
    os.setxattr(f, "user.a", b"2", os.XATTR_REPLACE)
    assert os.getxattr(f, "user.a") == b"2"
    os.removexattr(f, "user.a")
    assert outcome(os.getxattr, f, "user.a") == "ENODATA"
    assert outcome(os.removexattr, f, "user.a") == "ENODATA"
    os.mkdir(f"{mdir}/d")
    os.setxattr(f"{mdir}/d", "user.dir", b"yes")
    assert os.getxattr(f"{mdir}/d", "user.dir") == b"yes"
    assert os.listxattr(f"{mdir}/d") == ["user.dir"]
    assert outcome(os.getxattr, f"{mdir}/missing", "user.a") == "ENOENT"


# ------------------------------------------------------------------ statfs

def test_statfs(mnt: Any) -> None:
    st = os.statvfs(mnt.mountpoint)
    assert st.f_namemax == 255
    assert st.f_bavail > 0 and st.f_blocks >= st.f_bfree
    assert st.f_files > 0 and st.f_favail > 0


# --------------------------------------------------- unlinked while open

def test_unlinked_while_open_stays_usable(mdir: str, mnt: Any) -> None:
    f = open(f"{mdir}/victim", "w+b")
    f.write(b"v" * 20000)
    f.flush()
    os.unlink(f"{mdir}/victim")
    assert not os.path.exists(f"{mdir}/victim")
    assert os.listdir(mdir) == []
    assert os.fstat(f.fileno()).st_nlink == 0
    f.seek(0)
    assert f.read() == b"v" * 20000
    f.write(b"tail")
    f.flush()
    f.seek(19998)
    assert f.read() == b"vvtail"
    f.close()
    # the name is free and reusable; root never shows the hidden directory
    write(f"{mdir}/victim", b"new")
    assert read(f"{mdir}/victim") == b"new"
    assert outcome(os.stat, f"{mnt.mountpoint}/.superfs-orphans") == "ENOENT"


def test_rename_over_open_file(mdir: str) -> None:
    write(f"{mdir}/old", b"old contents")
    f = open(f"{mdir}/old", "rb")
    write(f"{mdir}/new", b"replacement")
    os.rename(f"{mdir}/new", f"{mdir}/old")
    assert read(f"{mdir}/old") == b"replacement"
    assert f.read() == b"old contents"
    f.close()
    assert sorted(os.listdir(mdir)) == ["old"]


# ------------------------------------------------------------- permissions

def test_permissions_other_user(mdir: str) -> None:
    os.chmod(mdir, 0o755)
    write(f"{mdir}/private", b"secret", mode=0o600)
    os.chmod(f"{mdir}/private", 0o600)
    write(f"{mdir}/public", b"hello", mode=0o644)
    os.chmod(f"{mdir}/public", 0o644)
    os.mkdir(f"{mdir}/open")
    os.chmod(f"{mdir}/open", 0o777)
    os.mkdir(f"{mdir}/closed")
    os.chmod(f"{mdir}/closed", 0o700)
    write(f"{mdir}/closed/inner", b"i")

    assert as_user(read, f"{mdir}/private")[0] == "EACCES"
    assert as_user(read, f"{mdir}/public")[0] == "ok"
    assert as_user(write, f"{mdir}/public", b"no", os.O_WRONLY)[0] == "EACCES"
    assert as_user(write, f"{mdir}/new", b"no")[0] == "EACCES"              # dir not writable
    assert as_user(os.unlink, f"{mdir}/public")[0] == "EACCES"
    assert as_user(os.mkdir, f"{mdir}/sub")[0] == "EACCES"
    assert as_user(os.rename, f"{mdir}/public", f"{mdir}/open/p")[0] == "EACCES"
    assert as_user(os.listdir, f"{mdir}/closed")[0] == "EACCES"           # no r on dir
    assert as_user(os.stat, f"{mdir}/closed/inner")[0] == "EACCES"        # no x on dir
    assert as_user(os.chmod, f"{mdir}/public", 0o666)[0] == "EPERM"
    assert as_user(os.chown, f"{mdir}/public", OTHER_UID, OTHER_GID)[0] == "EPERM"
    assert as_user(os.utime, f"{mdir}/public", None)[0] == "EACCES"        # touch: needs write
    assert as_user(os.utime, f"{mdir}/public", (1, 1))[0] == "EPERM"      # explicit times: owner only
    assert as_user(os.setxattr, f"{mdir}/public", "user.x", b"1")[0] in ("EACCES", "EPERM")
    # what the user may do, and ownership of what they make
    assert as_user(write, f"{mdir}/open/mine", b"m", os.O_WRONLY | os.O_CREAT, 0o640)[0] == "ok"
    st = os.stat(f"{mdir}/open/mine")
    assert (st.st_uid, st.st_gid) == (OTHER_UID, OTHER_GID)
    assert as_user(os.chmod, f"{mdir}/open/mine", 0o600)[0] == "ok"
    assert as_user(os.utime, f"{mdir}/open/mine", (1, 2))[0] == "ok"
    assert as_user(os.mkdir, f"{mdir}/open/mydir")[0] == "ok"
    assert os.stat(f"{mdir}/open/mydir").st_uid == OTHER_UID
    # root is root
    assert read(f"{mdir}/open/mine") == b"m"
    os.chmod(f"{mdir}/open/mine", 0o000)
    assert read(f"{mdir}/open/mine") == b"m"


def _write_through_readonly_fd(base: str) -> list[object]:
    """What git and cp do: create a file read-only, write it through the creating fd."""
    out: list[object] = []
    fd = os.open(f"{base}/ro", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o444)
    out.append(os.write(fd, b"written through a read-only file's fd " * 300))
    os.ftruncate(fd, 5000)
    out.append(os.pread(fd, 10, 4990))
    os.fchmod(fd, 0o400)
    out.append(os.pwrite(fd, b"after fchmod", 100))
    os.close(fd)
    out.append(outcome(os.open, f"{base}/ro", os.O_WRONLY))
    with open(f"{base}/ro", "rb") as f:
        data = f.read()
    out.append((len(data), hashlib.sha256(data).hexdigest()))
    return out


def test_open_fd_keeps_its_access(ldir: str, mdir: str) -> None:
    """Permission is checked at open: the fd writes on after the mode forbids it (as another user)."""
    for d in (ldir, mdir):
        os.chmod(d, 0o777)
    local = as_user(_write_through_readonly_fd, ldir)
    mounted = as_user(_write_through_readonly_fd, mdir)
    assert mounted == local and local[0] == "ok"


def test_group_and_other_bits(mdir: str) -> None:
    os.chmod(mdir, 0o755)
    write(f"{mdir}/g", b"group", mode=0o640)
    os.chmod(f"{mdir}/g", 0o640)
    os.chown(f"{mdir}/g", 0, 4321)
    assert as_user(read, f"{mdir}/g")[0] == "EACCES"
    assert as_user(read, f"{mdir}/g", groups=(4321,))[0] == "ok"
    assert as_user(read, f"{mdir}/g", gid=4321)[0] == "ok"
    os.chown(f"{mdir}/g", OTHER_UID, 4321)
    os.chmod(f"{mdir}/g", 0o070)   # owner bits win even when group would allow
    assert as_user(read, f"{mdir}/g", groups=(4321,))[0] == "EACCES"


def test_sticky_directory(mdir: str) -> None:
    os.chmod(mdir, 0o1777)
    write(f"{mdir}/roots", b"r")
    assert as_user(os.unlink, f"{mdir}/roots")[0] == "EPERM"
    assert as_user(os.rename, f"{mdir}/roots", f"{mdir}/x")[0] == "EPERM"
    assert as_user(write, f"{mdir}/users", b"u")[0] == "ok"
    assert as_user(os.unlink, f"{mdir}/users")[0] == "ok"


def test_access(mdir: str) -> None:
    os.chmod(mdir, 0o755)
    write(f"{mdir}/f", b"x", mode=0o640)
    os.chmod(f"{mdir}/f", 0o640)
    assert as_user(os.access, f"{mdir}/f", os.R_OK) == ("ok", False)
    assert as_user(os.access, f"{mdir}/f", os.F_OK) == ("ok", True)
    os.chmod(f"{mdir}/f", 0o644)
    assert as_user(os.access, f"{mdir}/f", os.R_OK) == ("ok", True)
    assert as_user(os.access, f"{mdir}/f", os.W_OK) == ("ok", False)
    assert os.access(f"{mdir}/f", os.W_OK)
