"""kvserve tier 1: the DRAM arena's pages and how other processes reach it.

Decode attention reads the arena at memory speed, and 4 KiB pages cost it
~15% (bench/README.md). Where the host's shared-memory policy gives 4 KiB
pages, the daemon puts the arena on a private huge-page tmpfs instead
(kvserve.huge_shmem); these tests check that it really gets huge pages,
leaves no mount behind, and that another process still maps it.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from kvserve.arena import Arena, shmem_huge_pages
from kvserve.huge_shmem import pmd_mapped_bytes

SIZE = 16 << 20
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_arena_is_on_huge_pages() -> None:
    if shmem_huge_pages() == "deny":
        pytest.fail("this host denies huge pages to all shared memory: the arena cannot have them")
    a = Arena.create(SIZE)
    try:
        assert a.pages.startswith("huge pages"), a.pages
        assert pmd_mapped_bytes(a.view.ctypes.data) >= SIZE // 2, a.pages
        assert a.pages.endswith("% mapped huge)"), a.pages
    finally:
        a.close()


def test_no_huge_pages_keeps_a_memfd() -> None:
    a = Arena.create(SIZE, huge_pages=False)
    try:
        assert os.readlink(a.path).startswith("/memfd:kvserve-arena")
        if shmem_huge_pages() == "never":
            assert a.pages.startswith("4 KiB pages")
            assert pmd_mapped_bytes(a.view.ctypes.data) == 0
    finally:
        a.close()


def test_no_mount_is_left_in_our_namespace() -> None:
    a = Arena.create(SIZE)
    try:
        with open("/proc/self/mountinfo") as f:
            assert "kvserve-arena" not in f.read()
    finally:
        a.close()


def test_another_process_maps_the_arena() -> None:
    a = Arena.create(SIZE)
    try:
        data = np.random.default_rng(7).integers(0, 256, 1 << 20, dtype=np.uint8)
        a.write([(4 << 20, len(data))], data)
        code = ("import sys, hashlib\n"
                "from kvserve.arena import Arena\n"
                "b = Arena.attach(sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3]))\n"
                "print(hashlib.sha256(b.view[4 << 20:5 << 20].tobytes()).hexdigest())\n")
        r = subprocess.run([sys.executable, "-c", code, a.path, str(SIZE), a.token.hex()], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == hashlib.sha256(data.tobytes()).hexdigest()
    finally:
        a.close()


def test_a_host_that_refuses_namespaces_gets_a_memfd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the helper cannot make its tmpfs (a container's seccomp profile), the arena is a memfd."""
    import kvserve.arena as arena_mod
    monkeypatch.setattr(arena_mod, "huge_tmpfs_file", lambda size: (None, "no private tmpfs (unshare: EPERM)"))
    monkeypatch.setattr(arena_mod, "shmem_huge_pages", lambda: "never")
    a = Arena.create(SIZE)
    try:
        assert os.readlink(a.path).startswith("/memfd:kvserve-arena")
        assert a.pages.startswith("4 KiB pages"), a.pages
        a.write([(4096, 4)], b"\x00\x01\x02\x03")  # a working arena, past its token page
        assert bytes(a.view[4096:4100]) == b"\x00\x01\x02\x03"
    finally:
        a.close()


def test_the_helper_reports_why_it_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper that cannot mount says why, and no descriptor leaks."""
    from kvserve import huge_shmem
    monkeypatch.setattr(huge_shmem, "_HELPER", "import sys; sys.stderr.write('mounting: Operation not permitted\\n'); "
                                               "sys.exit(1)")
    before = len(os.listdir("/proc/self/fd"))
    fd, why = huge_shmem.huge_tmpfs_file(SIZE)
    assert fd is None and "Operation not permitted" in why
    assert len(os.listdir("/proc/self/fd")) == before
