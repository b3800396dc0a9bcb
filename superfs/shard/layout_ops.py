"""Switching a chunked file's layout: the shard's one step of a chunk move.

The mover (superfs/rebalance) copies a file's chunks to the servers a new
layout places them on, then asks the file's shard to adopt that layout. The
switch is a compare-and-swap: it happens only if the layout is still the
one the mover copied for and no shrink cut chunks since (``cut_generation``),
so a truncate, an unlink or another mover that got there first makes it
fail cleanly (EAGAIN, ENOENT) and the mover starts that file over. Writers
still holding the old layout are stopped by the write fence the mover put
on the servers the file leaves (DataService.FenceWrites), not here.
"""
from __future__ import annotations

import errno

from superfs.errors import FsError
from superfs.shard.records import Inode
from superfs.shard.store import ShardTxn

MAX_LAYOUT = 65535


def switch_layout(t: ShardTxn, ino: int, *, expect_layout: list[int], expect_cut_generation: int,
                  layout: list[int]) -> Inode:
    """Replace the layout of chunked file ``ino`` by ``layout`` if it still is ``expect_layout``."""
    node = t.require_inode(ino)
    if node.inline:
        raise FsError(errno.EINVAL, f"inode {ino} is not chunked: it has no layout")
    if not layout or len(layout) > MAX_LAYOUT or len(set(layout)) != len(layout):
        raise FsError(errno.EINVAL, f"bad layout {layout}")
    if tuple(expect_layout) != node.layout or expect_cut_generation != node.cut_generation:
        raise FsError(errno.EAGAIN, f"inode {ino}: layout or cut changed since it was read "
                                    f"(layout {list(node.layout)}, cut generation {node.cut_generation})")
    if tuple(layout) == node.layout:
        return node
    node.layout = tuple(layout)
    t.put_inode(node)
    return node
