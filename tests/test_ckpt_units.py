"""ckpt, tier 1: the pure parts (geometry, planning, manifest, placement, streaming) with no cluster.

These fail first when the logic is wrong, before any process or daemon
is involved.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from ckpt.boxes import Box, tiling_problem
from ckpt.checksum import BlockHasher, block_sums
from ckpt.errors import FutureVersionError, ManifestError, PlanError
from ckpt.manifest import FileEntry, Manifest
from ckpt.placement import FilePlacement, balanced_chunk_map, server_loads
from ckpt.save_planner import GlobalPlanner, local_plan
from ckpt.state import Shard, flatten, unflatten
from ckpt.storage import FileWriter
from ckpt.writer import UnitStream, byte_segments


# ------------------------------------------------------------------ boxes

def test_boxes_tile_rows_cols_and_blocks() -> None:
    rows = [Box((i * 4, 0), (4, 10)) for i in range(3)]
    assert tiling_problem(rows, (12, 10)) is None
    cols = [Box((0, 0), (12, 3)), Box((0, 3), (12, 7))]
    assert tiling_problem(cols, (12, 10)) is None
    blocks = [Box((r, c), (6, 5)) for r in (0, 6) for c in (0, 5)]
    assert tiling_problem(blocks, (12, 10)) is None


def test_boxes_report_gaps_overlaps_and_out_of_bounds() -> None:
    assert "cover 80 of 120" in tiling_problem([Box((0, 0), (8, 10))], (12, 10))
    assert "overlap" in tiling_problem([Box((0, 0), (8, 10)), Box((6, 0), (6, 10))], (12, 10))
    assert "outside" in tiling_problem([Box((0, 0), (13, 10))], (12, 10))
    # column shards with one overlapping pair, found by the sweep on the right dimension
    cols = [Box((0, c), (12, 1)) for c in range(10)] + [Box((0, 4), (12, 2))]
    assert "overlap" in tiling_problem(cols, (12, 11))


def test_box_intersection_and_scalars() -> None:
    assert Box((0, 0), (4, 4)).intersect(Box((2, 3), (4, 4))) == Box((2, 3), (2, 1))
    assert Box((0, 0), (4, 4)).intersect(Box((4, 0), (1, 4))) is None
    assert Box((), ()).intersect(Box((), ())) == Box((), ())
    assert tiling_problem([Box((), ())], ()) is None


# ------------------------------------------------------------------ state

def test_flatten_unflatten_keeps_nesting_types_and_order() -> None:
    state = {"b": {2: [1, (2.5, "x")], "a": None}, "a": np.zeros(3), "e": {}, "l": []}
    leaves, containers = flatten(state)
    rebuilt = unflatten(containers, [(leaf.path, leaf.value) for leaf in leaves])
    assert list(rebuilt) == ["b", "a", "e", "l"]
    assert rebuilt["b"] == {2: [1, (2.5, "x")], "a": None}
    assert isinstance(rebuilt["b"][2][1], tuple) and rebuilt["e"] == {} and rebuilt["l"] == []


def test_flatten_rejects_objects_and_bad_keys() -> None:
    with pytest.raises(TypeError, match="cannot checkpoint a object"):
        flatten({"x": object()})
    with pytest.raises(TypeError, match="dict keys must be str or int"):
        flatten({(1, 2): 3})


def test_shard_checks_its_block_fits() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        Shard(np.zeros((3, 4)), global_shape=(4, 4), offsets=(2, 0))
    with pytest.raises(ValueError, match="dimensions"):
        Shard(np.zeros((3,)), global_shape=(4, 4), offsets=(0, 0))


# ---------------------------------------------------------------- planner

def _plans(states: list[dict]) -> list[dict]:
    return [local_plan(*flatten(s))[0] for s in states]


def test_replicated_arrays_go_to_the_least_loaded_rank_once() -> None:
    big = np.zeros(1000, np.uint8)
    states = [{"shard": Shard(np.zeros(100 if r else 900, np.uint8), (2700,), (0 if r == 0 else 900 + (r - 1) * 100,)),
               "rep1": big, "rep2": np.zeros(500, np.uint8)} for r in range(3)]
    states[2]["shard"] = Shard(np.zeros(1700, np.uint8), (2700,), (1000,))
    gp = GlobalPlanner(_plans(states), 1 << 20)
    # loads after shards: r0=900, r1=100, r2=1700 -> rep1 (1000) to r1, then rep2 (500) to r0 (900 < 1100)
    writes = gp.assignments()
    assert gp.rank_bytes == [1400, 1100, 1700]
    assert sum(len(w["writes"]) for w in writes) == 5


def test_planner_rejects_overlaps_gaps_and_disagreements() -> None:
    def two(a: Shard, b: Shard) -> list[dict]:
        return _plans([{"w": a}, {"w": b}])

    with pytest.raises(PlanError, match="'w'.*overlap"):
        GlobalPlanner(two(Shard(np.zeros((3, 2)), (4, 2), (0, 0)), Shard(np.zeros((2, 2)), (4, 2), (2, 0))), 64)
    with pytest.raises(PlanError, match="'w'.*cover 6 of 8"):
        GlobalPlanner(two(Shard(np.zeros((2, 2)), (4, 2), (0, 0)), Shard(np.zeros((1, 2)), (4, 2), (3, 0))), 64)
    with pytest.raises(PlanError, match="rank 0 saves <f8 of global shape \\(4, 2\\), rank 1 saves <f4"):
        GlobalPlanner(two(Shard(np.zeros((2, 2)), (4, 2), (0, 0)),
                          Shard(np.zeros((2, 2), np.float32), (4, 2), (2, 0))), 64)
    with pytest.raises(PlanError, match="rank 1: boom"):
        GlobalPlanner([_plans([{"w": 1}])[0], {"error": "boom"}], 64)


def test_manifest_from_plan_roundtrips_through_json() -> None:
    states = [{"w": Shard(np.zeros((2, 3), np.float32), (4, 3), (2 * r, 0)), "step": 7, "f": 0.1} for r in range(2)]
    gp = GlobalPlanner(_plans(states), 16)
    reports = [{"file": {"name": f"t.rank-0000{r}.data", "rank": r, "size": 24}, "checksums": [["a", "b"]]}
               for r in range(2)]
    m = gp.manifest(3, "t", reports)
    back = Manifest.from_bytes(m.to_bytes())
    assert back.step == 3 and back.world_size == 2 and back.nbytes == 48
    items = {i.key: i for i in back.items}
    assert items["step"].value == 7 and items["f"].value == 0.1
    assert [str(p.box) for p in items["w"].pieces] == ["[0:2, 0:3]", "[2:4, 0:3]"]


def test_manifest_refuses_future_versions_and_garbage() -> None:
    doc = json.loads(Manifest(1, 1, "t", 16, [], [], {}).to_bytes())
    doc["version"] = 99
    with pytest.raises(FutureVersionError, match="version 99.*upgrade"):
        Manifest.from_bytes(json.dumps(doc).encode())
    with pytest.raises(ManifestError, match="not a ckpt manifest"):
        Manifest.from_bytes(b'{"format": "other"}')
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_bytes(b"\x80pickle")


def test_scalars_roundtrip_exactly() -> None:
    values = [True, -(2 ** 70), float("inf"), 1 / 3, "é", b"\x00\xff", None]
    m = Manifest(0, 1, "t", 16, [], [], {})
    from ckpt.manifest import Item
    m.items = [Item((str(i),), "scalar", value=v) for i, v in enumerate(values)]
    back = Manifest.from_bytes(m.to_bytes())
    assert [i.value for i in back.items] == values


# -------------------------------------------------------- placement/stream

def _fake_placement(servers: int, replicas: int) -> FilePlacement:
    import struct

    import xxhash

    def servers_of(i: int) -> list[int]:
        key = struct.pack(">QQ", 12345, i)
        return sorted(range(servers), key=lambda s: xxhash.xxh64_intdigest(key + struct.pack(">I", s)),
                      reverse=True)[:replicas]

    return FilePlacement(12345, 1024, tuple(range(servers)), replicas, servers_of)


@pytest.mark.parametrize("servers,replicas", [(3, 1), (4, 1), (5, 2), (8, 3)])
def test_balanced_chunk_map_evens_out_servers(servers: int, replicas: int) -> None:
    p = _fake_placement(servers, replicas)
    n = 97
    chunk_map = balanced_chunk_map(n, p)
    assert chunk_map is not None and len(set(chunk_map)) == n
    loads = server_loads(chunk_map, p)
    assert max(loads.values()) - min(loads.values()) <= 1
    naive = server_loads(list(range(n)), p)
    assert max(naive.values()) - min(naive.values()) >= max(loads.values()) - min(loads.values())
    assert max(chunk_map) < n + 8 * servers  # holes bounded by the look-ahead


def test_no_remapping_when_every_chunk_is_everywhere() -> None:
    assert balanced_chunk_map(50, _fake_placement(2, 2)) is None


def test_file_entry_maps_logical_to_physical_runs() -> None:
    fe = FileEntry("f", 0, 2500, 1000, [0, 1, 5])
    assert fe.physical(500, 1500) == [(500, 1500)]
    assert fe.physical(1500, 1000) == [(1500, 500), (5000, 500)]
    assert fe.physical_size == 5500


class RecordingWriter(FileWriter):
    def __init__(self, chunk_size: int, chunk_map: list[int] | None) -> None:
        self.chunk_size = chunk_size
        self.chunk_map = chunk_map
        self.writes: list[tuple[int, bytes]] = []

    def write_at(self, offset: int, data: memoryview) -> None:
        self.writes.append((offset, bytes(data)))

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def test_unit_stream_writes_each_chunk_once_whole() -> None:
    fw = RecordingWriter(100, [0, 2, 1, 3])
    fe = FileEntry("f", 0, 350, 100, fw.chunk_map)
    s = UnitStream(fw, fe)
    data = bytes(range(256)) + bytes(94)
    for a, b in [(0, 30), (30, 70), (70, 250), (250, 251), (251, 350)]:
        s.write(data[a:b])
    s.finish()
    offsets = [o for o, _ in fw.writes]
    assert sorted(offsets) == [0, 100, 200, 300] and len(offsets) == 4
    physical = dict(fw.writes)
    assert physical[0] == data[0:100] and physical[200] == data[100:200] and physical[100] == data[200:300]
    assert physical[300] == data[300:350]


def test_byte_segments_of_strided_arrays_are_c_order() -> None:
    a = np.arange(6 * 5 * 4, dtype=np.int32).reshape(6, 5, 4).transpose(1, 0, 2)[:, ::2]
    got = b"".join(bytes(s) for s in byte_segments(a, max_bytes=40))
    assert got == np.ascontiguousarray(a).tobytes()


def test_block_hasher_matches_whole_buffer_sums() -> None:
    data = np.random.default_rng(1).integers(0, 255, 1000, dtype=np.uint8).tobytes()
    h = BlockHasher(64)
    for a, b in [(0, 10), (10, 200), (200, 201), (201, 1000)]:
        h.update(data[a:b])
    assert h.finish() == block_sums(data, 64)


def test_balanced_chunk_maps_are_even_whatever_the_hash() -> None:
    """Over many random placements (as rendezvous hashing gives), every server ends within one chunk
    of the others for one replica, and the unused indices (holes) stay below the chunk count."""
    import random

    for servers, n in ((3, 40), (4, 100), (3, 1000)):
        for trial in range(150):
            rng = random.Random(trial)
            table: dict[int, list[int]] = {}

            def servers_of(i: int, table: dict[int, list[int]] = table, rng: random.Random = rng) -> list[int]:
                return table.setdefault(i, [rng.randrange(servers)])

            placement = FilePlacement(trial, 1 << 16, tuple(range(servers)), 1, servers_of)
            chunks = balanced_chunk_map(n, placement) or list(range(n))
            loads = server_loads(chunks, placement)
            assert len(set(chunks)) == n and max(loads.values()) - min(loads.values()) <= 1, (servers, n, trial)
            assert max(chunks) + 1 - n <= n + 8 * servers
