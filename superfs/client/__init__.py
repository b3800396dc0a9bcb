"""superfs.client: the only code that talks to SuperFS daemons.

``superfs.connect()`` returns a synchronous :class:`Client` with an API close
to ``os`` and ``open``; :class:`AsyncFs` is the asyncio client underneath
(used by the FUSE mount); :class:`MetaOps` works by inode.
"""
from __future__ import annotations

from superfs.client.fs import AsyncFs, DirEntry
from superfs.client.local import default_state_dir, local_dir_address
from superfs.client.meta import Creds, MetaOps
from superfs.client.sync import Client


def connect(address: str | None = None, *, state_dir: str | None = None, timeout_s: float = 5.0,
            creds: Creds | None = None, umask: int = 0o022) -> Client:
    """Connect to a cluster by its dir server's host:port.

    With no address, connect to the local cluster that ``superfs up``
    started (its state directory: ``state_dir``, else $XDG_DATA_HOME/superfs
    or ~/.local/share/superfs).
    """
    if address is None:
        address = local_dir_address(state_dir)
    return Client(address, timeout_s=timeout_s, creds=creds, umask=umask)


__all__ = ["AsyncFs", "Client", "Creds", "DirEntry", "MetaOps", "connect", "default_state_dir"]
