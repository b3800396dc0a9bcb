"""fsck finds every kind of inconsistency a test plants on purpose, and --repair fixes it.

Damage is planted with the same primitive calls fsck's repairs use (an entry
pointing nowhere, a link count off by two, a reservation released, a chunk
overwritten on one replica ...), and, for what no call can produce, by
editing a stopped daemon's store with its own engine or flipping bytes on
disk. Then: fsck reports each one and exits 1; fsck --repair fixes them and
the re-check is clean; the files read back as they were; what fsck cannot
fix is reported as such.
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest
from conftest import SMALL_CHUNK
from t5_support import address, blob, fsck, ino_of, restart, wait_until, with_admin

from superfs import capability, routing
from superfs.client import connect
from superfs.dirserver.store import DirStore
from superfs.shard.records import DIRECTORY
from superfs.shard.store import FileMetaStore
from superfs.v1 import superfs_pb2 as pb

BIG = 2 * SMALL_CHUNK + 100
PATTERN = b"FSCK-CORRUPTION-PATTERN-"


def cli(cluster, *args: str) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-m", "superfs.cli.main", *args, "--state-dir", cluster.state_dir],
                         capture_output=True, text=True, timeout=300)
    print(f"$ superfs {' '.join(args)}  -> {out.returncode}\n{out.stdout}{out.stderr}")  # shown on failure
    return out.returncode, out.stdout + out.stderr


def fake_file_ino(cluster, seq: int) -> int:
    return int(routing.make_file_ino(7, seq))


def test_fsck_finds_each_planted_inconsistency_and_repair_fixes_it(cluster_factory):
    cluster = cluster_factory(data_servers=3, replicas=2)
    c = connect(address(cluster))
    c.makedirs("/d1")
    c.makedirs("/d2")
    c.mkdir("/d3")
    c.mkdir("/d4")
    f1 = blob("f1", BIG)
    c.write_bytes("/d1/f1", f1)
    c.write_bytes("/d1/f2", b"inline bytes")
    c.write_bytes("/d2/f3", b"three")
    c.write_bytes("/d1/orphan", b"orphan")
    c.write_bytes("/d1/nl", b"nlink")
    corrupt = (PATTERN * (SMALL_CHUNK // len(PATTERN) + 1))[:SMALL_CHUNK]
    c.write_bytes("/d1/corrupt", corrupt)
    ino = {p: ino_of(c, p) for p in ("/d1", "/d2", "/d3", "/d4", "/d1/f1", "/d1/f2", "/d2/f3", "/d1/orphan",
                                      "/d1/nl", "/d1/corrupt")}
    layout = list(c.aio.cluster.data_server_ids())
    reps0 = routing.chunk_replicas(ino["/d1/f1"], 0, layout, 2)
    reps1 = routing.chunk_replicas(ino["/d1/f1"], 1, layout, 2)
    outsider = next(s for s in layout if s not in reps0)
    ghost_file = fake_file_ino(cluster, 999_999)
    leaked = fake_file_ino(cluster, 888_888)

    async def plant(admin):
        def shard_stub(parent: int, name: str):
            return admin.cluster.shard(admin.shard_of_entry(parent, name))
        # a name pointing at an inode that does not exist
        await shard_stub(ino["/d1"], "dangling").remote_link(pb.RemoteLinkRequest(
            parent_ino=ino["/d1"], name="dangling", ino=ghost_file, type=pb.REGULAR, txid="plant-1"))
        # a file in a directory that does not exist (its inode counts that link)
        await admin.adjust_nlink(ino["/d2/f3"], +1)
        await shard_stub(999_999, "lost").remote_link(pb.RemoteLinkRequest(
            parent_ino=999_999, name="lost", ino=ino["/d2/f3"], type=pb.REGULAR, txid="plant-2"))
        # an inode whose only name is gone; an inode counting two links too many
        await admin.remove_entry(ino["/d1"], "orphan", ino["/d1/orphan"], drop_link=False)
        await admin.adjust_nlink(ino["/d1/nl"], +2)
        # a directory without its reservation; a reservation without its directory
        await admin.release_dir_entry(1, "d4", ino["/d4"])
        await admin.reserve_dir_entry(1, "ghost", 999_998)
        # a live directory sealed on one shard
        await admin.cluster.shard(0).seal_dir(pb.SealRequest(dir_ino=ino["/d3"]))
        # chunks of no file; a lost replica; a diverging replica; a misplaced replica
        with open(cluster.path("secret"), "rb") as f:  # no shard signs for a file that does not exist
            cap = capability.sign_chunk(f.read().strip(), ino=leaked, rights=6)
        await admin.cluster.data(layout[0]).write_chunk(pb.WriteChunkRequest(
            key=pb.ChunkKey(ino=leaked, index=0), data=b"leaked", cap=cap))
        await admin.delete_chunks(reps1[1], ino["/d1/f1"], from_index=1, to_index=2)
        await admin.put_chunk(reps0[1], ino["/d1/f1"], 0, blob("junk", SMALL_CHUNK))
        await admin.put_chunk(outsider, ino["/d1/f1"], 0, f1[:SMALL_CHUNK])
        # garbage: bytes past the end of a chunked file, chunks of an inline file
        for sid in routing.chunk_replicas(ino["/d1/f1"], 9, layout, 2):
            await admin.put_chunk(sid, ino["/d1/f1"], 9, b"past the end")
        await admin.put_chunk(layout[1], ino["/d1/f2"], 0, b"never converted")

    with_admin(cluster, plant)
    # a corrupt replica: bytes flipped on disk under a stopped data server
    victim = routing.chunk_replicas(ino["/d1/corrupt"], 0, layout, 2)[1]
    cluster.stop_daemon(f"data-{victim}")
    hits = 0
    for path in glob.glob(cluster.path(f"data-{victim}", "**", "slots", "*.dat"), recursive=True):
        with open(path, "r+b") as f:
            raw = bytearray(f.read())
            at = raw.find(PATTERN)
            while at != -1:
                raw[at + 3] ^= 0xFF
                hits += 1
                at = raw.find(PATTERN, at + 1)
            f.seek(0)
            f.write(raw)
    assert hits
    # a directory with a wrong link count: the dir server's store edited while it is down
    cluster.stop_daemon("dir")
    store = DirStore.open(os.path.join(cluster.path("dir"), "dir.lmdb"))
    d1 = store.get(ino["/d1"])
    d1.attr.nlink = 7
    store.db.write_now(lambda txn: store.put_dir_txn(txn, d1))
    store.close()
    restart(cluster, "dir")
    restart(cluster, f"data-{victim}")
    c.close()

    rc, report = cli(cluster, "fsck")
    assert rc == 1, report
    for line in [
        f"/d1/dangling: points at inode {ghost_file}, which does not exist",
        f"<dir 999999>/lost: file {ino['/d2/f3']} in directory 999999, which does not exist",
        f"inode {ino['/d1/orphan']} (6 bytes, nlink 1) has no name",
        f"inode {ino['/d1/nl']}: link count 3, 1 names",
        f"/d4: directory {ino['/d4']} has no reservation",
        "/ghost: reserved on shard",
        "/d3: sealed on shard 0",
        f"of inode {leaked}, which does not exist",
        f"inode {ino['/d1/f1']} chunk 1: no replica on data server {reps1[1]}",
        f"inode {ino['/d1/f1']} chunk 0: replicas",
        f"inode {ino['/d1/f1']} chunk 0 on data server {outsider}: not one of its replicas",
        f"inode {ino['/d1/corrupt']} chunk 0 on data server {victim}: checksum mismatch",
        "/d1: link count 7, 2 counted",
        "[garbage] chunk-past-eof: data server",
        f"of inode {ino['/d1/f2']}, whose bytes are inline",
    ]:
        assert line in report, f"{line!r} missing from:\n{report}"
    for kind in ("entry-dangling", "entry-no-parent", "inode-orphan", "inode-nlink", "dir-unreserved",
                 "stale-reservation", "sealed-live-dir", "chunk-no-file", "replica-missing", "replica-differs",
                 "replica-corrupt", "dir-nlink"):
        assert kind in report.split("NOT clean")[-1], kind

    rc, report = cli(cluster, "fsck", "--repair", "--grace", "0")  # the garbage was planted just now
    assert rc == 0, report
    assert "NOT fixed" not in report, report
    rc, report = cli(cluster, "fsck")
    assert rc == 0 and "clean: no inconsistencies (0 garbage" in report, report

    with connect(address(cluster)) as c:
        assert c.read_bytes("/d1/f1") == f1  # the lost and the diverging replicas re-made from the primary
        assert c.read_bytes("/d1/corrupt") == corrupt
        assert sorted(c.listdir("/lost+found")) == sorted([f"#{ino['/d1/orphan']}", "999999-lost"])
        assert c.read_bytes(f"/lost+found/#{ino['/d1/orphan']}") == b"orphan"
        assert c.read_bytes("/lost+found/999999-lost") == b"three"
        assert c.stat("/d2/f3").st_nlink == 2 and c.stat("/d1/nl").st_nlink == 1
        assert "dangling" not in c.listdir("/d1") and c.stat("/d1").st_nlink == 2
        c.write_bytes("/d3/created", b"unsealed")  # on every shard: d3 is no longer sealed anywhere
        for i in range(8):
            c.write_bytes(f"/d3/more{i}", b"x")
        c.mkdir("/ghost")  # the stale reservation is gone
        assert c.isdir("/d4")
        c.rmdir("/d4")
        c.mkdir("/d4")  # its name was reserved again, so it could be removed and re-made


def test_fsck_says_what_it_cannot_repair(cluster_factory):
    cluster = cluster_factory()
    with connect(address(cluster)) as c:
        c.makedirs("/a/b")
        c.write_bytes("/a/b/f", b"data")
        parent = ino_of(c, "/a/b")
        m = c.aio.cluster.map
        # a name stored on the wrong shard: edited into a stopped shard's store
        name = next(f"x{i}" for i in range(1000)
                    if m.partition_shard[routing.entry_partition(parent, f"x{i}", m.num_partitions)] == 1)
    cluster.stop_daemon("shard-0")
    store = FileMetaStore(cluster.path("shard-0"))
    store.write_now(lambda t: t.put_entry(parent, name.encode(), 999_997, DIRECTORY))
    store.close()
    # a directory whose parent does not exist
    cluster.stop_daemon("dir")
    dstore = DirStore.open(os.path.join(cluster.path("dir"), "dir.lmdb"))
    lost = pb.DirInfo(ino=900_000, parent_ino=800_000, name="adrift",
                      attr=pb.Attr(ino=900_000, mode=0o40755, nlink=2))
    dstore.db.write_now(lambda txn: dstore.put_dir_txn(txn, lost))
    dstore.close()
    restart(cluster, "dir")
    restart(cluster, "shard-0")
    rc, report = fsck(cluster, repair=True)
    assert rc == 1, report
    assert f"entry-misplaced: /a/b/{name}: stored on shard 0" in report, report
    assert "dir-orphan: directory 900000 ('adrift', parent 800000) is not reachable from root" in report
    assert "NOT fixed: entry-misplaced" in report and "NOT fixed: dir-orphan" in report
    after = report.split("re-checking")[-1]
    assert "NOT clean: 2 inconsistencies (dir-orphan, entry-misplaced)" in after, report


def test_fsck_waits_for_operations_in_flight_and_reports_those_it_cannot_finish(cluster_factory):
    cluster = cluster_factory()
    with connect(address(cluster), timeout_s=2.0) as c:
        c.mkdir("/a")
        c.mkdir("/b")
        m = c.aio.cluster.map

        def shard(parent: str, n: str) -> int:
            return m.partition_shard[routing.entry_partition(ino_of(c, parent), n, m.num_partitions)]

        src = next(f"s{i}" for i in range(1000) if shard("/a", f"s{i}") == 0)
        dst = next(f"t{i}" for i in range(1000) if shard("/b", f"t{i}") == 1)
        c.write_bytes(f"/a/{src}", b"moving")
        cluster.kill("shard-1")
        with pytest.raises(OSError):
            c.rename(f"/a/{src}", f"/b/{dst}")  # intent on shard 0; shard 1 is down
        rc, report = fsck(cluster, settle_s=1)
        assert rc == 1
        assert "unreachable: shard 1" in report and "pending: shard 0: unfinished rename" in report, report
        restart(cluster, "shard-1")
        rc, report = fsck(cluster)
        assert rc == 0, report
        assert wait_until(lambda: c.read_bytes(f"/b/{dst}") == b"moving", "the rename to finish")
        assert not c.exists(f"/a/{src}")
