"""Shared fixtures: real local clusters of daemon processes on loopback.

Clusters are started through the same launcher ``superfs up`` uses: real
processes, free ports, ready files, and they are always stopped at teardown.
Tests use a small inline threshold and chunk size so that chunk boundaries
and inline->chunked moves are exercised with small files.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from superfs.cli.launcher import LocalCluster  # noqa: E402
from superfs.client import Client, connect  # noqa: E402

SMALL_INLINE = 4096
SMALL_CHUNK = 64 * 1024


def start_cluster(state_dir: str, *, shards: int = 2, data_servers: int = 2, replicas: int = 2,
                  inline_threshold: int = SMALL_INLINE, chunk_size: int = SMALL_CHUNK,
                  durability: str = "durable") -> LocalCluster:
    cluster = LocalCluster(state_dir)
    cluster.init(shards=shards, data_servers=data_servers, replicas=replicas,
                 inline_threshold=inline_threshold, chunk_size=chunk_size, durability=durability)
    cluster.start()
    return cluster


@pytest.fixture
def cluster_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LocalCluster]]:
    started: list[LocalCluster] = []

    def make(**kwargs: object) -> LocalCluster:
        c = start_cluster(str(tmp_path_factory.mktemp("cluster")), **kwargs)  # type: ignore[arg-type]
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_cluster(str(tmp_path_factory.mktemp("cluster")))
    yield c
    c.stop()


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with connect(str(cluster.config["dir_server"])) as c:
        yield c


@pytest.fixture
def workdir(client: Client, request: pytest.FixtureRequest) -> str:
    """A fresh directory per test inside the module's shared cluster."""
    path = "/" + request.node.name.replace("[", "_").replace("]", "").replace("/", "_")[:200]
    client.mkdir(path)
    return path
