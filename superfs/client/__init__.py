"""superfs.client: the only code that talks to SuperFS daemons.

``superfs.connect()`` returns a synchronous :class:`Client` with an API close
to ``os`` and ``open``; :class:`AsyncFs` is the asyncio client underneath
(used by the FUSE mount); :class:`MetaOps` works by inode.
"""
from __future__ import annotations

import os

from superfs.client.fs import AsyncFs, DirEntry
from superfs.client.local import default_state_dir, local_cluster_file, local_dir_address
from superfs.client.meta import Creds, MetaOps
from superfs.client.sync import Client
from superfs.config_file import ClusterFile, ConfigError
from superfs.config_file import load as load_config
from superfs.errors import FsError, oserror
from superfs.rpc.security import ClientSecurity, security_scope


def resolve(address: str | None = None, *, config: "str | os.PathLike[str] | ClusterFile | None" = None,
            state_dir: str | None = None) -> tuple[str, ClientSecurity | None, ClusterFile | None]:
    """(dir server address, credentials, cluster file) for the arguments of :func:`connect`.

    For other entry points that build an :class:`AsyncFs` themselves (a FUSE
    mount given ``--config``)::

        address, security, cf = resolve(config=path)
        with security_scope(security):
            fs = AsyncFs(address, ...)

    ``security`` None means: the channels find credentials by address
    (the local cluster's) or in ``SUPERFS_TOKEN``. Raises ValueError for a
    bad cluster file, PermissionError when a credential file cannot be read.
    """
    cf: ClusterFile | None = None
    if config is not None:
        try:
            cf = config if isinstance(config, ClusterFile) else load_config(os.fspath(config))
        except ConfigError as e:
            raise ValueError(str(e)) from None
    elif address is None:
        try:
            cf = local_cluster_file(state_dir)
        except FileNotFoundError:
            address = local_dir_address(state_dir)  # a state dir from before cluster.toml (or the error)
    security = None
    if cf is not None:
        if address is None:
            if cf.dir_server is None:
                raise ValueError(f"{cf.path}: dir_server.address: missing (where is the dir server?)")
            address = cf.dir_server.address
        try:
            security = ClientSecurity.from_config(cf.security)
        except FsError as e:
            raise oserror(e.errno, e.message) from None
    assert address is not None
    return address, security, cf


def connect(address: str | None = None, *, config: "str | os.PathLike[str] | ClusterFile | None" = None,
            state_dir: str | None = None, timeout_s: float | None = None, creds: Creds | None = None,
            umask: int = 0o022) -> Client:
    """Connect to a cluster.

    - ``connect(config="/etc/superfs/cluster.toml")``: the cluster that file
      describes, with its TLS and token settings (``address`` overrides its
      dir server address);
    - ``connect("host:port")``: a dir server by address (credentials: the
      local cluster of that address, else ``SUPERFS_TOKEN``);
    - ``connect()``: the local cluster that ``superfs up`` started (its state
      directory: ``state_dir``, else $XDG_DATA_HOME/superfs or
      ~/.local/share/superfs).

    ``timeout_s`` bounds each RPC (default: the file's ``cluster.rpc_timeout_s``, else 5 s).
    A missing or refused credential is a PermissionError (EACCES) naming why.
    """
    address, security, cf = resolve(address, config=config, state_dir=state_dir)
    if timeout_s is None:
        timeout_s = cf.rpc_timeout_s if cf is not None else 5.0
    with security_scope(security):
        return Client(address, timeout_s=timeout_s, creds=creds, umask=umask)


__all__ = ["AsyncFs", "Client", "ClientSecurity", "Creds", "DirEntry", "MetaOps", "connect", "default_state_dir",
           "resolve", "security_scope"]
