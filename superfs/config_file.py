"""The cluster file: one TOML file that every daemon and client of a cluster reads.

An example (every key is optional except where a daemon needs it)::

    [cluster]
    name = "prod"
    durability = "durable"          # or "async"
    replicas = 2                    # copies of each data chunk
    inline_threshold = 65536        # files up to this size live in their shard record
    chunk_size = 4194304
    partitions = 1024               # virtual partitions (first start of the dir server only)
    rpc_timeout_s = 5.0
    secret_file = "/etc/superfs/secret"   # HMAC key of directory and chunk capabilities (daemons only)
    data_dead_after_s = 0           # a data server unreachable this long is declared dead and its
                                    # chunks re-replicated from the survivors (0: only `superfs admin mark-dead`)

    [cache]
    dir_lease_s = 5.0               # how long clients may cache a directory
    attr_timeout_s = 1.0            # FUSE: kernel attribute cache
    entry_timeout_s = 1.0           # FUSE: kernel name cache

    [dir_server]
    address = "10.0.0.1:7000"       # what clients and daemons dial
    listen = "0.0.0.0:7000"         # what the daemon binds (default: address)
    data_dir = "/var/lib/superfs/dir"
    metrics_port = 9400             # Prometheus /metrics; 0 or absent: off
    session_port = 7001             # session endpoint (every client call); 0 or absent: any free port

    [[shards]]                      # ids 0..N-1, one table each
    id = 0
    address = "10.0.0.2:7100"
    data_dir = "/var/lib/superfs/shard-0"
    metrics_port = 9401
    metadata_max_mb = 0             # the most its metadata store may hold, then ENOSPC; 0 or absent: no limit

    [[data_servers]]
    id = 0
    address = "10.0.0.3:7200"
    data_dir = "/var/lib/superfs/data-0"
    bytes_port = 7202               # the byte path (chunk bytes); 0 or absent: any free port

    [[data_servers]]
    id = 1
    address = "10.0.0.4:7200"
    data_dir = "/var/lib/superfs/data-1"

    [tls]                           # absent: plaintext
    ca_file = "/etc/superfs/tls/ca.crt"
    cert_file = "/etc/superfs/tls/node.crt"
    key_file = "/etc/superfs/tls/node.key"
    require_client_cert = true      # mutual TLS
    # server_name = "superfs"       # name expected in server certificates (default: the host dialled)
    # daemon_names = ["node"]       # mutual TLS, no tokens file: certificate CNs with the daemon role

    [auth]
    token_file = "/etc/superfs/token"     # the token this host presents (SUPERFS_TOKEN overrides)
    tokens_file = "/etc/superfs/tokens"   # daemons: accepted credentials and the uids/gids each may use

Relative paths are relative to the file's directory. An unknown key or a bad
value is a :class:`ConfigError` naming the key (``shards[1].address: ...``).
:func:`load` reads a file, :func:`parse` a dict, :func:`dumps` writes one
back (``superfs up`` records its local cluster this way), and
:func:`dir_server_config`, :func:`shard_config`, :func:`data_server_config`
turn it into one daemon's frozen dataclass (:mod:`superfs.config`).
"""
from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, replace
from typing import Any

from superfs import config
from superfs.routing import DEFAULT_PARTITIONS

MAX_CHUNK = 64 * 1024 * 1024  # the chunk store refuses larger extents


class ConfigError(ValueError):
    """A cluster file (or an override) is wrong; the message names the key."""


@dataclass(frozen=True)
class NodeSettings:
    """One daemon of the cluster as the file describes it."""

    id: int
    address: str            # host:port others dial
    listen: str             # host:port it binds
    data_dir: str | None = None
    metrics_port: int = 0   # 0: no metrics endpoint
    session_port: int = 0   # the session endpoint's port on the listen host; 0: any free one
    bytes_port: int = 0     # data servers: the byte path's port on the listen host; 0: any free one
    metadata_max_mb: int = 0  # shards: the most their metadata store may hold (then ENOSPC); 0: no limit


@dataclass(frozen=True)
class ClusterFile:
    """A parsed, validated cluster file (or the defaults when there is none)."""

    path: str | None = None
    name: str = "superfs"
    durability: str = config.DURABLE
    replicas: int = 2
    inline_threshold: int = config.DEFAULT_INLINE_THRESHOLD
    chunk_size: int = config.DEFAULT_CHUNK_SIZE
    partitions: int = DEFAULT_PARTITIONS
    rpc_timeout_s: float = config.DEFAULT_RPC_TIMEOUT_S
    secret_file: str | None = None
    data_dead_after_s: float = 0.0
    dir_lease_s: float = 5.0
    attr_timeout_s: float = 1.0
    entry_timeout_s: float = 1.0
    dir_server: NodeSettings | None = None
    shards: tuple[NodeSettings, ...] = ()
    data_servers: tuple[NodeSettings, ...] = ()
    tls: config.TlsConfig | None = None
    auth: config.AuthConfig = field(default_factory=config.AuthConfig)

    @property
    def security(self) -> config.SecurityConfig:
        return config.SecurityConfig(tls=self.tls, auth=self.auth)


# --------------------------------------------------------------------- schema

_TOP = {"cluster", "cache", "dir_server", "shards", "data_servers", "tls", "auth"}
_CLUSTER = {"name", "durability", "replicas", "inline_threshold", "chunk_size", "partitions",
            "rpc_timeout_s", "secret_file", "data_dead_after_s"}
_CACHE = {"dir_lease_s", "attr_timeout_s", "entry_timeout_s"}
_NODE = {"id", "address", "listen", "data_dir", "metrics_port", "session_port", "metadata_max_mb"}
_DATA_NODE = _NODE | {"bytes_port"}
_TLS = {"ca_file", "cert_file", "key_file", "require_client_cert", "server_name", "daemon_names"}
_AUTH = {"token_file", "tokens_file"}


def _check_keys(table: dict[str, Any], known: set[str], prefix: str) -> None:
    for key in table:
        if key not in known:
            name = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"{name}: unknown key (known here: {', '.join(sorted(known))})")


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: must be a table ([{key}])")
    return value


def _int(t: dict[str, Any], key: str, name: str, default: int, lo: int, hi: int | None = None) -> int:
    v = t.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{name}: must be an integer, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise ConfigError(f"{name}: must be {bound}, got {v}")
    return v


def _float(t: dict[str, Any], key: str, name: str, default: float, *, positive: bool) -> float:
    v = t.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{name}: must be a number of seconds, got {v!r}")
    if v < 0 or (positive and v == 0):
        raise ConfigError(f"{name}: must be {'greater than 0' if positive else 'at least 0'}, got {v}")
    return float(v)


def _str(t: dict[str, Any], key: str, name: str, default: str | None = None) -> str | None:
    v = t.get(key, default)
    if v is None:
        return None
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{name}: must be a non-empty string, got {v!r}")
    return v


def _bool(t: dict[str, Any], key: str, name: str, default: bool) -> bool:
    v = t.get(key, default)
    if not isinstance(v, bool):
        raise ConfigError(f"{name}: must be true or false, got {v!r}")
    return v


def _path(t: dict[str, Any], key: str, name: str, base: str | None) -> str | None:
    v = _str(t, key, name)
    if v is None:
        return None
    v = os.path.expanduser(v)
    return v if os.path.isabs(v) or base is None else os.path.normpath(os.path.join(base, v))


def check_address(value: object, name: str, *, allow_port_0: bool = False) -> str:
    """``host:port`` (IPv6 as ``[::1]:7000``); returns it unchanged."""
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{name}: must be 'host:port', got {value!r}")
    host, _, port = value.rpartition(":")
    if not host or (host.startswith("[") != host.endswith("]")):
        raise ConfigError(f"{name}: must be 'host:port', got {value!r}")
    if not port.isdigit() or not (0 if allow_port_0 else 1) <= int(port) <= 65535:
        raise ConfigError(f"{name}: port must be {'0' if allow_port_0 else '1'}..65535, got {value!r}")
    return value


def _node(t: object, name: str, base: str | None, *, with_id: bool, data: bool = False) -> NodeSettings:
    if not isinstance(t, dict):
        raise ConfigError(f"{name}: must be a table")
    _check_keys(t, (_DATA_NODE if data else _NODE) - (set() if with_id else {"id"}), name)
    node_id = _int(t, "id", f"{name}.id", -1, 0) if with_id else 0
    if with_id and "id" not in t:
        raise ConfigError(f"{name}.id: missing")
    if "address" not in t:
        raise ConfigError(f"{name}.address: missing (host:port others dial)")
    address = check_address(t["address"], f"{name}.address")
    listen = check_address(t.get("listen", address), f"{name}.listen", allow_port_0=True)
    return NodeSettings(id=node_id, address=address, listen=listen,
                        data_dir=_path(t, "data_dir", f"{name}.data_dir", base),
                        metrics_port=_int(t, "metrics_port", f"{name}.metrics_port", 0, 0, 65535),
                        session_port=_int(t, "session_port", f"{name}.session_port", 0, 0, 65535),
                        bytes_port=_int(t, "bytes_port", f"{name}.bytes_port", 0, 0, 65535),
                        metadata_max_mb=_int(t, "metadata_max_mb", f"{name}.metadata_max_mb", 0, 0, 1 << 30))


def _nodes(raw: dict[str, Any], key: str, base: str | None) -> tuple[NodeSettings, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{key}: must be an array of tables ([[{key}]])")
    nodes = tuple(_node(t, f"{key}[{i}]", base, with_id=True, data=key == "data_servers")
                  for i, t in enumerate(value))
    seen: dict[int, int] = {}
    for i, n in enumerate(nodes):
        if n.id in seen:
            raise ConfigError(f"{key}[{i}].id: {n.id} is also the id of {key}[{seen[n.id]}]")
        seen[n.id] = i
    return nodes


def parse(raw: dict[str, Any], path: str | None = None) -> ClusterFile:
    """Validate a decoded TOML document; ``path`` anchors relative paths."""
    base = os.path.dirname(os.path.abspath(path)) if path else None
    _check_keys(raw, _TOP, "")
    c = _table(raw, "cluster")
    _check_keys(c, _CLUSTER, "cluster")
    cache = _table(raw, "cache")
    _check_keys(cache, _CACHE, "cache")
    durability = c.get("durability", config.DURABLE)
    if durability not in (config.DURABLE, config.ASYNC):
        raise ConfigError(f"cluster.durability: must be 'durable' or 'async', got {durability!r}")
    cf = ClusterFile(
        path=os.path.abspath(path) if path else None,
        name=_str(c, "name", "cluster.name", "superfs") or "superfs",
        durability=durability,
        replicas=_int(c, "replicas", "cluster.replicas", 2, 1, 16),
        inline_threshold=_int(c, "inline_threshold", "cluster.inline_threshold",
                              config.DEFAULT_INLINE_THRESHOLD, 4096, 16 * 1024 * 1024),
        chunk_size=_int(c, "chunk_size", "cluster.chunk_size", config.DEFAULT_CHUNK_SIZE, 4096, MAX_CHUNK),
        partitions=_int(c, "partitions", "cluster.partitions", DEFAULT_PARTITIONS, 1, 1 << 20),
        rpc_timeout_s=_float(c, "rpc_timeout_s", "cluster.rpc_timeout_s", config.DEFAULT_RPC_TIMEOUT_S,
                             positive=True),
        secret_file=_path(c, "secret_file", "cluster.secret_file", base),
        data_dead_after_s=_float(c, "data_dead_after_s", "cluster.data_dead_after_s", 0.0, positive=False),
        dir_lease_s=_float(cache, "dir_lease_s", "cache.dir_lease_s", 5.0, positive=False),
        attr_timeout_s=_float(cache, "attr_timeout_s", "cache.attr_timeout_s", 1.0, positive=False),
        entry_timeout_s=_float(cache, "entry_timeout_s", "cache.entry_timeout_s", 1.0, positive=False),
        dir_server=_node(raw["dir_server"], "dir_server", base, with_id=False) if "dir_server" in raw else None,
        shards=_nodes(raw, "shards", base),
        data_servers=_nodes(raw, "data_servers", base),
        tls=_tls(raw, base),
        auth=_auth(raw, base),
    )
    ids = sorted(s.id for s in cf.shards)
    if ids and ids != list(range(len(ids))):
        raise ConfigError(f"shards: ids must be 0..{len(ids) - 1} (one table each), got {ids}")
    if cf.data_servers and cf.replicas > len(cf.data_servers):
        raise ConfigError(f"cluster.replicas: {cf.replicas} is more than the {len(cf.data_servers)} "
                          "data servers listed")
    return cf


def _tls(raw: dict[str, Any], base: str | None) -> config.TlsConfig | None:
    if "tls" not in raw:
        return None
    t = _table(raw, "tls")
    _check_keys(t, _TLS, "tls")
    ca = _path(t, "ca_file", "tls.ca_file", base)
    if ca is None:
        raise ConfigError("tls.ca_file: missing (the CA that signed the cluster's certificates)")
    cert = _path(t, "cert_file", "tls.cert_file", base)
    key = _path(t, "key_file", "tls.key_file", base)
    if (cert is None) != (key is None):
        raise ConfigError(f"tls.{'key_file' if key is None else 'cert_file'}: missing "
                          "(cert_file and key_file go together)")
    names = t.get("daemon_names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError("tls.daemon_names: want a list of certificate names, e.g. [\"superfs-node\"]")
    return config.TlsConfig(ca_file=ca, cert_file=cert, key_file=key,
                            require_client_cert=_bool(t, "require_client_cert", "tls.require_client_cert", False),
                            server_name=_str(t, "server_name", "tls.server_name"),
                            daemon_names=tuple(names))


def _auth(raw: dict[str, Any], base: str | None) -> config.AuthConfig:
    a = _table(raw, "auth")
    _check_keys(a, _AUTH, "auth")
    return config.AuthConfig(token_file=_path(a, "token_file", "auth.token_file", base),
                             tokens_file=_path(a, "tokens_file", "auth.tokens_file", base))


def load(path: str) -> ClusterFile:
    """Read and validate a cluster file."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    try:
        return parse(raw, path)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def with_overrides(cf: ClusterFile, **changes: Any) -> ClusterFile:
    """``cf`` with the given fields replaced (None values are ignored), validated again.

    This is how command-line flags override the file: the result must be as
    valid as a file would have to be, and errors name the same keys.
    """
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return cf
    new = replace(cf, **changes)
    return replace(parse(to_dict(new), None), path=cf.path)


# ------------------------------------------------- one daemon's dataclass

def metrics_listen(listen: str, port: int) -> str | None:
    """The metrics endpoint of a daemon bound to ``listen``: same host, ``port`` (0: none)."""
    if not port:
        return None
    if not 0 < port <= 65535:
        raise ConfigError(f"metrics_port: must be 0..65535, got {port}")
    return f"{listen.rpartition(':')[0]}:{port}"


def _need(value: str | None, what: str, flag: str) -> str:
    if not value:
        raise ConfigError(f"{what}: missing (give {flag} or set it in the file named by --config)")
    return value


def dir_server_config(cf: ClusterFile, *, listen: str | None = None, data_dir: str | None = None,
                      ready_file: str | None = None, metrics_port: int | None = None,
                      shards: int | None = None) -> config.DirServerConfig:
    node = cf.dir_server
    listen = check_address(listen or (node.listen if node else "127.0.0.1:0"), "dir_server.listen",
                           allow_port_0=True)
    port = metrics_port if metrics_port is not None else (node.metrics_port if node else 0)
    return config.DirServerConfig(
        data_dir=_need(data_dir or (node.data_dir if node else None), "dir_server.data_dir", "--data-dir"),
        secret_file=_need(cf.secret_file, "cluster.secret_file", "--secret-file"),
        listen=listen, ready_file=ready_file, cluster_name=cf.name,
        shards=shards or len(cf.shards) or 2, num_partitions=cf.partitions, replicas=cf.replicas,
        inline_threshold=cf.inline_threshold, chunk_size=cf.chunk_size, durability=cf.durability,
        dir_lease_s=cf.dir_lease_s, rpc_timeout_s=cf.rpc_timeout_s,
        metrics_listen=metrics_listen(listen, port), security=cf.security,
        limits=config.ServerLimits.for_dir_server(), session_port=node.session_port if node else 0,
        data_dead_after_s=cf.data_dead_after_s)


def _member(nodes: tuple[NodeSettings, ...], node_id: int) -> NodeSettings | None:
    return next((n for n in nodes if n.id == node_id), None)


def _member_settings(cf: ClusterFile, node: NodeSettings | None, table: str, *, listen: str | None,
                     data_dir: str | None, advertise: str | None, metrics_port: int | None,
                     dir_server: str | None) -> dict[str, Any]:
    listen = check_address(listen or (node.listen if node else "127.0.0.1:0"), f"{table}.listen",
                           allow_port_0=True)
    if advertise is not None:
        check_address(advertise, f"{table}.address")
    dir_address = dir_server or (cf.dir_server.address if cf.dir_server else None)
    port = metrics_port if metrics_port is not None else (node.metrics_port if node else 0)
    return dict(
        data_dir=_need(data_dir or (node.data_dir if node else None), f"{table}.data_dir", "--data-dir"),
        dir_server=check_address(_need(dir_address, "dir_server.address", "--dir-server"), "dir_server.address"),
        listen=listen, advertise=advertise or (node.address if node else None), durability=cf.durability,
        rpc_timeout_s=cf.rpc_timeout_s, metrics_listen=metrics_listen(listen, port), security=cf.security,
        session_port=node.session_port if node else 0)


def shard_config(cf: ClusterFile, shard_id: int, *, listen: str | None = None, data_dir: str | None = None,
                 advertise: str | None = None, ready_file: str | None = None, metrics_port: int | None = None,
                 dir_server: str | None = None) -> config.ShardConfig:
    node = _member(cf.shards, shard_id)
    if node is None and cf.shards:
        raise ConfigError(f"shards: no entry with id = {shard_id} in {cf.path or 'the configuration'}")
    settings = _member_settings(cf, node, f"shards[id={shard_id}]", listen=listen, data_dir=data_dir,
                                advertise=advertise, metrics_port=metrics_port, dir_server=dir_server)
    return config.ShardConfig(shard_id=shard_id, ready_file=ready_file,
                              secret_file=_need(cf.secret_file, "cluster.secret_file", "--secret-file"),
                              limits=config.ServerLimits.for_shard(cf.inline_threshold),
                              metadata_max_bytes=(node.metadata_max_mb if node else 0) << 20, **settings)


def data_server_config(cf: ClusterFile, server_id: int, *, listen: str | None = None,
                       data_dir: str | None = None, advertise: str | None = None, ready_file: str | None = None,
                       metrics_port: int | None = None, dir_server: str | None = None) -> config.DataServerConfig:
    node = _member(cf.data_servers, server_id)
    if node is None and cf.data_servers:
        raise ConfigError(f"data_servers: no entry with id = {server_id} in {cf.path or 'the configuration'}")
    settings = _member_settings(cf, node, f"data_servers[id={server_id}]", listen=listen, data_dir=data_dir,
                                advertise=advertise, metrics_port=metrics_port, dir_server=dir_server)
    return config.DataServerConfig(server_id=server_id, ready_file=ready_file,
                                   secret_file=_need(cf.secret_file, "cluster.secret_file", "--secret-file"),
                                   limits=config.ServerLimits.for_data_server(cf.chunk_size),
                                   bytes_port=node.bytes_port if node else 0, **settings)


# ---------------------------------------------------------------- writing

def to_dict(cf: ClusterFile) -> dict[str, Any]:
    """The TOML document of ``cf`` (paths as they are: absolute after load)."""
    cluster: dict[str, Any] = {"name": cf.name, "durability": cf.durability, "replicas": cf.replicas,
                               "inline_threshold": cf.inline_threshold, "chunk_size": cf.chunk_size,
                               "partitions": cf.partitions, "rpc_timeout_s": cf.rpc_timeout_s}
    if cf.secret_file:
        cluster["secret_file"] = cf.secret_file
    if cf.data_dead_after_s:
        cluster["data_dead_after_s"] = cf.data_dead_after_s
    out: dict[str, Any] = {
        "cluster": cluster,
        "cache": {"dir_lease_s": cf.dir_lease_s, "attr_timeout_s": cf.attr_timeout_s,
                  "entry_timeout_s": cf.entry_timeout_s},
    }
    if cf.dir_server is not None:
        out["dir_server"] = _node_dict(cf.dir_server, with_id=False)
    if cf.shards:
        out["shards"] = [_node_dict(n, with_id=True) for n in cf.shards]
    if cf.data_servers:
        out["data_servers"] = [_node_dict(n, with_id=True) for n in cf.data_servers]
    if cf.tls is not None:
        tls: dict[str, Any] = {"ca_file": cf.tls.ca_file, "require_client_cert": cf.tls.require_client_cert}
        if cf.tls.cert_file:
            tls["cert_file"] = cf.tls.cert_file
            tls["key_file"] = cf.tls.key_file
        if cf.tls.server_name:
            tls["server_name"] = cf.tls.server_name
        if cf.tls.daemon_names:
            tls["daemon_names"] = list(cf.tls.daemon_names)
        out["tls"] = tls
    auth = {k: v for k, v in (("token_file", cf.auth.token_file), ("tokens_file", cf.auth.tokens_file)) if v}
    if auth:
        out["auth"] = auth
    return out


def _node_dict(n: NodeSettings, *, with_id: bool) -> dict[str, Any]:
    d: dict[str, Any] = {"id": n.id} if with_id else {}
    d["address"] = n.address
    if n.listen != n.address:
        d["listen"] = n.listen
    if n.data_dir:
        d["data_dir"] = n.data_dir
    if n.metrics_port:
        d["metrics_port"] = n.metrics_port
    if n.session_port:
        d["session_port"] = n.session_port
    if n.bytes_port:
        d["bytes_port"] = n.bytes_port
    if n.metadata_max_mb:
        d["metadata_max_mb"] = n.metadata_max_mb
    return d


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        out = ['"']
        for ch in v:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return "".join(out) + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(doc: dict[str, Any], header: str = "") -> str:
    """TOML text of a document of tables and arrays of tables holding scalars."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for key, value in doc.items():
        tables = value if isinstance(value, list) else [value]
        for t in tables:
            if lines:
                lines.append("")
            lines.append(f"[[{key}]]" if isinstance(value, list) else f"[{key}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in t.items())
    return "\n".join(lines) + "\n"


def write(path: str, cf: ClusterFile, header: str = "") -> None:
    """Write ``cf`` to ``path`` atomically (temp file, fsync, rename)."""
    text = dumps(to_dict(cf), header)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
