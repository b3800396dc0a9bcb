"""The reclaim queue cannot be blocked: items that cannot finish never hold up the ones behind them.

A freed file's chunks are deleted by its shard's background loop, the item
staying queued until every data server of its layout answered. Items that
cannot finish now (a data server down for days, a server that no longer
exists) must be retried later with backoff and must never stop the items
behind them; and a client cannot plant such items in the first place:
ConvertToChunked checks the layout it is sent against the cluster map.
"""
from __future__ import annotations

import errno

import pytest
from conftest import SMALL_CHUNK
from t5_support import address, blob, chunks_of, home_shard, ino_of, restart, wait_until, with_admin

from superfs import routing
from superfs.client import connect
from superfs.client.admin import ROOT
from superfs.errors import FsError
from superfs.shard.records import Inode
from superfs.shard.store import FileMetaStore
from superfs.v1 import superfs_pb2 as pb

BIG = 3 * SMALL_CHUNK + 5
UNKNOWN_SERVER = 77   # never in the cluster map
DOWN_SERVER = 2       # in the map, down for the whole test


def _chunks_on(cluster, ino: int, servers: list[int]) -> dict[int, list[int]]:
    async def fn(admin):
        return {s: sorted(c.key.index for c in (await admin.chunks_of(s, ino))[0]) for s in servers}
    return with_admin(cluster, fn)


def _pending_reclaim(cluster, shard: int) -> list[pb.ReclaimEntry]:
    async def fn(admin):
        return list((await admin.pending(shard)).reclaim)
    return with_admin(cluster, fn)


def test_300_unfinishable_items_do_not_stop_a_real_files_reclaim(cluster_factory):
    cluster = cluster_factory(data_servers=3, replicas=2)
    with connect(address(cluster)) as c:
        c.mkdir("/r")
        for i in range(10):  # an inode of partition 0 would sort among the planted items below
            name = f"real{i}"
            c.write_bytes(f"/r/{name}", blob("real", BIG))
            real = ino_of(c, f"/r/{name}")
            if routing.ino_partition(real) > 0:
                break
        shard = home_shard(c, f"/r/{name}")
    assert sum(len(v) for v in chunks_of(cluster, real).values()) == 2 * 4  # 4 chunks, R=2

    # 300 freed files whose items sort before the real one's: half name a server that does
    # not exist (only a client's lie could have put it there), half one that is down for good
    cluster.stop_daemon(f"shard-{shard}")
    store = FileMetaStore(cluster.path(f"shard-{shard}"))

    def plant(t):
        for seq in range(1, 301):
            server = UNKNOWN_SERVER if seq % 2 else DOWN_SERVER
            node = Inode(int(routing.make_file_ino(0, seq)), 0o100644, 0, 0, 0, SMALL_CHUNK, 0, 0, 0, 1,
                         inline=False, chunk_size=SMALL_CHUNK, layout=(server,))
            t.add_reclaim(node, 0, freed=True)
    store.write_now(plant)
    store.close()
    cluster.kill(f"data-{DOWN_SERVER}")
    restart(cluster, f"shard-{shard}")

    with connect(address(cluster)) as c:
        c.unlink(f"/r/{name}")
    live = [s for s in (0, 1, 2) if s != DOWN_SERVER]
    wait_until(lambda: not any(_chunks_on(cluster, real, live).values()),
               "the real file's chunks on the live data servers to be reclaimed")
    left = _pending_reclaim(cluster, shard)
    # the items naming a server the map does not know are dropped (reported in the log) ...
    assert not [r for r in left if UNKNOWN_SERVER in r.layout]
    # ... those naming the down server wait for it, and the real file's item only for it
    assert len([r for r in left if list(r.layout) == [DOWN_SERVER]]) >= 150
    assert [list(r.layout) for r in left if r.ino == real] in ([], [[DOWN_SERVER]])
    assert "not in the cluster map" in cluster.log_tail(f"shard-{shard}", 400)


@pytest.mark.parametrize("layout", [[UNKNOWN_SERVER], [0, 0], [], [0, 1, 2, 3]])
def test_convert_to_chunked_refuses_a_layout_the_cluster_map_does_not_back(cluster_factory, layout):
    cluster = cluster_factory(data_servers=3, replicas=2)
    with connect(address(cluster)) as c:
        c.write_bytes("/small", b"inline")
        ino = ino_of(c, "/small")
        shard = home_shard(c, "/small")

    async def convert(admin):
        info = await admin.get_file(ino)
        req = pb.ConvertRequest(ino=ino, creds=ROOT.pb(), layout=layout, chunk_size=SMALL_CHUNK,
                                expect_generation=info.attr.generation)
        return await admin.cluster.shard(shard).convert_to_chunked(req)

    with pytest.raises(FsError) as e:
        with_admin(cluster, convert)
    assert e.value.errno == errno.EINVAL
    with connect(address(cluster)) as c:
        assert c.read_bytes("/small") == b"inline"
