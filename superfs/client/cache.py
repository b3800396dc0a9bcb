"""The client's directory cache: directory nodes and resolved paths, with leases.

The dir server grants a lease with every directory it returns. Until the
lease ends the client trusts its copy: a warm client creates, stats and
unlinks files with no dir-server round trip. Another client's rename or
chmod of a directory becomes visible here when the lease ends (or at once,
if this client made the change). Entries are kept per caller (uid, gid and
groups): the capability inside a node is signed for one uid, with the rights
its groups gave it.
"""
from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from typing import Hashable

from superfs.client.nodes import Node
from superfs.v1 import superfs_pb2 as pb

MAX_ENTRIES = 65536


class DirCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._by_ino: OrderedDict[tuple[int, Hashable], Node] = OrderedDict()
        self._by_path: OrderedDict[tuple[str, Hashable], int] = OrderedDict()
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0

    def get(self, ino: int, who: Hashable) -> Node | None:
        node = self._by_ino.get((ino, who))
        if node is None or node.expires < time.monotonic():
            self.misses += 1
            return None
        if node.cap is not None and node.cap.expires_ns < time.time_ns() + 1_000_000_000:
            self.misses += 1
            return None  # capability about to expire: fetch a fresh one
        self.hits += 1
        return node

    def put(self, node: Node, who: Hashable) -> None:
        key = (node.ino, who)
        self._by_ino[key] = node
        self._by_ino.move_to_end(key)
        while len(self._by_ino) > self.max_entries:
            self._by_ino.popitem(last=False)

    def get_path(self, path: str, who: Hashable) -> Node | None:
        ino = self._by_path.get((path, who))
        if ino is None:
            return None
        node = self.get(ino, who)
        if node is None:
            self._by_path.pop((path, who), None)
        return node

    def put_path(self, path: str, who: Hashable, node: Node) -> None:
        self.put(node, who)
        key = (path, who)
        self._by_path[key] = node.ino
        self._by_path.move_to_end(key)
        while len(self._by_path) > self.max_entries:
            self._by_path.popitem(last=False)

    def update_attr(self, ino: int, attr: pb.Attr) -> None:
        """A change of a directory's times only: its cached nodes keep their capability
        and lease, with the new attributes (a new Node: cached ones are never changed)."""
        for key, node in list(self._by_ino.items()):
            if key[0] == ino:
                self._by_ino[key] = dataclasses.replace(node, attr=attr)

    def forget(self, ino: int) -> None:
        """Drop a directory this client changed (all callers, all its paths)."""
        for ikey in [k for k in self._by_ino if k[0] == ino]:
            del self._by_ino[ikey]
        for pkey in [k for k, v in self._by_path.items() if v == ino]:
            del self._by_path[pkey]

    def forget_subtree(self, path: str) -> None:
        """Drop every cached path at or below ``path`` (after rename/rmdir)."""
        prefix = path.rstrip("/") + "/"
        for key in [k for k in self._by_path if k[0] == path or k[0].startswith(prefix)]:
            del self._by_path[key]

    def clear(self) -> None:
        self._by_ino.clear()
        self._by_path.clear()
