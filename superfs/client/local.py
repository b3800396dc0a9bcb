"""Finding the local cluster that ``superfs up`` started, and its credentials.

A state directory holds ``cluster.toml`` (the cluster file clients and
daemons read; see :mod:`superfs.config_file`) and ``cluster.json`` (the same
addresses, for older readers). ``superfs.connect()`` with no address reads
the default state directory's cluster file.

Local clusters are authenticated (their token lives in the state directory,
mode 0600), so a client given only an address must find that token: every
``superfs up`` records its dir server's address in a per-user index,
``$XDG_CONFIG_HOME/superfs/local-clusters/`` (``~/.config/...``), as a
symlink named by the address pointing at the cluster file. A client with
no other credentials follows the link for its dir server's address (like
~/.pgpass or ~/.docker/config.json: a lookup by address). Links of state
directories that are gone are skipped and pruned.
"""
from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from superfs.config_file import ClusterFile
    from superfs.rpc.security import ClientSecurity

log = logging.getLogger(__name__)

CLUSTER_FILE = "cluster.json"
CLUSTER_TOML = "cluster.toml"


def default_state_dir() -> str:
    """$XDG_DATA_HOME/superfs, else ~/.local/share/superfs."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "superfs")


def index_dir() -> str:
    """Where ``superfs up`` records address -> cluster file links for this user."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "superfs", "local-clusters")


def _no_cluster(state_dir: str) -> FileNotFoundError:
    return FileNotFoundError(2, f"no local cluster at {state_dir} (start one with 'superfs up')", state_dir)


def read_cluster_file(state_dir: str | None = None) -> dict[str, object]:
    path = os.path.join(state_dir or default_state_dir(), CLUSTER_FILE)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise _no_cluster(os.path.dirname(path)) from None


def local_cluster_file(state_dir: str | None = None) -> "ClusterFile":
    """The local cluster's cluster.toml (FileNotFoundError if there is no cluster)."""
    from superfs import config_file

    state = state_dir or default_state_dir()
    path = os.path.join(state, CLUSTER_TOML)
    if not os.path.exists(path):
        raise _no_cluster(state)
    return config_file.load(path)


def local_dir_address(state_dir: str | None = None) -> str:
    return str(read_cluster_file(state_dir)["dir_server"])


# ------------------------------------------------------------------ the index

def _link_name(address: str) -> str:
    return address.replace("/", "_")


def register_address(address: str, cluster_toml: str) -> None:
    """Record that the local cluster at ``address`` is described by ``cluster_toml``."""
    d = index_dir()
    os.makedirs(d, mode=0o700, exist_ok=True)
    link = os.path.join(d, _link_name(address))
    tmp = f"{link}.tmp.{os.getpid()}"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(os.path.abspath(cluster_toml), tmp)
    os.replace(tmp, link)
    _prune(d)


def unregister_address(address: str, cluster_toml: str) -> None:
    link = os.path.join(index_dir(), _link_name(address))
    try:
        if os.readlink(link) == os.path.abspath(cluster_toml):
            os.unlink(link)
    except OSError:
        pass


def _prune(d: str) -> None:
    """Drop links whose cluster file is gone (temporary clusters of tests, deleted state dirs)."""
    try:
        names = os.listdir(d)
    except OSError:
        return
    for name in names:
        p = os.path.join(d, name)
        if os.path.islink(p) and not os.path.exists(p):
            try:
                os.unlink(p)
            except OSError:
                pass


def cluster_file_for_address(address: str) -> str | None:
    """The cluster file of the local cluster whose dir server is ``address``, if this user started one."""
    link = os.path.join(index_dir(), _link_name(address))
    return os.path.realpath(link) if os.path.exists(link) else None


def security_for_address(address: str) -> "ClientSecurity":
    """Credentials for a cluster known only by its dir server's address."""
    from superfs import config_file
    from superfs.rpc.security import ClientSecurity

    path = cluster_file_for_address(address)
    if path is not None:
        try:
            cf = config_file.load(path)
        except config_file.ConfigError as e:
            log.warning("ignoring the local cluster file for %s: %s", address, e)
        else:
            if cf.dir_server is not None and cf.dir_server.address == address:
                return ClientSecurity.from_config(cf.security)
    return ClientSecurity.from_environment()
