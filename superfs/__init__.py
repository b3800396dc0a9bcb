"""SuperFS: a distributed POSIX file system for AI data pipelines.

Directory metadata lives on one dir server that resolves a whole path
locally; file metadata is spread over shared-nothing LMDB shards; bytes live
on data servers. ``superfs.connect()`` returns a client.
"""
from __future__ import annotations

__version__ = "0.1.0"


def connect(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`superfs.client.connect`."""
    from superfs.client import connect as _connect

    return _connect(*args, **kwargs)
