"""Configuration of each daemon: one frozen dataclass per daemon kind.

The CLI builds these from the cluster file (:mod:`superfs.config_file`) and
its flags, flags winning; daemons never read the environment or files for
settings themselves. Secrets are the exception: they are read from the files
named here (and a client token from ``SUPERFS_TOKEN``), never from flags.
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
class TlsConfig:
    """TLS for every connection: the cluster CA, and this host's certificate."""

    ca_file: str                          # verifies peers (servers, and clients under mutual TLS)
    cert_file: str | None = None          # this host's certificate chain (daemons: required)
    key_file: str | None = None
    require_client_cert: bool = False     # mutual TLS: daemons refuse clients without a CA-signed cert
    server_name: str | None = None        # name expected in server certificates (default: host dialled)


@dataclass(frozen=True)
class AuthConfig:
    """Bearer tokens: the one this process presents, and (daemons) those it accepts."""

    token_file: str | None = None         # first token in it is presented; SUPERFS_TOKEN overrides
    tokens_file: str | None = None        # accepted credentials with the uids/gids each may act as


@dataclass(frozen=True)
class SecurityConfig:
    tls: TlsConfig | None = None
    auth: AuthConfig = AuthConfig()

    @property
    def enabled(self) -> bool:
        return self.tls is not None or self.auth.tokens_file is not None


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
    metrics_listen: str | None = None     # host:port of the Prometheus endpoint; None: off
    security: SecurityConfig = SecurityConfig()


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
    metrics_listen: str | None = None     # host:port of the Prometheus endpoint; None: off
    security: SecurityConfig = SecurityConfig()


@dataclass(frozen=True)
class DataServerConfig:
    server_id: int
    data_dir: str
    dir_server: str
    secret_file: str                      # verifies the chunk capabilities shards sign
    listen: str = "127.0.0.1:0"
    advertise: str | None = None
    ready_file: str | None = None
    durability: str = DURABLE
    rpc_timeout_s: float = DEFAULT_RPC_TIMEOUT_S
    metrics_listen: str | None = None     # host:port of the Prometheus endpoint; None: off
    security: SecurityConfig = SecurityConfig()


def read_secret(path: str) -> bytes:
    with open(path, "rb") as f:
        secret = f.read().strip()
    if len(secret) < 16:
        raise ValueError(f"cluster secret in {path} is too short (need >= 16 bytes)")
    return secret
