"""The Ray backend on Ray's multi-node local cluster, beside a three-data-server SuperFS cluster.

Three Ray nodes each declare the data server they sit beside
(``superfs_ds_N`` resources). Tasks must run on the node of their chunk's
data server (asserted from task records); when a node is removed its tasks
run on the others and read remotely.
"""
from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from chukonu.sql import SparkSession  # noqa: E402

LINES = [f"row {i:05d} " + "data " * (i % 9) for i in range(20000)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from conftest import start_cluster
    sfs = start_cluster(str(tmp_path_factory.mktemp("cluster")), data_servers=3, replicas=1)
    address = str(sfs.config["dir_server"])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"superfs_ds_0": 1},
                                                            "include_dashboard": False})
    nodes = {0: cluster.head_node, 1: cluster.add_node(num_cpus=1, resources={"superfs_ds_1": 1}),
             2: cluster.add_node(num_cpus=1, resources={"superfs_ds_2": 1})}
    cluster.wait_for_nodes()
    spark = SparkSession.builder.master("ray").config("chukonu.ray.address", cluster.address) \
        .config("chukonu.progress", "off").config("chukonu.locality.wait", "0.5").getOrCreate()
    import superfs
    client = superfs.connect(address)
    with client.open("/lines.txt", "wb") as f:
        f.write(("\n".join(LINES) + "\n").encode())
    client.close()
    yield address, cluster, nodes, spark
    spark.stop()
    ray.shutdown()
    cluster.shutdown()
    from chukonu.io.fs import close_clients
    close_clients()
    sfs.stop()


def test_ray_tasks_run_on_the_node_beside_their_chunk(setup):
    address, _, _, spark = setup
    workers = spark._engine.backend.workers()
    assert {w.data_server for w in workers} == {0, 1, 2}
    df = spark.read.text(f"superfs://{address}/lines.txt")
    assert sorted(r.value for r in df.collect()) == sorted(LINES)
    tasks = [t for t in spark.jobs[-1].tasks if t.preferred]
    assert len({t.preferred[0] for t in tasks}) >= 2
    assert all(t.worker_data_server == t.preferred[0] and t.locality == "local" for t in tasks)
    assert spark.jobs[-1].bytes_local > 0


def test_ray_falls_back_when_a_node_is_gone(setup):
    address, cluster, nodes, spark = setup
    df = spark.read.text(f"superfs://{address}/lines.txt")
    gone = max(s.preferred[0] for s in df._plan.splits if s.preferred and s.preferred[0] != 0)
    cluster.remove_node(nodes[gone])
    assert df.count() == len(LINES)
    tasks = [t for t in spark.jobs[-1].tasks if t.preferred and t.ok]
    orphans = [t for t in tasks if t.preferred[0] == gone]
    assert orphans and all(t.worker_data_server != gone and t.locality == "remote" for t in orphans)
