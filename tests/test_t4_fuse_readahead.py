"""Big sequential reads: the mount raises the kernel's read-ahead so reads arrive in large requests."""
from __future__ import annotations

import os
import re
from typing import Callable

import pytest
from fuse_helpers import FUSE_CHUNK, MountProcess, fuse_cluster, mount_factory, mount_root  # noqa: F401

from superfs.fuse.readahead import DEFAULT_READ_AHEAD_KB, _unescape, mount_device, set_read_ahead

# ---------------------------------------------------------------- units

MOUNTINFO = """\
22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
90 22 0:39 / /tmp/a\\040b rw,nosuid shared:50 - fuse.superfs superfs rw
91 22 0:41 / /tmp/a\\040b rw,nosuid shared:51 - fuse.superfs superfs rw
"""


def test_mount_device_is_the_last_mount_on_the_path(tmp_path: os.PathLike[str]) -> None:
    info = os.path.join(tmp_path, "mountinfo")
    with open(info, "w") as f:
        f.write(MOUNTINFO)
    assert mount_device("/tmp/a b", info) == "0:41"   # mounted over the first one
    assert mount_device("/", info) == "253:0"
    assert mount_device("/nowhere", info) is None
    assert _unescape("/x\\011y\\134z\\012") == "/x\ty\\z\n"


def test_set_read_ahead_writes_the_bdi_value(tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch) -> None:
    bdi = os.path.join(tmp_path, "0:41")
    os.makedirs(bdi)
    with open(os.path.join(bdi, "read_ahead_kb"), "w") as f:
        f.write("128\n")
    monkeypatch.setattr("superfs.fuse.readahead.mount_device", lambda mp: "0:41")
    assert set_read_ahead("/mnt", 4096, bdi_root=str(tmp_path)) == 4096
    monkeypatch.setattr("superfs.fuse.readahead.mount_device", lambda mp: None)
    assert set_read_ahead("/mnt", 4096, bdi_root=str(tmp_path)) is None   # not mounted: no guess


# ---------------------------------------------------------------- mounts

def bdi_read_ahead(mountpoint: str) -> int:
    dev = mount_device(mountpoint)
    assert dev is not None
    with open(f"/sys/class/bdi/{dev}/read_ahead_kb") as f:
        return int(f.read())


def reply_sizes(m: MountProcess) -> list[int]:
    """Sizes of the mount's READ replies, from libfuse's debug log (--fuse-debug)."""
    text = m.log_tail(lines=1_000_000)
    reads = set(re.findall(r"unique: (\d+), opcode: READ ", text))
    return [int(size) for u, size in re.findall(r"unique: (\d+), success, outsize: (\d+)", text) if u in reads]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may raise a mount's read-ahead")
def test_sequential_reads_arrive_in_big_requests(mount_factory: Callable[..., MountProcess]) -> None:
    writer = mount_factory("ra-w")
    data = os.urandom(12 * FUSE_CHUNK + 777)
    with open(f"{writer.mountpoint}/big", "wb") as f:
        f.write(data)

    m = mount_factory("ra", ["--fuse-debug"])
    assert bdi_read_ahead(m.mountpoint) == DEFAULT_READ_AHEAD_KB
    with open(f"{m.mountpoint}/big", "rb") as f:
        assert f.read() == data
    sizes = reply_sizes(m)
    assert sizes, "no READ requests reached the mount"
    assert max(sizes) > 128 * 1024 + 16, f"largest read request {max(sizes)} bytes: read-ahead not raised"

    small = mount_factory("ra0", ["--fuse-debug", "--read-ahead-kb", "0"])
    assert bdi_read_ahead(small.mountpoint) <= 128
    with open(f"{small.mountpoint}/big", "rb") as f:
        assert f.read() == data
    assert max(reply_sizes(small)) <= 128 * 1024 + 16


# ------------------------------------------------- request sizes, page cache across opens

def request_sizes(m: MountProcess, opcode: str) -> list[int]:
    """Sizes of the mount's WRITE requests (or the count of READs), from libfuse's debug log."""
    text = m.log_tail(lines=1_000_000)
    if opcode == "WRITE":
        return [int(n) for n in re.findall(r"opcode: WRITE \(\d+\), nodeid: \d+, insize: (\d+)", text)]
    return [1 for _ in re.findall(r"opcode: READ ", text)]


def test_writes_arrive_in_big_requests(mount_factory: Callable[..., MountProcess]) -> None:
    m = mount_factory("wsz", ["--fuse-debug"])
    data = os.urandom(8 * FUSE_CHUNK)
    with open(f"{m.mountpoint}/w", "wb") as f:
        f.write(data)
    sizes = request_sizes(m, "WRITE")
    assert sizes and max(sizes) > 512 * 1024, f"largest write request {max(sizes, default=0)} bytes"
    with open(f"{m.mountpoint}/w", "rb") as f:
        assert f.read() == data


def test_the_page_cache_survives_a_reopen_of_an_unchanged_file(mount_factory: Callable[..., MountProcess]) -> None:
    writer = mount_factory("pc-w")
    data = os.urandom(4 * FUSE_CHUNK + 99)
    with open(f"{writer.mountpoint}/f", "wb") as f:
        f.write(data)
    m = mount_factory("pc", ["--fuse-debug"])
    for _ in range(2):
        with open(f"{m.mountpoint}/f", "rb") as f:
            assert f.read() == data
    reads_then = len(request_sizes(m, "READ"))
    assert reads_then > 0
    with open(f"{m.mountpoint}/f", "rb") as f:  # unchanged: served by the kernel's cache
        assert f.read() == data
    assert len(request_sizes(m, "READ")) == reads_then
    changed = os.urandom(len(data))
    with open(f"{writer.mountpoint}/f", "r+b") as f:  # changed elsewhere: the next open must see it
        f.write(changed)
    with open(f"{m.mountpoint}/f", "rb") as f:
        assert f.read() == changed
    assert len(request_sizes(m, "READ")) > reads_then


def test_read_ahead_windows_read_holes_as_zeros(mount_factory: Callable[..., MountProcess]) -> None:
    """Windows are not zeroed when made (handles.py): every byte of a hole must still be written.

    The reader first pulls random bytes through the mount, so the memory later
    windows get holds them: a hole left unwritten would show them.
    """
    writer = mount_factory("holes-w")
    noise = os.urandom(12 * FUSE_CHUNK)
    with open(f"{writer.mountpoint}/noise", "wb") as f:
        f.write(noise)
    expect = bytearray(9 * FUSE_CHUNK + 123)
    with open(f"{writer.mountpoint}/sparse", "wb") as f:
        for at, n in ((0, 1000), (3 * FUSE_CHUNK + 5, 5000), (6 * FUSE_CHUNK - 10, 20)):
            piece = os.urandom(n)
            f.seek(at)
            f.write(piece)
            expect[at:at + n] = piece
        f.truncate(len(expect))  # a hole at the end, after the last chunk written

    m = mount_factory("holes")
    for _ in range(2):
        with open(f"{m.mountpoint}/noise", "rb") as f:
            assert f.read() == noise
        fd = os.open(f"{m.mountpoint}/sparse", os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # read it from the servers again
        os.close(fd)
        with open(f"{m.mountpoint}/sparse", "rb") as f:
            got = b"".join(iter(lambda: f.read(4 << 20), b""))
        assert got == bytes(expect)
