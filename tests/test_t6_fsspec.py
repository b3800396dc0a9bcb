"""fsspec: ``superfs://`` URLs and ``fsspec.filesystem("superfs")`` through the client library, no mount.

The implementation is found through the ``fsspec.specs`` entry point (as an
installed package registers it), reaches the cluster ``superfs.connect()``
reaches when given no arguments, and pandas/pyarrow read and write parquet on it.
"""
from __future__ import annotations

import importlib.metadata
import io
import os
from typing import Iterator

import pytest

fsspec = pytest.importorskip("fsspec")
pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from superfs.cli.launcher import LocalCluster  # noqa: E402
from superfs.client import connect  # noqa: E402
from superfs.fsspec_fs import SuperFileSystem, _split_url  # noqa: E402


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster in the *default* state directory of a private XDG_DATA_HOME, as 'superfs up' makes it."""
    home = tmp_path_factory.mktemp("xdg")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_DATA_HOME", str(home / "data"))
    mp.setenv("XDG_CONFIG_HOME", str(home / "config"))
    from superfs.client.local import default_state_dir

    c = LocalCluster(default_state_dir())
    c.init(shards=2, data_servers=2, replicas=2, inline_threshold=4096, chunk_size=64 * 1024,
           durability="async", auth=True)
    c.start()
    fsspec.config.conf.clear()
    SuperFileSystem.clear_instance_cache()
    yield c
    SuperFileSystem.clear_instance_cache()
    c.stop()
    mp.undo()


def test_the_entry_point_registers_the_protocol():
    eps = {e.name: e.value for e in importlib.metadata.entry_points(group="fsspec.specs")}
    assert eps.get("superfs") == "superfs.fsspec_fs:SuperFileSystem"
    assert fsspec.get_filesystem_class("superfs") is SuperFileSystem


def test_urls():
    assert _split_url("superfs:///a/b") == (None, "/a/b")
    assert _split_url("superfs://198.51.100.1:7000/a/b") == ("198.51.100.1:7000", "/a/b")
    assert _split_url("superfs://[::1]:7000/x") == ("[::1]:7000", "/x")
    assert _split_url("superfs://data/x") == (None, "/data/x")
    assert SuperFileSystem._strip_protocol("superfs://h:1/a/b/") == "/a/b"
    assert SuperFileSystem._strip_protocol("superfs:///") == "/"
    assert SuperFileSystem._get_kwargs_from_urls("superfs://h:1/a") == {"address": "h:1"}


def test_no_arguments_reach_the_same_cluster_as_connect(local_cluster):
    with connect() as c:
        c.write_bytes("/same-cluster", b"hello")
    fs = fsspec.filesystem("superfs")
    assert fs.cat_file("/same-cluster") == b"hello"
    assert fs.cat_file("superfs:///same-cluster", start=1, end=-1) == b"ell"
    address = str(local_cluster.config["dir_server"])
    with fsspec.open(f"superfs://{address}/same-cluster", "rb") as f:  # by address in the URL
        assert f.read() == b"hello"


def test_file_system_operations(local_cluster):
    fs = fsspec.filesystem("superfs")
    fs.makedirs("/fs/a/b", exist_ok=True)
    fs.pipe_file("/fs/a/one", b"1" * 10)
    with fs.open("/fs/a/b/two.txt", "w") as f:
        f.write("two\n")
    assert fs.ls("/fs/a", detail=False) == ["/fs/a/b", "/fs/a/one"]
    info = fs.info("/fs/a/one")
    assert (info["type"], info["size"]) == ("file", 10) and fs.info("/fs/a")["type"] == "directory"
    assert sorted(fs.find("/fs")) == ["/fs/a/b/two.txt", "/fs/a/one"]
    assert fs.glob("/fs/a/*") == ["/fs/a/b", "/fs/a/one"]
    fs.mv("/fs/a/one", "/fs/a/uno")
    fs.cp_file("/fs/a/uno", "/fs/copy")
    assert fs.cat_file("/fs/copy") == b"1" * 10 and not fs.exists("/fs/a/one")
    with pytest.raises(FileNotFoundError):
        fs.info("/fs/nope")
    fs.rm("/fs", recursive=True)
    assert not fs.exists("/fs")


def test_pandas_writes_and_reads_parquet_with_matching_bytes(local_cluster):
    df = pd.DataFrame({"id": range(20_000), "name": [f"row-{i}" for i in range(20_000)],
                       "x": [i * 0.5 for i in range(20_000)]})
    url = "superfs:///tables/part-0.parquet"
    fsspec.filesystem("superfs").makedirs("/tables", exist_ok=True)
    df.to_parquet(url, index=False)
    back = pd.read_parquet(url)
    pd.testing.assert_frame_equal(back, df)
    # the bytes on SuperFS are exactly the parquet file pandas makes locally
    local = io.BytesIO()
    df.to_parquet(local, index=False)
    with connect() as c:
        stored = c.read_bytes("/tables/part-0.parquet")
    assert len(stored) > 64 * 1024  # chunked on data servers, not inline
    assert stored == local.getvalue()


def test_pyarrow_dataset_over_superfs(local_cluster):
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    fs = fsspec.filesystem("superfs")
    fs.makedirs("/ds", exist_ok=True)
    for i in range(3):
        pd.DataFrame({"part": [i] * 100, "v": list(range(100))}).to_parquet(f"superfs:///ds/p{i}.parquet")
    table = ds.dataset("/ds", filesystem=pafs.PyFileSystem(pafs.FSSpecHandler(fs)), format="parquet").to_table()
    assert table.num_rows == 300 and sorted(set(table.column("part").to_pylist())) == [0, 1, 2]
