"""Garbage collection and replica repair around data servers that go away.

- Chunks of unlinked and shrunk files are reclaimed in the background; while
  a data server is down the reclaim item stays queued (its copies there are
  still to delete) and is finished when it comes back; live chunks are never
  touched.
- A data server that loses its disk for good (state deleted) and comes back
  empty: every file still reads back byte-identical, from the surviving
  replicas, before and after it is back; ``superfs repair`` re-creates its
  replicas, after which every chunk has R healthy replicas again (any one
  data server can then be stopped and everything still reads).
"""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import SMALL_CHUNK
from t5_support import (address, assert_clean, blob, chunks_of, ensure_all_up, fsck, ino_of, restart, retry,
                        wait_until, with_admin)

from superfs.client import Client, connect

BIG = 2 * SMALL_CHUNK + 333


def _reclaim_items(cluster, ino: int) -> list[int]:
    """from_size of the reclaim items queued for ``ino``, after one forced background round."""
    async def fn(admin):
        out = []
        for s in admin.shards():
            p = await admin.run_maintenance(s.id)
            out += [r.from_size for r in p.reclaim if r.ino == ino]
        return out
    return with_admin(cluster, fn)


def test_reclaim_waits_for_a_down_data_server_and_never_touches_live_chunks(cluster):
    ensure_all_up(cluster)
    with connect(address(cluster), timeout_s=3.0) as c:
        c.mkdir("/gc")
        data = {name: blob(name, BIG) for name in ("gone", "shrunk", "live")}
        for name, d in data.items():
            c.write_bytes(f"/gc/{name}", d)
        ino = {name: ino_of(c, f"/gc/{name}") for name in data}
        cluster.kill("data-1")
        c.unlink("/gc/gone")
        c.truncate("/gc/shrunk", SMALL_CHUNK // 2)
        # data-1 still holds the unlinked file's chunks: its item stays queued, round after round
        for _ in range(3):
            assert _reclaim_items(cluster, ino["gone"]) == [0]
        # a shrink is cut only by the truncate itself, never later (a later cut could hit new writes):
        # what data-1 missed stays there past the end of the file, invisible
        assert _reclaim_items(cluster, ino["shrunk"]) == []
        assert c.read_bytes("/gc/live") == data["live"]  # served by data-0 meanwhile
        assert c.read_bytes("/gc/shrunk") == data["shrunk"][:SMALL_CHUNK // 2]
        restart(cluster, "data-1")
        wait_until(lambda: not _reclaim_items(cluster, ino["gone"]), "the queued reclaim to finish")
        assert chunks_of(cluster, ino["gone"]) == {0: [], 1: []}
        assert chunks_of(cluster, ino["live"]) == {0: [0, 1, 2], 1: [0, 1, 2]}
        assert chunks_of(cluster, ino["shrunk"]) == {0: [0], 1: [0, 1, 2]}
        assert retry(lambda: c.read_bytes("/gc/live")) == data["live"]
        assert c.read_bytes("/gc/shrunk") == data["shrunk"][:SMALL_CHUNK // 2]
        # fsck: clean, with the missed cut reported as garbage; --repair cuts it
        rc, report = fsck(cluster)
        assert rc == 0 and f"chunk(s) [0-2] of inode {ino['shrunk']} hold bytes past its end" in report, report
        rc, report = fsck(cluster, repair=True, grace_s=0)  # no writer is active: young garbage goes too
        assert rc == 0 and "clean: no inconsistencies (0 garbage" in report.split("re-checking")[-1], report
        assert chunks_of(cluster, ino["shrunk"]) == {0: [0], 1: [0]}
        # extending the shrunk file reads zeros where the cut bytes were, from either replica
        c.truncate("/gc/shrunk", BIG)
        assert c.read_bytes("/gc/shrunk") == data["shrunk"][:SMALL_CHUNK // 2] + bytes(BIG - SMALL_CHUNK // 2)
    assert_clean(cluster)


def _read_all(c: Client, files: dict[str, bytes]) -> None:
    for path, want in files.items():
        assert c.read_bytes(path) == want, path


def test_data_server_lost_for_good_reads_survive_and_repair_restores_r_replicas(cluster_factory):
    cluster = cluster_factory(data_servers=3, replicas=2)
    files = {f"/lost/f{i}": blob(f"f{i}", size) for i, size in
             enumerate([10, 3000, 5000, SMALL_CHUNK, BIG, 4 * SMALL_CHUNK + 17, SMALL_CHUNK + 1])}
    with connect(address(cluster), timeout_s=3.0) as c:
        c.mkdir("/lost")
        for path, d in files.items():
            c.write_bytes(path, d)
        inos = [ino_of(c, p) for p in files]
    held = sum(len(chunks_of(cluster, i)[1]) for i in inos)
    assert held > 0

    cluster.kill("data-1")
    shutil.rmtree(cluster.path("data-1"))
    with connect(address(cluster), timeout_s=3.0) as c:
        _read_all(c, files)  # down: the other replica of each chunk answers
    restart(cluster, "data-1")  # back, empty, under the same id
    assert retry(lambda: with_admin(cluster, lambda admin: admin.data_stats(1))).degraded
    with connect(address(cluster), timeout_s=3.0) as c:
        _read_all(c, files)  # back but empty: it sends readers to the other replica instead of reading holes
        with pytest.raises(OSError):  # a write would make its replica from a partial chunk: refused
            c.write_bytes("/lost/new", blob("new", 8 * SMALL_CHUNK))
        c.unlink("/lost/new")

    rc, report = fsck(cluster)
    assert rc == 1 and "server-degraded: data server 1" in report and "replica-missing" in report, report
    out = subprocess.run([sys.executable, "-m", "superfs.cli.main", "repair", "--state-dir", cluster.state_dir],
                         capture_output=True, text=True, timeout=300)
    print(out.stdout, out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "done: every chunk has its 2 healthy replicas" in out.stdout
    assert sum(len(chunks_of(cluster, i)[1]) for i in inos) == held
    assert not retry(lambda: with_admin(cluster, lambda admin: admin.data_stats(1))).degraded
    assert_clean(cluster)
    # every chunk on two healthy replicas: any one data server can go and everything still reads
    for sid in (0, 1, 2):
        cluster.kill(f"data-{sid}")
        with connect(address(cluster), timeout_s=3.0) as c:
            _read_all(c, files)
        restart(cluster, f"data-{sid}")
        retry(lambda: with_admin(cluster, lambda admin: admin.data_stats(sid)))  # reachable again
    with connect(address(cluster), timeout_s=3.0) as c:
        retry(lambda: c.write_bytes("/lost/after", blob("after", BIG)))
        assert c.read_bytes("/lost/after") == blob("after", BIG)
