"""Tier 1: the dir server's "entries changed" touch (SetAttr mask 256, client/dirtimes.py).

A client that created or removed names in a directory moves its mtime and
ctime to the time of that change: never backwards (touches arrive late and
out of order), never past the server's clock, only with write permission.
"""
from __future__ import annotations

import errno
from typing import Iterator

import pytest
from test_t1_dir_store import OTHER, OWNER, FakeShards

from superfs.dirserver.attrs import SET_ENTRIES_CHANGED, SET_MTIME_NOW, DirAttrs
from superfs.dirserver.coordinator import Coordinator
from superfs.dirserver.store import DirStore, now_ns
from superfs.errors import FsError
from superfs.routing import ROOT_INO
from superfs.v1 import superfs_pb2 as pb


@pytest.fixture
def store(tmp_path) -> Iterator[DirStore]:  # type: ignore[no-untyped-def]
    s = DirStore.open(str(tmp_path / "dir.lmdb"), durable=False, root_uid=OWNER.uid, root_gid=OWNER.gid)
    yield s
    s.close()


async def test_entries_changed_moves_times_forward_only(store: DirStore) -> None:
    d = await Coordinator(store, FakeShards()).mkdir(ROOT_INO, "d", 0o755, OWNER)
    attrs = DirAttrs(store)

    def touch(t: int, creds: pb.Creds = OWNER, mask: int = SET_ENTRIES_CHANGED) -> pb.Attr:
        return pb.SetAttrRequest(ino=d.ino, mask=mask, mtime_ns=t, creds=creds)

    start = store.need(d.ino).attr
    a = await attrs.set_attr(touch(start.mtime_ns - 10**9))           # late: no step back
    assert (a.mtime_ns, a.ctime_ns) == (start.mtime_ns, start.ctime_ns)
    t = now_ns()
    a = await attrs.set_attr(touch(t))
    assert a.mtime_ns == a.ctime_ns == t
    a = await attrs.set_attr(touch(now_ns() + 3600 * 10**9))          # a fast clock: clamped to now
    assert t <= a.mtime_ns <= now_ns() and a.ctime_ns == a.mtime_ns
    for req, err in [(touch(now_ns(), OTHER), errno.EACCES),          # no write permission
                     (touch(now_ns(), mask=SET_ENTRIES_CHANGED | SET_MTIME_NOW), errno.EINVAL)]:
        with pytest.raises(FsError) as e:
            await attrs.set_attr(req)
        assert e.value.errno == err
