"""Configuration of each daemon: one frozen dataclass per daemon kind.

The CLI builds these from flags (and, later, a TOML file); daemons never read
the environment or files for settings themselves.
"""
from __future__ import annotations

from dataclasses import dataclass

from superfs.routing import DEFAULT_PARTITIONS

DURABLE = "durable"
ASYNC = "async"
DEFAULT_INLINE_THRESHOLD = 64 * 1024
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
DEFAULT_RPC_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class DirServerConfig:
    data_dir: str
    secret_file: str
    listen: str = "127.0.0.1:0"
    ready_file: str | None = None
    cluster_name: str = "superfs"
    shards: int = 2                       # expected shard count (ids 0..shards-1)
    num_partitions: int = DEFAULT_PARTITIONS
    replicas: int = 2
    inline_threshold: int = DEFAULT_INLINE_THRESHOLD
    chunk_size: int = DEFAULT_CHUNK_SIZE
    durability: str = DURABLE
    dir_lease_s: float = 5.0              # how long clients may cache a directory
    rpc_timeout_s: float = DEFAULT_RPC_TIMEOUT_S


@dataclass(frozen=True)
class ShardConfig:
    shard_id: int
    data_dir: str
    dir_server: str                       # host:port of the dir server
    secret_file: str
    listen: str = "127.0.0.1:0"
    advertise: str | None = None          # address others use; default: bound one
    ready_file: str | None = None
    durability: str = DURABLE
    rpc_timeout_s: float = DEFAULT_RPC_TIMEOUT_S


@dataclass(frozen=True)
class DataServerConfig:
    server_id: int
    data_dir: str
    dir_server: str
    listen: str = "127.0.0.1:0"
    advertise: str | None = None
    ready_file: str | None = None
    durability: str = DURABLE
    rpc_timeout_s: float = DEFAULT_RPC_TIMEOUT_S


def read_secret(path: str) -> bytes:
    with open(path, "rb") as f:
        secret = f.read().strip()
    if len(secret) < 16:
        raise ValueError(f"cluster secret in {path} is too short (need >= 16 bytes)")
    return secret
