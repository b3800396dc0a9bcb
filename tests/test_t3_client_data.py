"""File bytes through the client: inline and chunked, holes, truncation, modes.

The module cluster uses a 4 KiB inline threshold and 64 KiB chunks, so every
size class is exercised with small files.
"""
from __future__ import annotations

import errno
import os
import tracemalloc

import pytest
from conftest import SMALL_CHUNK, SMALL_INLINE

SIZES = [0, 1, SMALL_INLINE - 1, SMALL_INLINE, SMALL_INLINE + 1, SMALL_CHUNK - 1, SMALL_CHUNK,
         SMALL_CHUNK + 1, 3 * SMALL_CHUNK + 123]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_across_thresholds(client, workdir, size):
    data = os.urandom(size)
    client.write_bytes(f"{workdir}/f", data)
    assert client.stat(f"{workdir}/f").st_size == size
    assert client.read_bytes(f"{workdir}/f") == data
    with client.open(f"{workdir}/f", "rb") as f:  # ranged reads across chunk edges
        for off in (0, size // 3, max(0, size - 7), SMALL_CHUNK - 3):
            f.seek(off)
            assert f.read(10) == data[off:off + 10]


def test_reading_a_small_file_whole_takes_a_small_buffer(client, workdir):
    """read() to the end sized its buffer by nothing: 16 MiB zeroed per call, a 64-byte file read
    at 65 files/s. Now the buffer follows the file's size."""
    for size in (64, SMALL_INLINE + 1):
        path = f"{workdir}/small-{size}"
        data = os.urandom(size)
        client.write_bytes(path, data)
        tracemalloc.start()
        try:
            assert client.read_bytes(path) == data
            with client.open(path, "rb", buffering=0) as f:
                assert f.read() == data
                assert f.read() == b""
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20, f"reading {size} bytes took {peak} bytes of buffers"


def test_growing_file_moves_from_inline_to_chunks(client, workdir):
    path = f"{workdir}/grow"
    expect = b""
    with client.open(path, "wb", buffering=0) as f:
        for i in range(40):
            piece = bytes([i]) * 3000
            f.write(piece)
            expect += piece
    assert client.read_bytes(path) == expect


def test_writes_past_eof_read_zeros(client, workdir):
    for start in (100, SMALL_INLINE * 2, SMALL_CHUNK * 3 + 5):
        path = f"{workdir}/sparse-{start}"
        with client.open(path, "wb") as f:
            f.write(b"head")
            f.seek(start)
            f.write(b"tail")
        data = client.read_bytes(path)
        assert data == b"head" + bytes(start - 4) + b"tail"


def test_truncate_down_then_up_reads_zeros(client, workdir):
    for size in (3000, SMALL_CHUNK * 2 + 100):
        path = f"{workdir}/t-{size}"
        data = os.urandom(size)
        client.write_bytes(path, data)
        cut = size // 2 + 1
        client.truncate(path, cut)
        assert client.read_bytes(path) == data[:cut]
        client.truncate(path, size + 50)
        assert client.read_bytes(path) == data[:cut] + bytes(size + 50 - cut)
        client.truncate(path, 0)
        assert client.read_bytes(path) == b""
    with pytest.raises(OSError) as e:
        client.truncate(f"{workdir}/t-3000", -1)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(IsADirectoryError):
        client.truncate(workdir, 0)


def test_open_modes(client, workdir):
    path = f"{workdir}/m"
    with client.open(path, "w") as f:
        f.write("hello\n")
    with client.open(path, "a") as f:
        f.write("world\n")
    with client.open(path) as f:
        assert f.read() == "hello\nworld\n"
    with client.open(path, "r+b") as f:
        f.seek(0)
        f.write(b"J")
        f.seek(0)
        assert f.read(5) == b"Jello"
    with pytest.raises(FileExistsError):
        client.open(path, "x")
    with client.open(path, "w") as f:
        pass
    assert client.stat(path).st_size == 0
    with pytest.raises(FileNotFoundError):
        client.open(f"{workdir}/none", "r")
    with pytest.raises(ValueError):
        client.open(path, "rw")
    with pytest.raises(IsADirectoryError):
        client.open(workdir, "w")
    with client.open(path, "rb") as f:
        with pytest.raises(OSError):
            f.write(b"no")


def test_unlink_frees_and_rename_replaces_file(client, workdir):
    big = os.urandom(SMALL_CHUNK * 2)
    client.write_bytes(f"{workdir}/a", big)
    client.write_bytes(f"{workdir}/b", b"small")
    client.mkdir(f"{workdir}/sub")
    client.rename(f"{workdir}/a", f"{workdir}/sub/b")
    client.rename(f"{workdir}/b", f"{workdir}/sub/b")
    assert client.read_bytes(f"{workdir}/sub/b") == b"small"
    assert client.listdir(workdir) == ["sub"]
    client.unlink(f"{workdir}/sub/b")
    assert client.listdir(f"{workdir}/sub") == []


def test_a_file_read_in_order_on_this_host_is_one_slot_file_read_in_order(cluster_factory):
    """Short-circuit reads of a file take every chunk from the same data server's slot file
    (routing.read_order), through one held descriptor (open_files.py): the kernel then reads
    ahead in large requests, where chunks from either replica at random did not."""
    from superfs.client import connect
    chunk = 256 * 1024   # local reads start at this size (local_reads.MIN_READ)
    cluster = cluster_factory(chunk_size=chunk)
    with connect(str(cluster.config["dir_server"])) as c:
        data = os.urandom(16 * chunk)
        c.write_bytes("/f", data)
        local = c.aio.data.chunk_io._pool().local_files   # what a test may look at, not a caller
        reads, opened = local.reads, local.files.opened
        with c.open("/f", "rb", buffering=0) as f:
            assert b"".join(iter(lambda: f.read(chunk), b"")) == data
        assert local.reads - reads == 16 and local.fallbacks == 0
        assert local.files.opened - opened == 1   # one data server's slot file, opened once
