"""Many readers and writers through one mount at once: all of them finish, with the right bytes.

The kernel sends a mount many requests at a time (read-ahead of several
files, several processes, several threads of a data loader), and the mount
serves them concurrently on one asyncio loop. The read-ahead windows of one
file are shared by its readers; these tests read one large file from many
places at once, the case that once left requests unanswered (a reader's
window was cancelled by another reader, and the request died with it).

Every wait here has a bound, so a hang fails the test instead of the run.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import pytest
from fuse_helpers import (FUSE_CHUNK, MountProcess, fuse_cluster, mount_factory, mount_root,  # noqa: F401
                          outcome)

BIG = 24 * FUSE_CHUNK + 12345   # many chunks and read-ahead windows, a ragged end
JOIN_S = 240


@pytest.fixture(scope="module")
def writer(mount_factory: Callable[..., MountProcess]) -> MountProcess:
    return mount_factory("w")


@pytest.fixture(scope="module")
def big_file(writer: MountProcess) -> tuple[str, bytes]:
    """A large file written and fsynced through mount w."""
    data = os.urandom(BIG)
    path = f"{writer.mountpoint}/big"
    with open(path, "wb") as f:
        f.write(data)
        os.fsync(f.fileno())
    return "big", data


def fresh_mount(mount_factory: Callable[..., MountProcess], name: str) -> str:
    """A new mount: nothing of the file is in its page cache, every read goes to the servers."""
    return mount_factory(name).mountpoint


def run_threads(target: Callable[[int], None], n: int) -> None:
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            target(k)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in threads), "a reader or writer never returned"
    assert not errors, errors[0]


@pytest.mark.parametrize("readers", [4, 8])
def test_large_reads_at_different_offsets(mount_factory: Callable[..., MountProcess],
                                          big_file: tuple[str, bytes], readers: int) -> None:
    """Each thread preads its own slice in one call, all at once, each through its own fd."""
    name, data = big_file
    path = f"{fresh_mount(mount_factory, f'r{readers}')}/{name}"
    part = -(-len(data) // readers)

    def read_slice(k: int) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            buf = bytearray(part)
            n = os.preadv(fd, [buf], k * part)
            assert bytes(buf[:n]) == data[k * part:(k + 1) * part], f"slice {k} differs"
        finally:
            os.close(fd)

    run_threads(read_slice, readers)


def test_interleaved_readers_of_one_descriptor(mount_factory: Callable[..., MountProcess],
                                               big_file: tuple[str, bytes]) -> None:
    """Threads sharing one fd read scattered 64 KiB pieces: random and sequential mixed."""
    name, data = big_file
    path = f"{fresh_mount(mount_factory, 'shared')}/{name}"
    piece = 64 * 1024
    fd = os.open(path, os.O_RDONLY)
    try:
        def read_pieces(k: int) -> None:
            for i in range(k, len(data) // piece, 6):
                off = i * piece
                assert os.pread(fd, piece, off) == data[off:off + piece], f"piece {i} differs"

        run_threads(read_pieces, 6)
    finally:
        os.close(fd)


def _reader_process(path: str, digest: str, rounds: int) -> None:
    for _ in range(rounds):
        with open(path, "rb", buffering=0) as f:
            got = hashlib.sha256(f.read()).hexdigest()
        if got != digest:
            raise SystemExit(f"{path}: read back different bytes")


def _writer_process(directory: str, k: int, files: int) -> None:
    for i in range(files):
        data = hashlib.sha256(f"{k}-{i}".encode()).digest() * (1 + (i * 389) % 9000)
        path = f"{directory}/p{k}-{i}"
        with open(path, "wb") as f:
            f.write(data)
        with open(path, "rb") as f:
            if f.read() != data:
                raise SystemExit(f"{path}: read back different bytes")


def test_processes_read_and_write_together(mount_factory: Callable[..., MountProcess],
                                           big_file: tuple[str, bytes]) -> None:
    """Four processes read the large file again and again while four others write files."""
    name, data = big_file
    mp = fresh_mount(mount_factory, "procs")
    os.mkdir(f"{mp}/written")
    ctx = multiprocessing.get_context("spawn")
    digest = hashlib.sha256(data).hexdigest()
    procs = [ctx.Process(target=_reader_process, args=(f"{mp}/{name}", digest, 3)) for _ in range(4)]
    procs += [ctx.Process(target=_writer_process, args=(f"{mp}/written", k, 20)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(JOIN_S)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    assert not hung, f"{len(hung)} of {len(procs)} processes never finished"
    assert [p.exitcode for p in procs] == [0] * len(procs)
    assert len(os.listdir(f"{mp}/written")) == 4 * 20


def test_concurrent_readers_and_writers(writer: MountProcess) -> None:
    """Many threads at once, each writing and reading back its own files."""
    d = f"{writer.mountpoint}/threads"
    os.mkdir(d)

    def worker(k: int) -> None:
        for i in range(25):
            data = hashlib.sha256(f"{k}-{i}".encode()).digest() * (1 + (i * 97) % 700)
            with open(f"{d}/t{k}-{i}", "wb") as f:
                f.write(data)
            with open(f"{d}/t{k}-{i}", "rb") as f:
                assert f.read() == data
            os.stat(f"{d}/t{k}-{i}")
        big = os.urandom(FUSE_CHUNK * 2 + k)
        with open(f"{d}/big{k}", "wb") as f:
            f.write(big)
        with open(f"{d}/big{k}", "rb") as f:
            assert f.read() == big

    run_threads(worker, 12)
    assert len(os.listdir(d)) == 12 * 26


def test_many_threads_stat_and_list_while_creating(writer: MountProcess) -> None:
    """Lookups, listings and creates of one directory from many threads interleave safely."""
    d = f"{writer.mountpoint}/mixed"
    os.mkdir(d)

    def create(k: int) -> None:
        for i in range(40):
            with open(f"{d}/c{k}-{i}", "wb") as f:
                f.write(b"x" * k)

    def look(_: int) -> None:
        for _ in range(30):
            for entry in os.listdir(d):
                os.stat(f"{d}/{entry}")  # nothing removes here: a listed name must stat

    with ThreadPoolExecutor(2) as pool:
        f1 = pool.submit(run_threads, create, 6)
        f2 = pool.submit(run_threads, look, 3)
        f1.result(JOIN_S)
        f2.result(JOIN_S)
    assert sorted(os.listdir(d)) == sorted(f"c{k}-{i}" for k in range(6) for i in range(40))


def test_a_stuck_mount_can_be_diagnosed(mount_factory: Callable[..., MountProcess]) -> None:
    """--fuse-debug logs each request and its reply; SIGUSR1 logs what the mount's tasks wait on."""
    m = mount_factory("diag", ["--fuse-debug"])
    os.stat(f"{m.mountpoint}/.")
    assert outcome(os.stat, f"{m.mountpoint}/missing") == "ENOENT"
    os.kill(m.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while "SIGUSR1:" not in m.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "asyncio tasks" in m.log_text()
    assert "opcode: LOOKUP" in m.log_tail(lines=10_000)


async def test_the_task_dump_survives_a_task_without_a_stack(caplog: pytest.LogCaptureFixture) -> None:
    """A frame of compiled code can lack a line number; the dump says so and goes on."""
    import asyncio

    from superfs.fuse.mount import dump_tasks

    class NoStack(asyncio.Task):  # type: ignore[type-arg]
        def print_stack(self, *, limit: int | None = None, file: object = None) -> None:
            raise TypeError("'<=' not supported between instances of 'int' and 'NoneType'")

    loop = asyncio.get_running_loop()
    loop.set_task_factory(lambda lp, coro, **kw: NoStack(coro, loop=lp, **kw))
    try:
        waiter = asyncio.ensure_future(asyncio.sleep(30))
        await asyncio.sleep(0)
        with caplog.at_level("WARNING", logger="superfs.fuse.mount"):
            dump_tasks()
        assert "asyncio tasks" in caplog.text and "no stack: TypeError" in caplog.text
        waiter.cancel()
    finally:
        loop.set_task_factory(None)
