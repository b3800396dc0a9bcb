"""Tier 4: a data server drained while programs read and write through a FUSE mount (issue 21).

The mount's write-back handles keep a file's layout for as long as the file
is open; a drain under them must neither fail a read or a write nor lose a
byte, and every chunk ends with R copies where its layout places it.
"""
from __future__ import annotations

import hashlib
import os
import threading
from typing import Iterator

import pytest
from fuse_helpers import fuse_unavailable, mdir, mnt, mount_factory, mount_root, start_fuse_cluster  # noqa: F401
from t5_support import assert_clean
from test_t3_rebalance import admin_cli, placement_report

from superfs.cli.launcher import LocalCluster


@pytest.fixture(scope="module")
def fuse_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    c = start_fuse_cluster(str(tmp_path_factory.mktemp("fusedrain")), data_servers=3, replicas=2)
    yield c
    c.stop()


def test_drain_under_a_mount_that_reads_and_writes(fuse_cluster: LocalCluster, mdir: str) -> None:
    files: dict[str, str] = {}
    for i in range(8):
        data = os.urandom(256 * 1024 * (1 + i % 4) + 333)
        with open(os.path.join(mdir, f"f{i}"), "wb") as f:
            f.write(data)
        files[os.path.join(mdir, f"f{i}")] = hashlib.sha256(data).hexdigest()
    held = os.path.join(mdir, "held")
    content = bytearray(os.urandom(4 * 256 * 1024))
    with open(held, "wb") as f:
        f.write(content)
    errors: list[str] = []
    stop = threading.Event()

    def load() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            for p, digest in list(files.items()):
                try:
                    with open(p, "rb") as f:
                        if hashlib.sha256(f.read()).hexdigest() != digest:
                            errors.append(f"{p}: different bytes")
                except OSError as e:
                    errors.append(f"read {p}: {e}")
            try:
                data = os.urandom(300 * 1024)
                with open(os.path.join(mdir, f"w{n}"), "wb") as f:
                    f.write(data)
                files[os.path.join(mdir, f"w{n}")] = hashlib.sha256(data).hexdigest()
            except OSError as e:
                errors.append(f"write w{n}: {e}")

    with open(held, "r+b") as h:  # open across the drain: the mount keeps its layout
        h.write(b"before")
        content[0:6] = b"before"
        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        rc, out = admin_cli(fuse_cluster, "drain", "1")
        stop.set()
        worker.join(timeout=120)
        assert rc == 0, out
        for i in range(4):
            h.seek(i * 256 * 1024 + 1000)
            h.write(b"after-the-drain")
            content[i * 256 * 1024 + 1000:i * 256 * 1024 + 1015] = b"after-the-drain"
    assert errors == [], errors[:10]
    with open(held, "rb") as f:
        assert f.read() == bytes(content)
    for p, digest in files.items():
        with open(p, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, p
    counts, missing = placement_report(fuse_cluster)
    assert not missing and 1 not in counts, (counts, missing)
    assert_clean(fuse_cluster)


