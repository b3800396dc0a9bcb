"""Crash tier: data servers killed in the middle of a chained write, and a flipped byte on disk.

A chunk write goes to the chunk's first replica (the primary), which
forwards it piece by piece to the next (the tail). The primary or the tail
is made to die (exit 137, as ``kill -9``) in the middle of the payload, or
the primary right after its own commit: the write then fails for its
caller, and is never acknowledged with a replica missing. After a restart
the same write succeeds and both replicas hold it.

A byte flipped in one block of one replica's slot file is caught by the
block checksum when read, the block is fetched from the other replica and
written back, and the reader gets the right bytes.
"""
from __future__ import annotations

import glob
from typing import Iterator

import pytest
from t5_support import arm, blob, restart, wait_crashed, with_admin

from superfs import routing
from superfs.cli.launcher import LocalCluster
from superfs.client import connect

MiB = 1 << 20
CHUNK = 4 * MiB   # four 1 MiB pieces per chunk write: "the middle" is real


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    from conftest import start_cluster
    c = start_cluster(str(tmp_path_factory.mktemp("chain")), inline_threshold=64 * 1024, chunk_size=CHUNK)
    yield c
    c.stop()


def _replicas(cluster: LocalCluster, path: str) -> tuple[int, list[int]]:
    """(ino, [primary, tail] of chunk 0) of a chunked file."""
    with connect(str(cluster.config["dir_server"])) as c:
        node = c.run(c.aio.paths.resolve(path, c.creds))[0]
        return node.ino, routing.chunk_replicas(node.ino, 0, list(node.file.layout), 2)


def _replica_bytes(cluster: LocalCluster, ino: int) -> dict[int, bytes | None]:
    async def fn(admin):  # type: ignore[no-untyped-def]
        out = {}
        for d in admin.data_servers():
            out[d.id] = await admin.read_chunk(d.id, ino, 0, CHUNK)
        return out
    return with_admin(cluster, fn)


def _write(cluster: LocalCluster, path: str, data: bytes) -> None:
    with connect(str(cluster.config["dir_server"]), timeout_s=10.0) as c:
        with c.open(path, "r+b") as f:
            f.write(data)


@pytest.mark.parametrize("who,point", [("primary", "data.chain_write.mid_payload"),
                                       ("tail", "data.chain_write.mid_payload"),
                                       ("primary", "data.chain_write.after_commit")])
def test_a_replica_dying_mid_write_fails_the_write_never_acknowledges_it(cluster: LocalCluster, who: str,
                                                                          point: str) -> None:
    path = f"/chain-{who}-{point.rsplit('.', 1)[1]}"
    old = blob(path + "old", CHUNK)
    with connect(str(cluster.config["dir_server"])) as c:
        c.write_bytes(path, old)
    ino, (primary, tail) = _replicas(cluster, path)
    victim = primary if who == "primary" else tail
    arm(cluster, f"data-{victim}", point)
    new = blob(path + "new", CHUNK)
    with pytest.raises(OSError):
        _write(cluster, path, new)  # not acknowledged
    wait_crashed(cluster, f"data-{victim}")
    restart(cluster, f"data-{victim}")
    # no replica holds half of it: each has the old bytes or the new ones, whole
    for sid, got in _replica_bytes(cluster, ino).items():
        assert got in (old, new), f"data server {sid} holds a torn chunk"
    _write(cluster, path, new)  # once the server is back, the write goes through...
    assert set(_replica_bytes(cluster, ino).values()) == {new}  # ...to every replica
    with connect(str(cluster.config["dir_server"])) as c:
        assert c.read_bytes(path) == new


def test_a_flipped_byte_is_caught_read_from_the_other_replica_and_repaired(cluster: LocalCluster) -> None:
    path = "/flipped"
    data = blob(path, 3 * MiB + 777)
    with connect(str(cluster.config["dir_server"])) as c:
        c.write_bytes(path, data)
    ino, replicas = _replicas(cluster, path)
    reader = routing.read_order(ino, replicas, lambda sid: True)[0]  # the replica reads go to first
    cluster.stop_daemon(f"data-{reader}")
    needle = data[2 * MiB + 1000:2 * MiB + 1032]
    hits = 0
    for f in glob.glob(cluster.path(f"data-{reader}", "**", "slots", "*.dat"), recursive=True):
        raw = bytearray(open(f, "rb").read())
        at = raw.find(needle)
        if at >= 0:
            raw[at + 7] ^= 0x01  # one bit of one block
            open(f, "r+b").write(raw)
            hits += 1
    assert hits == 1
    restart(cluster, f"data-{reader}")

    async def corrupt_on_reader(admin):  # type: ignore[no-untyped-def]
        return [c.corrupt for c in await admin.list_chunks(reader, verify=True) if c.key.ino == ino]

    assert with_admin(cluster, corrupt_on_reader) == [True]
    with connect(str(cluster.config["dir_server"])) as c:
        with c.open(path, "rb", buffering=0) as f:
            f.seek(2 * MiB + 990)
            assert f.read(100) == data[2 * MiB + 990:2 * MiB + 1090]  # read from that replica: repaired
        assert c.read_bytes(path) == data
    assert with_admin(cluster, corrupt_on_reader) == [False]  # written back on the reader
    assert "repaired 1 corrupt block" in cluster.log_tail(f"data-{reader}", 50)
