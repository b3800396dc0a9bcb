"""Configuration of each daemon: one frozen dataclass per daemon kind.

The CLI builds these from the cluster file (:mod:`superfs.config_file`) and
its flags, flags winning; daemons never read the environment or files for
settings themselves. Secrets are the exception: they are read from the files
named here (and a client token from ``SUPERFS_TOKEN``), never from flags.
"""
from __future__ import annotations

from dataclasses import dataclass

from superfs import private_files
from superfs.routing import DEFAULT_PARTITIONS

DURABLE = "durable"
ASYNC = "async"
DEFAULT_INLINE_THRESHOLD = 64 * 1024
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
DEFAULT_RPC_TIMEOUT_S = 5.0


# Room beside the largest payload a request may carry (names, creds, capabilities, framing).
MESSAGE_HEADROOM = 64 * 1024
XATTR_VALUE_MAX = 64 * 1024


@dataclass(frozen=True)
class ServerLimits:
    """What one daemon takes in at once, whatever its clients send.

    gRPC decodes a whole request before any handler (and authentication)
    runs, so the largest message and the number of calls in progress bound
    what a daemon can be made to hold: about ``3 * max_concurrent_rpcs *
    max_message_bytes`` (measured: gRPC's receive buffer, the decoded message
    and the handler's copy of its bytes each hold one). A call past the limit is refused
    at once (RESOURCE_EXHAUSTED, never executed; clients retry it), a message
    past it likewise (EFBIG). Streams past ``max_streams_per_connection`` wait
    on the client's side of the connection (HTTP/2 flow control).
    """

    max_message_bytes: int = (1 << 20) + MESSAGE_HEADROOM  # a streamed piece of a chunk fits
    max_concurrent_rpcs: int = 2048
    max_streams_per_connection: int = 256

    @classmethod
    def for_dir_server(cls) -> "ServerLimits":
        return cls()  # paths, names, directory xattrs: all well under this

    @classmethod
    def for_shard(cls, inline_threshold: int) -> "ServerLimits":
        """Inline bytes (create, write) or an xattr value, whichever is larger."""
        return cls(max_message_bytes=max(inline_threshold, XATTR_VALUE_MAX) + MESSAGE_HEADROOM)

    @classmethod
    def for_data_server(cls, chunk_size: int) -> "ServerLimits":
        """A whole chunk in one unary write; streamed pieces are smaller. Few calls at once: they are big
        (4 MiB chunks: about 800 MiB at most). One connection never reaches the limit on its own."""
        return cls(max_message_bytes=chunk_size + MESSAGE_HEADROOM, max_concurrent_rpcs=64,
                   max_streams_per_connection=32)


@dataclass(frozen=True)
class TlsConfig:
    """TLS for every connection: the cluster CA, and this host's certificate."""

    ca_file: str                          # verifies peers (servers, and clients under mutual TLS)
    cert_file: str | None = None          # this host's certificate chain (daemons: required)
    key_file: str | None = None
    require_client_cert: bool = False     # mutual TLS: daemons refuse clients without a CA-signed cert
    server_name: str | None = None        # name expected in server certificates (default: host dialled)
    # mutual TLS without a tokens file: certificate names (CN) that get the daemon role; any other
    # certificate the CA signed is a client (any uid, no daemon-only RPCs)
    daemon_names: tuple[str, ...] = ()


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
    limits: ServerLimits = ServerLimits.for_dir_server()
    session_port: int = 0                 # session endpoint (superfs/rpc) on the listen host; 0: any free port
    data_dead_after_s: float = 0.0        # a data server down this long is declared dead (0: never by itself)


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
    limits: ServerLimits = ServerLimits.for_shard(DEFAULT_INLINE_THRESHOLD)
    session_port: int = 0                 # session endpoint (superfs/rpc) on the listen host; 0: any free port
    metadata_max_bytes: int = 0           # the metadata store's cap (LMDB map size), then ENOSPC; 0: none


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
    limits: ServerLimits = ServerLimits.for_data_server(DEFAULT_CHUNK_SIZE)
    session_port: int = 0                 # session endpoint (superfs/rpc) on the listen host; 0: any free port
    bytes_port: int = 0                   # byte path (bytes.proto) on the listen host; 0: any free port


def read_secret(path: str) -> bytes:
    """The cluster secret; ValueError if it is too short or others can read or change the file."""
    private_files.check(path, "cluster.secret_file")
    with open(path, "rb") as f:
        secret = f.read().strip()
    if len(secret) < 16:
        raise ValueError(f"cluster secret in {path} is too short (need >= 16 bytes)")
    return secret
