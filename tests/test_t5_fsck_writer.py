"""fsck --repair against a live writer: bytes pushed to the data servers but not yet sized survive.

A chunked write is two steps: the client pushes the chunks, then grows the
file's size on its shard (at close, fsync, and every few seconds while it
holds pushed-but-unsized bytes). Between the two, the chunks look exactly
like garbage past the end of the file. These tests freeze a real writer
process in that window (the ``client.commit_size`` pause point) and run
``fsck --repair`` against the cluster: the bytes must survive, and the
writer's close() must then give them to every reader.

They also check the other half of the contract: a writer that keeps its
file open sizes what it pushed without being closed (library file objects
and FUSE handles), so fsck's grace period really bounds the window.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Callable

from conftest import SMALL_CHUNK
from fuse_helpers import MountProcess, fuse_cluster, mount_factory, mount_root  # noqa: F401
from t5_support import address, blob, chunks_of, fsck, ino_of, wait_until, with_admin

from superfs import faults
from superfs.client import connect

WRITER = """
import sys
sys.path.insert(0, {tests!r})
from t5_support import blob
from superfs.client import connect
with connect({addr!r}) as c:
    with c.open({path!r}, "wb") as f:
        f.write(blob({seed!r}, {size}))
print("closed", flush=True)
"""


def _start_writer(addr: str, path: str, seed: str, size: int, pause_dir: str) -> subprocess.Popen[str]:
    code = WRITER.format(tests=os.path.dirname(__file__), addr=addr, path=path, seed=seed, size=size)
    env = dict(os.environ, **{faults.PAUSE_ENV: "client.commit_size", faults.PAUSE_DIR_ENV: pause_dir})
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _paused_writer(cluster, tmp_path, seed: str, size: int) -> tuple[str, subprocess.Popen[str]]:
    """A writer of /w/f stopped between pushing its chunks and sizing them; (address, process)."""
    addr = address(cluster)
    with connect(addr) as c:
        c.mkdir("/w")
    writer = _start_writer(addr, "/w/f", seed, size, str(tmp_path))
    try:
        wait_until(lambda: (tmp_path / "client.commit_size.paused").exists() or writer.poll() is not None,
                   "the writer to reach its pause point")
        assert writer.poll() is None, writer.communicate()
    except BaseException:
        (tmp_path / "client.commit_size.resume").touch()
        writer.communicate(timeout=120)
        raise
    return addr, writer


def test_fsck_repair_leaves_a_paused_writers_unsized_bytes_alone(cluster_factory, tmp_path):
    cluster = cluster_factory()
    size = 3 * SMALL_CHUNK + 123
    addr, writer = _paused_writer(cluster, tmp_path, "paused", size)
    try:
        with connect(addr) as c:
            # the window: every chunk is on the data servers, the shard still says the file is empty
            assert c.stat("/w/f").st_size == 0
            ino = ino_of(c, "/w/f")
        assert all(idxs == [0, 1, 2, 3] for idxs in chunks_of(cluster, ino).values())
        rc, report = fsck(cluster, repair=True)
        print(report)
        assert rc == 0, report
        assert all(idxs == [0, 1, 2, 3] for idxs in chunks_of(cluster, ino).values()), report
    finally:
        (tmp_path / "client.commit_size.resume").touch()
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0 and "closed" in out, err
    with connect(addr) as c:
        assert c.read_bytes("/w/f") == blob("paused", size)


def test_a_writer_frozen_past_the_grace_is_told_that_fsck_cut_its_bytes(cluster_factory, tmp_path):
    """--grace 0 stands for a writer frozen longer than the grace: fsck cuts what it pushed, and
    its close must fail rather than size the file over zeros (before: close succeeded, all zeros)."""
    cluster = cluster_factory()
    size = 2 * SMALL_CHUNK + 5
    addr, writer = _paused_writer(cluster, tmp_path, "frozen", size)
    try:
        with connect(addr) as c:
            ino = ino_of(c, "/w/f")
        rc, report = fsck(cluster, repair=True, grace_s=0)
        print(report)
        assert not any(chunks_of(cluster, ino).values()), report   # cut: they looked like garbage
    finally:
        (tmp_path / "client.commit_size.resume").touch()
        out, err = writer.communicate(timeout=120)
    assert writer.returncode != 0 and "closed" not in out, out
    assert "EIO" in err or "Input/output error" in err, err
    with connect(addr) as c:
        assert c.stat("/w/f").st_size == 0           # never grown over the zeros
    assert fsck(cluster)[0] == 0


APPENDER = """
import sys
sys.path.insert(0, {tests!r})
from t5_support import blob
from superfs.client import connect
with connect({addr!r}) as c:
    with c.open({path!r}, "ab", buffering=0) as f:
        f.write(blob({seed!r}, {size}))
print("closed", flush=True)
"""


def test_fsck_repair_spares_bytes_pushed_after_its_first_scan_even_without_grace(cluster_factory, tmp_path):
    """--grace 0 cuts young garbage, but never what was written after fsck's first scan began."""
    cluster = cluster_factory()
    addr = address(cluster)
    head = blob("head", SMALL_CHUNK + 10)
    with connect(addr) as c:
        c.mkdir("/w")
        c.write_bytes("/w/g", head)
        ino = ino_of(c, "/w/g")
        layout = list(c.aio.cluster.data_server_ids())

    async def plant(admin):  # old garbage past the end: what the first scan finds
        for sid in layout:
            await admin.put_chunk(sid, ino, 9, b"stale bytes")
    with_admin(cluster, plant)
    env = dict(os.environ, **{faults.PAUSE_ENV: "fsck.after_first_scan", faults.PAUSE_DIR_ENV: str(tmp_path)})
    checker = subprocess.Popen([sys.executable, "-m", "superfs.cli.main", "fsck", "--repair", "--grace", "0",
                                "--state-dir", cluster.state_dir], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    writer = None
    try:
        wait_until(lambda: (tmp_path / "fsck.after_first_scan.paused").exists() or checker.poll() is not None,
                   "fsck to finish its first scan")
        assert checker.poll() is None, checker.communicate()
        # now a writer appends: its chunks land after the first scan, and it has not sized them
        code = APPENDER.format(tests=os.path.dirname(__file__), addr=addr, path="/w/g", seed="tail",
                               size=2 * SMALL_CHUNK)
        wenv = dict(os.environ, **{faults.PAUSE_ENV: "client.commit_size", faults.PAUSE_DIR_ENV: str(tmp_path)})
        writer = subprocess.Popen([sys.executable, "-c", code], env=wenv, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        wait_until(lambda: (tmp_path / "client.commit_size.paused").exists() or writer.poll() is not None,
                   "the writer to push its bytes")
        assert writer.poll() is None, writer.communicate()
    finally:
        (tmp_path / "fsck.after_first_scan.resume").touch()
        out, err = checker.communicate(timeout=300)
        print(out, err)
        (tmp_path / "client.commit_size.resume").touch()
        if writer is not None:
            wout, werr = writer.communicate(timeout=120)
    assert checker.returncode == 0, out + err
    assert writer.returncode == 0 and "closed" in wout, werr
    with connect(addr) as c:
        assert c.read_bytes("/w/g") == head + blob("tail", 2 * SMALL_CHUNK)


def test_a_writer_holding_its_file_open_sizes_what_it_pushed(cluster_factory):
    cluster = cluster_factory()
    addr = address(cluster)
    data = blob("open", 2 * SMALL_CHUNK + 7)
    with connect(addr) as w, connect(addr) as r:
        w.mkdir("/o")
        f = w.open("/o/f", "wb", buffering=0)
        try:
            assert f.write(data) == len(data)  # pushed to the data servers, size deferred
            wait_until(lambda: r.stat("/o/f").st_size == len(data), "the size commit of an open file")
            assert r.read_bytes("/o/f") == data
        finally:
            f.close()


def test_a_fuse_handle_held_open_sizes_what_it_pushed(mount_factory: Callable[..., MountProcess],
                                                      fuse_cluster):  # noqa: F811
    m = mount_factory("sizing")
    data = blob("fuse-open", 3 * 256 * 1024 + 11)  # past the mount's push threshold (one chunk)
    path = os.path.join(m.mountpoint, "held")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        assert os.write(fd, data) == len(data)
        with connect(str(fuse_cluster.config["dir_server"])) as r:
            # whole chunks were pushed while writing; the tail is pushed and the size committed
            # within the deadline, although the descriptor is neither flushed nor closed
            wait_until(lambda: r.stat("/held").st_size == len(data), "the mount's size commit of an open file")
            assert r.read_bytes("/held") == data
    finally:
        os.close(fd)
