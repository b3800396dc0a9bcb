"""Tier 1: the client's coalesced directory touches (client/dirtimes.py), no network.

A burst of changes in one directory costs a handful of touches; a waiter
gets its touch at once and sees its result; a refused touch is dropped
quietly; a forgotten directory is not touched.
"""
from __future__ import annotations

import asyncio
import errno

from superfs.client.dirtimes import DELAY_S, DirTouches
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

CREDS = pb.Creds(uid=7, gid=7)


class FakeDirServer:
    def __init__(self, fail: int = 0) -> None:
        self.touches: list[int] = []
        self.fail = fail
        self.seen: dict[int, int] = {}

    async def touch(self, ino: int, creds: pb.Creds, changed_ns: int) -> pb.Attr:
        await asyncio.sleep(0.005)  # a round trip
        self.touches.append(ino)
        if self.fail:
            raise FsError(self.fail, "refused")
        return pb.Attr(ino=ino, mtime_ns=len(self.touches))

    def touched(self, ino: int, attr: pb.Attr) -> None:
        self.seen[ino] = attr.mtime_ns


def test_a_burst_of_changes_is_a_few_touches() -> None:
    async def run() -> FakeDirServer:
        srv = FakeDirServer()
        t = DirTouches(srv.touch, srv.touched)
        for _ in range(200):
            t.changed(10, CREDS)
            await asyncio.sleep(0)
        t.changed(11, CREDS)
        await asyncio.sleep(3 * DELAY_S + 0.05)
        return srv

    srv = asyncio.run(run())
    assert srv.touches.count(10) == 1 and srv.touches.count(11) == 1
    assert set(srv.seen) == {10, 11}


def test_settle_touches_at_once_and_waits_for_it() -> None:
    async def run() -> tuple[FakeDirServer, bool]:
        srv = FakeDirServer()
        t = DirTouches(srv.touch, srv.touched)
        t.changed(10, CREDS)
        await asyncio.wait_for(t.settle(10), DELAY_S / 2)  # no waiting out the delay
        done_before = 10 in srv.seen
        t.changed(10, CREDS)   # a change after the touch: one more
        await t.settle(10)
        await t.settle(12)     # nothing pending: returns
        return srv, done_before

    srv, done_before = asyncio.run(run())
    assert done_before and srv.touches == [10, 10]


def test_refused_touch_is_dropped_and_forget_cancels() -> None:
    async def run() -> tuple[FakeDirServer, FakeDirServer]:
        refused = FakeDirServer(fail=errno.EACCES)
        t = DirTouches(refused.touch, refused.touched)
        t.changed(10, CREDS)
        await t.settle(10)
        t.changed(10, CREDS)
        await t.settle_all()
        gone = FakeDirServer()
        t2 = DirTouches(gone.touch, gone.touched)
        t2.changed(20, CREDS)
        t2.forget(20)
        await asyncio.sleep(2 * DELAY_S)
        return refused, gone

    refused, gone = asyncio.run(run())
    assert refused.touches == [10, 10] and refused.seen == {}
    assert gone.touches == []


def test_overlay_answers_pending_changes_without_a_round_trip() -> None:
    from superfs.client.nodes import Node

    async def run() -> tuple[Node, Node, Node, FakeDirServer]:
        srv = FakeDirServer()
        t = DirTouches(srv.touch, srv.touched)
        node = Node(ino=10, attr=pb.Attr(ino=10, mtime_ns=5, ctime_ns=5), type=pb.DIRECTORY)
        untouched = t.overlay(node)
        t.changed(10, CREDS)
        pending = t.overlay(node)
        await t.settle(10)
        return untouched, pending, t.overlay(node), srv

    untouched, pending, after, srv = asyncio.run(run())
    assert untouched.attr.mtime_ns == 5 and after.attr.mtime_ns == 5  # nothing pending: as given
    assert pending.attr.mtime_ns == pending.attr.ctime_ns > 5         # the time of the change
    assert srv.touches == [10]
