"""Tier 1: the dir server's engine on a temp dir, no network.

The store, intent log, cluster map, namespace and attribute rules are tested
directly; the coordinator runs against ``FakeShards``, an in-memory model of
the shard calls it makes (the fake replaces only what lies below the RPC
layer), which can also fail or "crash" at any chosen call so that recovery
can be checked after every step of every protocol.
"""
from __future__ import annotations

import asyncio
import errno
import stat
from typing import Iterator

import pytest

from superfs import capability
from superfs.config import DirServerConfig
from superfs.dirserver import recovery
from superfs.dirserver.attrs import DirAttrs
from superfs.dirserver.cluster_map import ClusterRegistry, initial_map, register
from superfs.dirserver.coordinator import Coordinator
from superfs.dirserver.intents import Intent, IntentLog
from superfs.dirserver.locks import DirLocks, dir_key
from superfs.dirserver.namespace import Namespace
from superfs.dirserver.store import DirStore, now_ns
from superfs.errors import FsError
from superfs.routing import DIR_INO_LIMIT, ROOT_INO
from superfs.v1 import superfs_pb2 as pb

SECRET = b"0123456789abcdef-test-secret"
OWNER = pb.Creds(uid=1000, gid=1000)
OTHER = pb.Creds(uid=2000, gid=2000)
ROOT = pb.Creds(uid=0, gid=0)


class Crash(BaseException):
    """Stands for the dir server dying at this point: nothing after it runs."""


class FakeShards:
    """In-memory model of the shard-side calls the coordinator makes, over ``nshards`` shards.

    ``crash_at=(n, after)`` raises :class:`Crash` at the n-th call (1-based),
    before or after the call took effect; ``down`` makes every call fail with EIO.
    """

    def __init__(self, nshards: int = 2) -> None:
        self.nshards = nshards
        self.entries: dict[tuple[int, str], tuple[int, int]] = {}  # (parent, name) -> (ino, type)
        self.sealed: set[int] = set()
        self.calls: list[str] = []
        self.crash_at: tuple[int, bool] | None = None
        self.down = False
        self.delay = 0.0
        self.owners: dict[int, int] = {}  # file ino -> uid (default 0)
        self._next_file = DIR_INO_LIMIT + 1

    def shard_of(self, parent: int, name: str) -> int:
        return hash((parent, name)) % self.nshards

    def add_file(self, parent: int, name: str, kind: int = pb.REGULAR) -> int:
        assert parent not in self.sealed and (parent, name) not in self.entries
        ino = self._next_file
        self.entries[(parent, name)] = (ino, kind)
        self._next_file += 1
        return ino

    async def _step(self, what: str, effect) -> object:  # type: ignore[no-untyped-def]
        self.calls.append(what)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise FsError(errno.EIO, "shard down")
        crash = self.crash_at is not None and self.crash_at[0] == len(self.calls)
        if crash and not self.crash_at[1]:  # type: ignore[index]
            raise Crash(what)
        result = effect()
        if crash:
            raise Crash(what)
        return result

    async def reserve(self, parent: int, name: str, ino: int) -> None:
        def effect() -> None:
            have = self.entries.get((parent, name))
            if have is not None and have != (ino, pb.DIRECTORY):
                raise FsError(errno.EEXIST, "name taken")
            self.entries[(parent, name)] = (ino, pb.DIRECTORY)

        await self._step("reserve", effect)

    async def release(self, parent: int, name: str, ino: int) -> None:
        def effect() -> None:
            if self.entries.get((parent, name)) == (ino, pb.DIRECTORY):
                del self.entries[(parent, name)]

        await self._step("release", effect)

    async def seal_all(self, dir_ino: int) -> list[bool]:
        def effect() -> list[bool]:
            busy = {self.shard_of(p, n) for (p, n) in self.entries if p == dir_ino}
            if not busy:
                self.sealed.add(dir_ino)
            # a real shard seals alone; sealing none when one is busy is one valid outcome
            return [s not in busy for s in range(self.nshards)]

        return await self._step("seal", effect)  # type: ignore[return-value]

    async def unseal_all(self, dir_ino: int) -> None:
        await self._step("unseal", lambda: self.sealed.discard(dir_ino))

    async def file_type(self, parent: int, name: str, creds: pb.Creds) -> int | None:
        def effect() -> int | None:
            have = self.entries.get((parent, name))
            return None if have is None else have[1]

        return await self._step("lookup", effect)  # type: ignore[return-value]

    async def entry(self, parent: int, name: str, creds: pb.Creds) -> tuple[int, int, int] | None:
        def effect() -> tuple[int, int, int] | None:
            have = self.entries.get((parent, name))
            return None if have is None else (have[0], have[1], self.owners.get(have[0], 0))

        return await self._step("lookup", effect)  # type: ignore[return-value]

    async def repoint(self, parent: int, name: str, ino: int, ftype: int, new_ino: int, new_type: int) -> None:
        def effect() -> None:
            have = self.entries.get((parent, name))
            if have == (new_ino, new_type):
                return
            if have != (ino, ftype):
                raise FsError(errno.ENOENT, "the name changed")
            self.entries[(parent, name)] = (new_ino, new_type)

        await self._step("repoint", effect)


@pytest.fixture
def db_path(tmp_path):  # type: ignore[no-untyped-def]
    return str(tmp_path / "dir.lmdb")


@pytest.fixture
def store(db_path: str) -> Iterator[DirStore]:
    s = DirStore.open(db_path, durable=False, root_uid=OWNER.uid, root_gid=OWNER.gid)
    yield s
    s.close()


@pytest.fixture
def shards() -> FakeShards:
    return FakeShards()


@pytest.fixture
def coord(store: DirStore, shards: FakeShards) -> Coordinator:
    return Coordinator(store, shards)


def walk(store: DirStore, ino: int = ROOT_INO) -> Iterator[pb.DirInfo]:
    dirs, _ = store.list_children(ino, "", 100000)
    for d in dirs:
        yield d
        yield from walk(store, d.ino)


def assert_consistent(store: DirStore, shards: FakeShards) -> None:
    """Every directory is reserved under its name on the shards, and nothing else is."""
    here = {(d.parent_ino, d.name): d.ino for d in walk(store)}
    reserved = {k: ino for k, (ino, kind) in shards.entries.items() if kind == pb.DIRECTORY}
    assert here == reserved
    assert not shards.sealed & set(here.values()), "a live directory is sealed"
    assert IntentLog(store).all() == []
    for d in walk(store):
        subdirs = sum(1 for _ in store.list_children(d.ino, "", 100000)[0])
        assert d.attr.nlink == 2 + subdirs


# --------------------------------------------------------------------- store

def test_root_created_once_with_caller_as_owner(db_path: str) -> None:
    s = DirStore.open(db_path, durable=True, root_uid=4242, root_gid=77)
    root = s.need(ROOT_INO)
    assert root.attr.mode == stat.S_IFDIR | 0o755 and (root.attr.uid, root.attr.gid) == (4242, 77)
    assert root.parent_ino == ROOT_INO and root.attr.nlink == 2
    s.close()
    s = DirStore.open(db_path, root_uid=1, root_gid=1)
    assert s.need(ROOT_INO).attr.uid == 4242
    assert s.count() == 1
    s.close()


def _dir(ino: int, parent: int, name: str) -> pb.DirInfo:
    t = now_ns()
    return pb.DirInfo(ino=ino, parent_ino=parent, name=name, attr=pb.Attr(
        ino=ino, mode=stat.S_IFDIR | 0o755, nlink=2, uid=1, gid=1, atime_ns=t, mtime_ns=t, ctime_ns=t))


async def test_store_create_list_move_delete(store: DirStore) -> None:
    names = ["b", "a", "é", "c" * 255, "z"]
    inos = [await store.db.write(store.alloc_ino_txn) for _ in names]
    assert inos == list(range(2, 2 + len(names)))
    for ino, name in zip(inos, names):
        d = _dir(ino, ROOT_INO, name)
        await store.db.write(lambda txn, d=d: store.create_dir_txn(txn, d))
    with pytest.raises(FsError) as e:
        await store.db.write(lambda txn: store.create_dir_txn(txn, _dir(99, ROOT_INO, "a")))
    assert e.value.errno == errno.EEXIST
    assert store.need(ROOT_INO).attr.nlink == 2 + len(names)
    listed, more = store.list_children(ROOT_INO, "", 1000)
    assert [d.name for d in listed] == sorted(names, key=lambda n: n.encode()) and not more
    page, more = store.list_children(ROOT_INO, "a", 2)
    assert [d.name for d in page] == ["b", "c" * 255] and more
    page, more = store.list_children(ROOT_INO, "c" * 255, 2)
    assert [d.name for d in page] == ["z", "é"] and not more
    a, b = store.lookup(ROOT_INO, "a"), store.lookup(ROOT_INO, "b")
    assert a and b
    # move a under b, then b can't be deleted while it has a subdirectory
    await store.db.write(lambda txn: store.move_dir_txn(txn, a.ino, b.ino, "a2", now_ns()))
    assert store.lookup(ROOT_INO, "a") is None and store.lookup(b.ino, "a2").ino == a.ino
    assert store.need(b.ino).attr.nlink == 3 and store.need(ROOT_INO).attr.nlink == 1 + len(names)
    assert store.ancestors(a.ino) == [b.ino, ROOT_INO]
    with pytest.raises(FsError) as e:
        await store.db.write(lambda txn: store.delete_dir_txn(txn, b.ino, now_ns()))
    assert e.value.errno == errno.ENOTEMPTY
    await store.db.write(lambda txn: store.set_xattr_txn(txn, a.ino, "user.k", b"v"))
    await store.db.write(lambda txn: store.delete_dir_txn(txn, a.ino, now_ns()))
    assert store.get(a.ino) is None and store.list_xattrs(a.ino) == []
    assert store.need(b.ino).attr.nlink == 2
    assert store.count() == len(names)


async def test_intent_log_persists(db_path: str) -> None:
    s = DirStore.open(db_path, durable=True)
    log = IntentLog(s)
    i1 = Intent("mkdir", ino=5, parent=1, name="x\udcff")  # surrogate-escaped bytes survive
    i2 = Intent("renamedir", ino=6, parent=1, name="a", dst_parent=7, dst_name="b", replaced_ino=8)
    await s.db.write(lambda txn: log.add_txn(txn, i1))
    await s.db.write(lambda txn: log.add_txn(txn, i2))
    i2.aborting = True
    await s.db.write(lambda txn: log.update_txn(txn, i2))
    s.close()
    s = DirStore.open(db_path)
    log = IntentLog(s)
    assert log.all() == [i1, i2]
    assert log.removing(8) and not log.removing(6)
    assert log.conflicting({7}, set()) == [i2] and log.conflicting(set(), {1}) == [i1, i2]
    assert log.conflicting({1}, {99}) == [i2]  # a pending mkdir in 1 does not block others there
    await s.db.write(lambda txn: log.drop_txn(txn, i1.id))
    assert log.all() == [i2]
    s.close()


async def test_the_intent_log_in_memory_follows_only_what_commits(store: DirStore) -> None:
    """The copy is changed inside transactions; one that fails after changing it leaves the copy as
    the log is (it is read again), and another process's view of the log agrees."""
    log = IntentLog(store)
    kept = Intent("rmdir", ino=50, parent=1, name="a")
    await store.db.write(lambda txn: log.add_txn(txn, kept))

    def add_then_fail(txn: object) -> None:
        log.add_txn(txn, Intent("rmdir", ino=60, parent=1, name="b"))  # type: ignore[arg-type]
        raise FsError(errno.EIO, "fails after the add")

    def drop_then_fail(txn: object) -> None:
        log.drop_txn(txn, kept.id)  # type: ignore[arg-type]
        raise FsError(errno.EIO, "fails after the drop")

    for fn in (add_then_fail, drop_then_fail):
        with pytest.raises(FsError):
            await store.db.write(fn)
    assert log.all() == [kept] == IntentLog(store).all()
    assert log.removing(50) and not log.removing(60)
    assert log.conflicting(set(), {1}) == [kept] and log.conflicting({60}, set()) == []


# --------------------------------------------------------------------- locks

async def test_locks_share_exclude_and_survive_cancellation() -> None:
    locks = DirLocks()
    order: list[str] = []

    async def job(tag: str, excl: bool, hold_s: float) -> None:
        kw = {"exclusive": [dir_key(7)]} if excl else {"shared": [dir_key(7)]}
        async with locks.hold(**kw):
            order.append(f"+{tag}")
            await asyncio.sleep(hold_s)
            order.append(f"-{tag}")

    # two readers overlap; the writer waits for both; a later reader waits for the writer
    await asyncio.gather(job("r1", False, 0.02), job("r2", False, 0.02), job("w", True, 0.01),
                         job("r3", False, 0.0))
    assert order[:2] == ["+r1", "+r2"] and order.index("+w") > order.index("-r2")
    assert order.index("+r3") > order.index("-w")
    # a waiter cancelled in the queue, and a holder cancelled, leave nothing locked
    holder = asyncio.create_task(job("h", True, 10))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(job("x", True, 0))
    await asyncio.sleep(0)
    waiter.cancel()
    holder.cancel()
    await asyncio.gather(holder, waiter, return_exceptions=True)
    assert not locks.busy(dir_key(7))
    await asyncio.wait_for(job("after", True, 0), 1)


# --------------------------------------------------------------- cluster map

def test_cluster_map_register_and_persist(db_path: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = DirServerConfig(data_dir=str(tmp_path), secret_file="", shards=3, num_partitions=10, replicas=2)
    m = initial_map(cfg)
    assert list(m.partition_shard) == [p % 3 for p in range(10)] and m.epoch == 1 and m.replicas == 2
    assert register(m, "shard", pb.ServerInfo(id=2, address="h:2"))
    assert register(m, "shard", pb.ServerInfo(id=0, address="h:0"))
    assert not register(m, "shard", pb.ServerInfo(id=0, address="h:0"))
    assert [s.id for s in m.shards] == [0, 2]
    # a new shard may register with the next id (3 here: superfs admin add-shard), not past it
    for kind, server in [("shard", pb.ServerInfo(id=4, address="h:4")), ("disk", pb.ServerInfo(id=0, address="h:1")),
                         ("data", pb.ServerInfo(id=0, address=""))]:
        with pytest.raises(FsError) as e:
            register(m, kind, server)
        assert e.value.errno == errno.EINVAL

    async def go() -> None:
        s = DirStore.open(db_path)
        reg = ClusterRegistry(s, cfg)
        m1 = await reg.register("data", pb.ServerInfo(id=7, address="d:7"))
        m2 = await reg.register("data", pb.ServerInfo(id=7, address="d:7"))
        assert m1.epoch == m2.epoch == 2
        m3 = await reg.register("shard", pb.ServerInfo(id=1, address="s:1"))
        assert m3.epoch == 3
        s.close()
        s = DirStore.open(db_path)
        again = ClusterRegistry(s, cfg).map
        assert again == m3
        # a changed partition count is refused (kept), a changed tunable is taken
        changed = DirServerConfig(data_dir="", secret_file="", shards=3, num_partitions=99, inline_threshold=5)
        m4 = ClusterRegistry(s, changed).map
        assert m4.num_partitions == 10 and m4.inline_threshold == 5 and m4.epoch == 4
        assert ClusterRegistry(s, changed).map.epoch == 4
        s.close()

    asyncio.run(go())


# ----------------------------------------------------------------- namespace

async def test_resolve_walks_dirs_and_checks_search(store: DirStore, coord: Coordinator) -> None:
    ns = Namespace(store, SECRET, lease_s=2.5)
    a = await coord.mkdir(ROOT_INO, "a", 0o755, OWNER)
    b = await coord.mkdir(a.ino, "b", 0o700, OWNER)
    r = ns.resolve("/a/b/file.txt", OWNER)
    assert [d.ino for d in r.dirs] == [ROOT_INO, a.ino, b.ino] and list(r.remaining) == ["file.txt"]
    assert r.lease_ns == 2_500_000_000
    capability.verify(SECRET, r.cap, dir_ino=b.ino, uid=OWNER.uid)
    r = ns.resolve("//a/./b/../b/..//missing/x", OWNER)
    assert [d.ino for d in r.dirs] == [ROOT_INO, a.ino] and list(r.remaining) == ["missing", "x"]
    r = ns.resolve("/../../a/..", OWNER)
    assert [d.ino for d in r.dirs] == [ROOT_INO] and list(r.remaining) == []
    # another user may enter a (0o755) but not b (0o700); its cap on a carries no W
    with pytest.raises(FsError) as e:
        ns.resolve("/a/b/c", OTHER)
    assert e.value.errno == errno.EACCES
    r = ns.resolve("/a", OTHER)
    assert r.cap.rights == 5 and r.cap.owner_uid == OWNER.uid  # R|X, no W
    # by inode number, the rights hold only for a directory the caller can reach
    assert ns.get_dir(a.ino, OTHER).cap.rights == 5
    c = await coord.mkdir(b.ino, "c", 0o777, OWNER)
    hidden = ns.get_dir(c.ino, OTHER)
    assert hidden.cap.rights == 0 and hidden.dir.name == ""  # 0o777, but inside b (0o700)
    assert ns.get_dir(c.ino, OWNER).cap.rights == 7
    with pytest.raises(FsError) as e:
        ns.lookup_dir(b.ino, "c", OTHER)
    assert e.value.errno == errno.EACCES
    with pytest.raises(FsError) as e:
        ns.list_dirs(c.ino, "", 10, OTHER)
    assert e.value.errno == errno.EACCES
    with pytest.raises(FsError) as e:
        await coord.mkdir(c.ino, "planted", 0o777, OTHER)
    assert e.value.errno == errno.EACCES
    with pytest.raises(FsError) as e:
        capability.verify(SECRET, r.cap, dir_ino=a.ino, uid=OTHER.uid)
    assert e.value.errno == errno.EACCES
    with pytest.raises(FsError) as e:
        capability.verify(b"another-secret-entirely", ns.resolve("/a", OWNER).cap, dir_ino=a.ino, uid=OWNER.uid)
    assert e.value.errno == errno.EACCES
    for bad, err in [("/a/" + "x" * 256, errno.ENAMETOOLONG), ("/a\0b", errno.EINVAL),
                     ("/" + "a/" * 3000, errno.ENAMETOOLONG)]:
        with pytest.raises(FsError) as e:
            ns.resolve(bad, OWNER)
        assert e.value.errno == err


async def test_lookup_get_list(store: DirStore, coord: Coordinator) -> None:
    ns = Namespace(store, SECRET, lease_s=1)
    a = await coord.mkdir(ROOT_INO, "a", 0o711, OWNER)
    for i in range(5):
        await coord.mkdir(a.ino, f"d{i}", 0o755, OWNER)
    assert ns.lookup_dir(ROOT_INO, "a", OWNER).dir.ino == a.ino
    assert ns.lookup_dir(a.ino, "..", OWNER).dir.ino == ROOT_INO
    assert ns.lookup_dir(a.ino, ".", OWNER).dir.ino == a.ino
    assert ns.get_dir(a.ino, OTHER).dir.name == "a"
    for fn, args, err in [(ns.lookup_dir, (ROOT_INO, "nope"), errno.ENOENT),
                          (ns.lookup_dir, (12345, "a"), errno.ENOENT),
                          (ns.lookup_dir, (ROOT_INO, "x" * 256), errno.ENAMETOOLONG),
                          (ns.lookup_dir, (ROOT_INO, "a/b"), errno.EINVAL),
                          (ns.get_dir, (999,), errno.ENOENT),
                          (ns.get_dir, (DIR_INO_LIMIT + 5,), errno.ENOENT)]:
        with pytest.raises(FsError) as e:
            fn(*args, OWNER)  # type: ignore[operator]
        assert e.value.errno == err
    page = ns.list_dirs(a.ino, "", 2, OWNER)
    assert [d.name for d in page.dirs] == ["d0", "d1"] and page.more
    page = ns.list_dirs(a.ino, "d1", 0, OWNER)
    assert [d.name for d in page.dirs] == ["d2", "d3", "d4"] and not page.more
    with pytest.raises(FsError) as e:
        ns.list_dirs(a.ino, "", 0, OTHER)  # 0o711: others may search, not read
    assert e.value.errno == errno.EACCES


# --------------------------------------------------------------------- attrs

async def test_setattr_rules(store: DirStore, coord: Coordinator) -> None:
    attrs = DirAttrs(store)
    d = await coord.mkdir(ROOT_INO, "d", 0o755, OWNER)

    async def setattr(creds: pb.Creds, **kw: int) -> pb.Attr:
        return await attrs.set_attr(pb.SetAttrRequest(ino=d.ino, creds=creds, **kw))

    async def refused(err: int, creds: pb.Creds, **kw: int) -> None:
        with pytest.raises(FsError) as e:
            await setattr(creds, **kw)
        assert e.value.errno == err

    a = await setattr(OWNER, mask=1, mode=0o1777)
    assert a.mode == stat.S_IFDIR | 0o1777
    await refused(errno.EPERM, OTHER, mask=1, mode=0o777)
    await refused(errno.EPERM, OWNER, mask=2, uid=OTHER.uid)
    assert (await setattr(ROOT, mask=2, uid=3000)).uid == 3000
    assert (await setattr(ROOT, mask=2, uid=OWNER.uid)).uid == OWNER.uid
    await refused(errno.EPERM, OWNER, mask=4, gid=555)
    assert (await setattr(pb.Creds(uid=OWNER.uid, gid=OWNER.gid, groups=[555]), mask=4, gid=555)).gid == 555
    # setgid is dropped when the owner is not in the directory's group
    assert (await setattr(OWNER, mask=1, mode=0o2755)).mode == stat.S_IFDIR | 0o755
    await refused(errno.EISDIR, OWNER, mask=8, size=0)
    await refused(errno.EPERM, OTHER, mask=32, mtime_ns=5)
    a = await setattr(OWNER, mask=16 | 32, atime_ns=11, mtime_ns=22)
    assert (a.atime_ns, a.mtime_ns) == (11, 22) and a.ctime_ns > 22
    await setattr(OWNER, mask=1, mode=0o755)
    await refused(errno.EACCES, OTHER, mask=128)
    await setattr(OWNER, mask=1, mode=0o757)
    assert (await setattr(OTHER, mask=64 | 128)).mtime_ns > 22
    with pytest.raises(FsError) as e:
        await attrs.set_attr(pb.SetAttrRequest(ino=4321, mask=1, creds=ROOT))
    assert e.value.errno == errno.ENOENT


async def test_xattr_rules(store: DirStore, coord: Coordinator) -> None:
    attrs = DirAttrs(store)
    d = await coord.mkdir(ROOT_INO, "d", 0o750, OWNER)
    await attrs.set_xattr(d.ino, "user.a", b"1", 0, OWNER)
    await attrs.set_xattr(d.ino, "user.b", b"x" * 65536, 1, OWNER)
    await attrs.set_xattr(d.ino, "user.a", b"2", 2, OWNER)
    assert attrs.get_xattr(d.ino, "user.a", OWNER) == b"2"
    assert attrs.list_xattrs(d.ino, OWNER) == ["user.a", "user.b"]
    cases = [
        (attrs.set_xattr(d.ino, "user.a", b"", 1, OWNER), errno.EEXIST),
        (attrs.set_xattr(d.ino, "user.c", b"", 2, OWNER), errno.ENODATA),
        (attrs.set_xattr(d.ino, "user.c", b"", 3, OWNER), errno.EINVAL),
        (attrs.set_xattr(d.ino, "", b"", 0, OWNER), errno.ERANGE),
        (attrs.set_xattr(d.ino, "u" * 256, b"", 0, OWNER), errno.ERANGE),
        (attrs.set_xattr(d.ino, "user.c", b"x" * 65537, 0, OWNER), errno.E2BIG),
        (attrs.set_xattr(d.ino, "user.c", b"", 0, OTHER), errno.EACCES),   # user.*: write permission
        (attrs.remove_xattr(d.ino, "user.a", OTHER), errno.EACCES),
        (attrs.set_xattr(d.ino, "trusted.c", b"", 0, OWNER), errno.EPERM),  # trusted.*: root's
        (attrs.set_xattr(d.ino, "security.c", b"", 0, OWNER), errno.EPERM),  # security.*: root changes
        (attrs.set_xattr(d.ino, "other.c", b"", 0, OWNER), errno.EOPNOTSUPP),
        (attrs.remove_xattr(d.ino, "user.zz", OWNER), errno.ENODATA),
        (attrs.set_xattr(9999, "user.c", b"", 0, OWNER), errno.ENOENT),
    ]
    for aw, err in cases:
        with pytest.raises(FsError) as e:
            await aw
        assert e.value.errno == err, (aw, err)
    with pytest.raises(FsError) as e:
        attrs.get_xattr(d.ino, "user.a", OTHER)
    assert e.value.errno == errno.EACCES
    await attrs.set_xattr(d.ino, "trusted.t", b"t", 0, ROOT)
    await attrs.set_xattr(d.ino, "security.s", b"s", 0, ROOT)
    assert attrs.get_xattr(d.ino, "security.s", OTHER) == b"s"   # anyone reads security.*
    with pytest.raises(FsError) as e:
        attrs.get_xattr(d.ino, "trusted.t", OWNER)
    assert e.value.errno == errno.ENODATA
    assert attrs.list_xattrs(d.ino, OTHER) == ["security.s", "user.a", "user.b"]  # no permission, no trusted.*
    assert "trusted.t" in attrs.list_xattrs(d.ino, ROOT)
    await attrs.remove_xattr(d.ino, "trusted.t", ROOT)
    await attrs.remove_xattr(d.ino, "security.s", ROOT)
    with pytest.raises(FsError) as e:
        attrs.get_xattr(d.ino, "user.none", OWNER)
    assert e.value.errno == errno.ENODATA
    await attrs.remove_xattr(d.ino, "user.a", ROOT)
    assert attrs.list_xattrs(d.ino, ROOT) == ["user.b"]


# --------------------------------------------------------------- coordinator

async def test_mkdir(store: DirStore, coord: Coordinator, shards: FakeShards) -> None:
    a = await coord.mkdir(ROOT_INO, "a", 0o40777, OWNER)
    assert a.attr.mode == stat.S_IFDIR | 0o777 and a.attr.uid == OWNER.uid and a.attr.nlink == 2
    assert store.need(ROOT_INO).attr.nlink == 3
    assert shards.entries[(ROOT_INO, "a")] == (a.ino, pb.DIRECTORY)
    assert await coord.mkdir(ROOT_INO, "n" * 255, 0o755, OWNER)
    shards.add_file(ROOT_INO, "file")
    cases = [
        ((ROOT_INO, "a"), errno.EEXIST), ((ROOT_INO, "file"), errno.EEXIST),
        ((ROOT_INO, "n" * 256), errno.ENAMETOOLONG), ((ROOT_INO, "x/y"), errno.EINVAL),
        ((ROOT_INO, "x\0y"), errno.EINVAL), ((ROOT_INO, "."), errno.EINVAL),
        ((ROOT_INO, ".."), errno.EINVAL), ((ROOT_INO, ""), errno.ENOENT),
        ((777, "x"), errno.ENOENT),
    ]
    for (parent, name), err in cases:
        with pytest.raises(FsError) as e:
            await coord.mkdir(parent, name, 0o755, OWNER)
        assert e.value.errno == err, name
    with pytest.raises(FsError) as e:
        await coord.mkdir(ROOT_INO, "mine", 0o755, OTHER)  # root dir is 0o755, owned by OWNER
    assert e.value.errno == errno.EACCES
    # setgid parent: the child takes its group and the bit
    sg = await coord.mkdir(ROOT_INO, "sg", 0o2777, OWNER)
    assert not sg.attr.mode & stat.S_ISGID  # mkdir(2) ignores it; chmod sets it
    await DirAttrs(store).set_attr(pb.SetAttrRequest(ino=sg.ino, mask=1, mode=0o2777, creds=OWNER))
    kid = await coord.mkdir(sg.ino, "kid", 0o755, OTHER)
    assert kid.attr.gid == OWNER.gid and kid.attr.mode & stat.S_ISGID
    await coord.drain()  # rmdir and rename drop their intents after replying
    assert_consistent(store, shards)


async def test_rmdir(store: DirStore, coord: Coordinator, shards: FakeShards) -> None:
    a = await coord.mkdir(ROOT_INO, "a", 0o755, OWNER)
    b = await coord.mkdir(a.ino, "b", 0o755, OWNER)
    shards.add_file(ROOT_INO, "f")
    await store.db.write(lambda txn: store.set_xattr_txn(txn, b.ino, "user.x", b"1"))
    for (parent, name, creds), err in [
        ((ROOT_INO, "a", OWNER), errno.ENOTEMPTY), ((ROOT_INO, "f", OWNER), errno.ENOTDIR),
        ((ROOT_INO, "zz", OWNER), errno.ENOENT), ((a.ino, "b", OTHER), errno.EACCES),
        ((ROOT_INO, ".", OWNER), errno.EINVAL), ((4444, "b", OWNER), errno.ENOENT),
    ]:
        with pytest.raises(FsError) as e:
            await coord.rmdir(parent, name, creds)
        assert e.value.errno == err, name
    # a file inside b on some shard: the seal says not empty, and b stays usable
    shards.add_file(b.ino, "inner")
    with pytest.raises(FsError) as e:
        await coord.rmdir(a.ino, "b", OWNER)
    assert e.value.errno == errno.ENOTEMPTY
    assert b.ino not in shards.sealed and store.get(b.ino)
    del shards.entries[(b.ino, "inner")]
    await coord.rmdir(a.ino, "b", OWNER)
    assert store.get(b.ino) is None and b.ino in shards.sealed and store.list_xattrs(b.ino) == []
    assert store.need(a.ino).attr.nlink == 2
    await coord.rmdir(ROOT_INO, "a", OWNER)
    await coord.drain()  # rmdir and rename drop their intents after replying
    assert_consistent(store, shards)


async def test_sticky_directory(store: DirStore, coord: Coordinator, shards: FakeShards) -> None:
    tmp = await coord.mkdir(ROOT_INO, "tmp", 0o1777, OWNER)
    await coord.mkdir(tmp.ino, "theirs", 0o755, OTHER)
    third = pb.Creds(uid=3000, gid=3000)
    with pytest.raises(FsError) as e:
        await coord.rmdir(tmp.ino, "theirs", third)
    assert e.value.errno == errno.EPERM
    with pytest.raises(FsError) as e:
        await coord.rename_dir(tmp.ino, "theirs", tmp.ino, "stolen", 0, third)
    assert e.value.errno == errno.EPERM
    await coord.mkdir(tmp.ino, "target", 0o755, OTHER)
    await coord.mkdir(tmp.ino, "mine", 0o755, third)
    with pytest.raises(FsError) as e:
        await coord.rename_dir(tmp.ino, "mine", tmp.ino, "target", 0, third)  # replacing theirs
    assert e.value.errno == errno.EPERM
    await coord.rmdir(tmp.ino, "theirs", OWNER)  # the directory's owner may
    await coord.rename_dir(tmp.ino, "target", tmp.ino, "moved", 0, OTHER)
    await coord.drain()  # rmdir and rename drop their intents after replying
    assert_consistent(store, shards)


async def test_rename(store: DirStore, coord: Coordinator, shards: FakeShards) -> None:
    a = await coord.mkdir(ROOT_INO, "a", 0o755, OWNER)
    b = await coord.mkdir(a.ino, "b", 0o755, OWNER)
    c = await coord.mkdir(b.ino, "c", 0o755, OWNER)
    x = await coord.mkdir(ROOT_INO, "x", 0o755, OWNER)
    shards.add_file(ROOT_INO, "f")
    shards.add_file(x.ino, "busy")
    await coord.mkdir(ROOT_INO, "full", 0o755, OWNER)
    await coord.mkdir(store.lookup(ROOT_INO, "full").ino, "kid", 0o755, OWNER)  # type: ignore[union-attr]
    await coord.mkdir(ROOT_INO, "empty", 0o755, OWNER)
    bad = [
        ((ROOT_INO, "a", b.ino, "a"), 0, errno.EINVAL),      # into its own subtree
        ((ROOT_INO, "a", c.ino, "z"), 0, errno.EINVAL),
        ((ROOT_INO, "a", a.ino, "z"), 0, errno.EINVAL),      # into itself
        ((ROOT_INO, "a", ROOT_INO, "f"), 0, errno.ENOTDIR),  # over a file
        ((ROOT_INO, "a", ROOT_INO, "f"), 1, errno.EEXIST),
        ((ROOT_INO, "f", ROOT_INO, "g"), 0, errno.ENOTDIR),  # a file is not ours to move
        ((ROOT_INO, "nope", ROOT_INO, "g"), 0, errno.ENOENT),
        ((ROOT_INO, "a", ROOT_INO, "full"), 0, errno.ENOTEMPTY),  # has a subdir
        ((ROOT_INO, "a", ROOT_INO, "x"), 0, errno.ENOTEMPTY),     # a shard has a file in it
        ((ROOT_INO, "a", ROOT_INO, "empty"), 1, errno.EEXIST),
        ((ROOT_INO, "a", ROOT_INO, "empty"), 3, errno.EINVAL),    # NOREPLACE|EXCHANGE
        ((ROOT_INO, "a", ROOT_INO, "x" * 256), 0, errno.ENAMETOOLONG),
        ((ROOT_INO, "a", ROOT_INO, ".."), 0, errno.EINVAL),
        ((ROOT_INO, "a", 9999, "z"), 0, errno.ENOENT),
        ((ROOT_INO, "a", DIR_INO_LIMIT + 1, "z"), 0, errno.ENOTDIR),
    ]
    for (sp, sn, dp, dn), flags, err in bad:
        with pytest.raises(FsError) as e:
            await coord.rename_dir(sp, sn, dp, dn, flags, OWNER)
        assert e.value.errno == err, (sn, dn, flags)
    assert x.ino not in shards.sealed  # the failed replace unsealed it
    with pytest.raises(FsError) as e:
        await coord.rename_dir(ROOT_INO, "a", ROOT_INO, "z", 0, OTHER)
    assert e.value.errno == errno.EACCES
    await coord.drain()  # rmdir and rename drop their intents after replying
    assert_consistent(store, shards)
    await coord.rename_dir(ROOT_INO, "a", ROOT_INO, "a", 0, OWNER)  # onto itself: no-op
    await coord.rename_dir(a.ino, "b", ROOT_INO, "b2", 0, OWNER)
    assert store.lookup(ROOT_INO, "b2").ino == b.ino and store.lookup(a.ino, "b") is None  # type: ignore[union-attr]
    assert store.need(a.ino).attr.nlink == 2 and store.need(b.ino).parent_ino == ROOT_INO
    empty = store.lookup(ROOT_INO, "empty")
    await coord.rename_dir(ROOT_INO, "b2", ROOT_INO, "empty", 0, OWNER)  # replaces the empty dir
    assert store.get(empty.ino) is None and empty.ino in shards.sealed  # type: ignore[union-attr]
    assert store.lookup(ROOT_INO, "empty").ino == b.ino  # type: ignore[union-attr]
    await coord.rename_dir(ROOT_INO, "empty", ROOT_INO, "renamed", 1, OWNER)
    assert store.ancestors(c.ino) == [b.ino, ROOT_INO]
    await coord.drain()  # rmdir and rename drop their intents after replying
    assert_consistent(store, shards)


# ------------------------------------------------------------ crash recovery

async def _build(coord: Coordinator) -> dict[str, pb.DirInfo]:
    a = await coord.mkdir(ROOT_INO, "a", 0o755, OWNER)
    b = await coord.mkdir(ROOT_INO, "b", 0o755, OWNER)
    v = await coord.mkdir(b.ino, "victim", 0o755, OWNER)
    return {"a": a, "b": b, "victim": v}


SCENARIOS = {
    # name: (operation, outcome after recovery from a crash at each of its shard calls)
    # mkdir and rmdir are undone before their commit point; a rename rolls forward
    # (its first call, a lookup of the destination, comes before its intent).
    "mkdir": (lambda c, d: c.mkdir(d["a"].ino, "new", 0o755, OWNER), ["absent"]),
    "rmdir": (lambda c, d: c.rmdir(d["b"].ino, "victim", OWNER), ["kept", "removed"]),
    "rename": (lambda c, d: c.rename_dir(ROOT_INO, "a", d["b"].ino, "moved", 0, OWNER), ["unmoved", "moved", "moved"]),
    "rename_replace": (lambda c, d: c.rename_dir(ROOT_INO, "a", d["b"].ino, "victim", 0, OWNER), ["moved"] * 4),
}


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_crash_at_every_step_then_recover(db_path: str, scenario: str, after: bool) -> None:
    op, outcomes = SCENARIOS[scenario]
    for step, outcome in enumerate(outcomes, start=1):
        path = f"{db_path}-{step}"
        shards = FakeShards()
        store = DirStore.open(path, durable=True, root_uid=OWNER.uid, root_gid=OWNER.gid)
        coord = Coordinator(store, shards)
        dirs = await _build(coord)
        shards.calls.clear()
        shards.crash_at = (step, after)
        with pytest.raises(Crash):
            await op(coord, dirs)
        made = len(shards.calls)
        store.close()  # the dir server dies; the shards keep their state
        shards.crash_at = None
        store = DirStore.open(path, root_uid=OWNER.uid, root_gid=OWNER.gid)
        coord = Coordinator(store, shards)
        assert len(coord.intents.all()) == (0 if outcome == "unmoved" else 1)
        assert await recovery.recover_all(coord) == 0
        await coord.drain()
        assert_consistent(store, shards)
        assert made == step
        a = dirs["a"]
        if outcome == "absent":
            assert store.lookup(a.ino, "new") is None
        elif outcome == "kept":
            assert store.lookup(dirs["b"].ino, "victim") is not None
        elif outcome == "removed":
            assert store.lookup(dirs["b"].ino, "victim") is None
            assert dirs["victim"].ino in shards.sealed
        elif outcome == "unmoved":
            assert store.lookup(ROOT_INO, "a").ino == a.ino  # type: ignore[union-attr]
        else:
            here = store.get(a.ino)
            assert here is not None and here.parent_ino == dirs["b"].ino, (scenario, step, after)
            assert store.lookup(ROOT_INO, "a") is None
        store.close()


async def test_shard_down_then_recovery_rolls_rename_forward(store: DirStore, coord: Coordinator,
                                                             shards: FakeShards) -> None:
    d = await _build(coord)
    shards.down = True
    with pytest.raises(FsError) as e:
        await coord.rename_dir(ROOT_INO, "a", d["b"].ino, "victim", 0, OWNER)
    assert e.value.errno == errno.EIO
    assert await recovery.recover_all(coord) == 1  # still down: the intent waits
    # an operation on the same directories must settle it first, and so fails too
    with pytest.raises(FsError) as e:
        await coord.rmdir(ROOT_INO, "a", OWNER)
    assert e.value.errno == errno.EIO
    shards.down = False
    task = asyncio.create_task(recovery.recovery_loop(coord, interval_s=0.01, retry_s=0.01))
    for _ in range(200):
        if not coord.intents.all():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert store.get(d["a"].ino).parent_ino == d["b"].ino  # type: ignore[union-attr]
    assert store.get(d["victim"].ino) is None
    await coord.drain()  # rmdir and rename drop their intents after replying
    assert_consistent(store, shards)


async def test_failed_rmdir_pending_blocks_mkdir_until_settled(store: DirStore, coord: Coordinator,
                                                                shards: FakeShards) -> None:
    d = await _build(coord)
    shards.down = True
    with pytest.raises(FsError):
        await coord.rmdir(d["b"].ino, "victim", OWNER)
    with pytest.raises(FsError) as e:
        await coord.mkdir(d["victim"].ino, "inside", 0o755, OWNER)
    assert e.value.errno == errno.EIO  # the pending removal needs the shard to settle
    shards.down = False
    inside = await coord.mkdir(d["victim"].ino, "inside", 0o755, OWNER)  # settled: rmdir undone
    assert store.get(inside.ino) and d["victim"].ino not in shards.sealed
    await coord.drain()  # rmdir and rename drop their intents after replying
    assert_consistent(store, shards)


async def test_moving_a_directory_needs_write_on_it(store: DirStore, coord: Coordinator,
                                                    shards: FakeShards) -> None:
    pub = await coord.mkdir(ROOT_INO, "pub", 0o777, OWNER)
    await coord.mkdir(pub.ino, "ro", 0o555, OWNER)
    other_home = await coord.mkdir(pub.ino, "home", 0o755, OTHER)
    with pytest.raises(FsError) as e:
        await coord.rename_dir(pub.ino, "ro", other_home.ino, "ro", 0, OTHER)
    assert e.value.errno == errno.EACCES
    await coord.rename_dir(pub.ino, "ro", pub.ino, "renamed", 0, OTHER)  # same parent: '..' unchanged
    made = await coord.mkdir(pub.ino, "bits", 0o7777, OTHER)
    assert stat.S_IMODE(made.attr.mode) == 0o1777
    await coord.drain()  # rmdir and rename drop their intents after replying
    assert_consistent(store, shards)


async def test_file_takes_name_during_rename_aborts(store: DirStore, coord: Coordinator,
                                                     shards: FakeShards) -> None:
    d = await _build(coord)
    real_reserve = shards.reserve

    async def racing_reserve(parent: int, name: str, ino: int) -> None:
        if ino == d["a"].ino and parent == d["b"].ino:  # the rename's reservation
            shards.add_file(parent, name)  # a client created a file there just now
        await real_reserve(parent, name, ino)

    shards.reserve = racing_reserve  # type: ignore[method-assign]
    with pytest.raises(FsError) as e:
        await coord.rename_dir(ROOT_INO, "a", d["b"].ino, "fresh", 0, OWNER)
    assert e.value.errno == errno.EEXIST
    assert store.lookup(ROOT_INO, "a").ino == d["a"].ino  # type: ignore[union-attr]
    assert coord.intents.all() == []
    # and over an existing empty directory: the file wins its name, the empty dir goes
    with pytest.raises(FsError) as e:
        await coord.rename_dir(ROOT_INO, "a", d["b"].ino, "victim", 0, OWNER)
    assert e.value.errno == errno.EEXIST
    assert store.get(d["victim"].ino) is None and store.lookup(ROOT_INO, "a")
    shards.entries = {k: v for k, v in shards.entries.items() if v[1] == pb.DIRECTORY}
    await coord.drain()  # rmdir and rename drop their intents after replying
    assert_consistent(store, shards)


async def test_mkdir_inside_directory_being_removed(store: DirStore, coord: Coordinator,
                                                    shards: FakeShards) -> None:
    d = await _build(coord)
    shards.delay = 0.05
    rm = asyncio.create_task(coord.rmdir(d["b"].ino, "victim", OWNER))
    await asyncio.sleep(0.005)  # rmdir now waits on the shards, holding victim's lock
    assert not rm.done() and coord.locks.busy(dir_key(d["victim"].ino))
    with pytest.raises(FsError) as e:
        await coord.mkdir(d["victim"].ino, "late", 0o755, OWNER)
    assert e.value.errno == errno.ENOENT
    await rm
    await coord.drain()  # rmdir and rename drop their intents after replying
    assert_consistent(store, shards)


async def test_concurrent_renames_never_make_a_cycle(store: DirStore, coord: Coordinator,
                                                      shards: FakeShards) -> None:
    d = await _build(coord)
    shards.delay = 0.005
    results = await asyncio.gather(
        coord.rename_dir(ROOT_INO, "a", d["b"].ino, "a", 0, OWNER),
        coord.rename_dir(ROOT_INO, "b", d["a"].ino, "b", 0, OWNER),
        return_exceptions=True,
    )
    errs = [r for r in results if isinstance(r, FsError)]
    assert len(errs) == 1 and errs[0].errno in (errno.EINVAL, errno.ENOENT)
    for ino in (d["a"].ino, d["b"].ino):
        assert store.ancestors(ino)[-1] == ROOT_INO
    await coord.drain()  # rmdir and rename drop their intents after replying
    assert_consistent(store, shards)


async def test_many_concurrent_mkdirs_share_commits(store: DirStore, coord: Coordinator,
                                                    shards: FakeShards) -> None:
    made = await asyncio.gather(*(coord.mkdir(ROOT_INO, f"d{i}", 0o755, OWNER) for i in range(200)))
    assert len({m.ino for m in made}) == 200
    assert store.need(ROOT_INO).attr.nlink == 202
    assert store.db.batches < store.db.batched_ops
    await coord.drain()  # rmdir and rename drop their intents after replying
    assert_consistent(store, shards)
