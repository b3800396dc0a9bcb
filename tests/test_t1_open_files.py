"""Tier 1: slot files held open between short-circuit reads (superfs/rpc/open_files.py), and the
read order that makes a file's chunks one slot file's (superfs/routing.read_order). No network."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from superfs import routing
from superfs.rpc.open_files import OpenFiles


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


@pytest.fixture
def slot(tmp_path: Path) -> tuple[tuple[str, int, int], Path]:
    p = tmp_path / "s22-00000.dat"
    p.write_bytes(b"x" * 4096)
    st = os.stat(p)
    return (str(p), st.st_dev, st.st_ino), p


def opener(p: Path, count: list[int]):
    def fn() -> int:
        count.append(1)
        return os.open(p, os.O_RDONLY)
    return fn


def test_reads_of_one_file_share_one_descriptor(slot) -> None:
    key, p = slot
    files, opens = OpenFiles(idle_close_s=60), []
    a = files.acquire(key, opener(p, opens))
    b = files.acquire(key, opener(p, opens))
    assert a is b and len(opens) == 1
    files.release(a)
    c = files.acquire(key, opener(p, opens))
    assert c is a and len(opens) == 1   # released but not idle long: still open
    files.release(b)
    files.release(c)
    files.close()
    assert not is_open(a.fd) and len(files) == 0


def test_an_idle_descriptor_is_closed_and_one_in_use_never(slot) -> None:
    key, p = slot
    files = OpenFiles(idle_close_s=0.05)
    busy = files.acquire(key, opener(p, []))
    assert busy is not None
    time.sleep(0.2)   # longer than idle_close_s: in use, it stays
    assert is_open(busy.fd)
    files.release(busy)
    deadline = time.monotonic() + 10
    while len(files) and time.monotonic() < deadline:   # the timer closes it
        time.sleep(0.01)
    assert len(files) == 0 and not is_open(busy.fd)


def test_past_max_open_the_longest_idle_close_first(tmp_path: Path) -> None:
    files = OpenFiles(idle_close_s=60, max_open=2)
    held = []
    for i in range(3):
        p = tmp_path / f"f{i}"
        p.write_bytes(b"y")
        f = files.acquire((str(p), 0, i), opener(p, []))
        assert f is not None
        held.append(f)
        files.release(f)
    assert len(files) == 2 and not is_open(held[0].fd) and is_open(held[2].fd)
    files.close()


def test_a_file_not_openable_is_not_held(slot) -> None:
    key, _ = slot
    files = OpenFiles()
    assert files.acquire(key, lambda: None) is None and len(files) == 0


def test_two_threads_opening_at_once_keep_one_descriptor(slot) -> None:
    key, p = slot
    files, gate, got = OpenFiles(idle_close_s=60), threading.Barrier(2), []
    fds = []

    def slow_open() -> int:
        fd = os.open(p, os.O_RDONLY)
        fds.append(fd)
        gate.wait(timeout=10)   # both have opened before either registers
        return fd

    threads = [threading.Thread(target=lambda: got.append(files.acquire(key, slow_open))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(fds) == 2 and got[0] is got[1] and got[0] is not None
    kept = got[0].fd
    assert sum(is_open(fd) for fd in fds) == 1 and is_open(kept)
    files.release(got[0])
    files.release(got[1])
    files.close()
    assert not is_open(kept)


def test_after_close_a_file_in_use_closes_when_released(slot) -> None:
    key, p = slot
    files = OpenFiles(idle_close_s=60)
    f = files.acquire(key, opener(p, []))
    assert f is not None
    files.close()
    assert is_open(f.fd)   # a read still uses it
    files.release(f)
    assert not is_open(f.fd)
    assert files.acquire(key, opener(p, [])) is None and len(files) == 0   # nothing is held any more


def test_read_order_puts_this_hosts_replicas_first_the_same_one_for_a_file() -> None:
    layout = [1, 2, 3, 4]
    here = {2, 3}.__contains__
    for ino in (7 << 40, 9 << 40):
        firsts = set()
        for index in range(64):
            replicas = routing.chunk_replicas(ino, index, layout, 2)
            order = routing.read_order(ino, replicas, here)
            assert sorted(order) == sorted(replicas)
            local = [s for s in replicas if here(s)]
            assert set(order[:len(local)]) == set(local)   # this host's first
            assert [s for s in order if not here(s)] == [s for s in replicas if not here(s)]  # the rest as given
            if len(local) == 2:
                firsts.add(order[0])
        assert len(firsts) == 1   # where both are here, every chunk of the file picks the same one
    assert routing.read_order(5, [3, 1], lambda sid: False) == [3, 1]


def test_read_order_spreads_files_over_this_hosts_servers() -> None:
    firsts = {routing.read_order(ino, [1, 2], lambda sid: True)[0] for ino in range(1, 200)}
    assert firsts == {1, 2}
