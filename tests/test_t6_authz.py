"""Authorization attacks: a token limited to one uid against every daemon kind (issue 13).

The attacker holds a valid token that may act only as uid 1000 ("alice") and
knows the inode numbers of root's files (they are guessable). Through raw
RPCs to the dir server, each shard and each data server, and through the
client library, it tries what POSIX forbids it: list, read, write, truncate,
delete and link root's files, and get capabilities for directories it cannot
reach by inode number. Every attempt must be refused with a POSIX errno
(EACCES, EPERM, or ESTALE for an expired capability), the daemons must keep
serving, and root's bytes must be unchanged afterwards. What alice may do
(her own files, chunked ones included) must keep working.
"""
from __future__ import annotations

import errno
import os
import textwrap
import time
from typing import Any, Awaitable, Callable, Iterator

import pytest

from superfs import capability, config_file, routing
from superfs.cli.launcher import LocalCluster
from superfs.client import Creds, connect
from superfs.rpc.channels import Channels
from superfs.rpc.security import ClientSecurity
from superfs.client import streams
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

ROOT = Creds(0, 0, ())
ALICE = Creds(1000, 1000, (100,))
TOKENS = {"daemon": "d" * 40, "mount": "m" * 40, "alice": "a" * 40}
CHUNK = 64 * 1024
BIG = bytes(range(256)) * (3 * CHUNK // 256)  # three chunks


def _write(path: str, text: str, mode: int = 0o600) -> str:
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    os.chmod(path, mode)
    return path


class Cluster:
    """The cluster under attack, the paths of its config files and root's targets."""

    def __init__(self, local: LocalCluster, d: str) -> None:
        self.local = local
        self.d = d
        self.dir = str(local.config["dir_server"])
        self.shards = [str(a) for a in local.config["shards"]]  # type: ignore[union-attr]
        self.data = [str(a) for a in local.config["data_servers"]]  # type: ignore[union-attr]
        self.ino: dict[str, int] = {}

    def config(self, who: str) -> str:
        return os.path.join(self.d, f"{who}.toml")

    def secret(self) -> bytes:
        with open(self.local.path("secret"), "rb") as f:
            return f.read().strip()


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    d = str(tmp_path_factory.mktemp("authz"))
    _write(os.path.join(d, "tokens"), f"""
        {TOKENS['daemon']}  any   any   daemon
        {TOKENS['mount']}   any   any
        {TOKENS['alice']}   1000  1000,100
    """)
    for name, tok in TOKENS.items():
        _write(os.path.join(d, f"{name}.token"), tok + "\n")
    base = _write(os.path.join(d, "base.toml"), f"""
        [auth]
        tokens_file = "{d}/tokens"
        token_file = "{d}/daemon.token"
    """, 0o644)
    local = LocalCluster(os.path.join(d, "state"))
    local.init(shards=2, data_servers=2, replicas=2, inline_threshold=4096, chunk_size=CHUNK,
               durability="async", base=config_file.load(base))
    local.start()
    cl = Cluster(local, d)
    for name in TOKENS:
        _write(cl.config(name), f'[dir_server]\naddress = "{cl.dir}"\n[auth]\ntoken_file = "{d}/{name}.token"\n',
               0o644)
    try:
        with connect(config=cl.config("mount"), creds=ROOT) as root:
            root.makedirs("/home/alice")
            root.chown("/home/alice", 1000, 1000)
            root.mkdir("/secret", 0o700)
            root.write_bytes("/secret/small", b"root's small secret")
            root.chmod("/secret/small", 0o644)
            root.mkdir("/secret/pub", 0o777)
            root.chmod("/secret/pub", 0o777)
            for i in range(8):  # names on every shard
                root.write_bytes(f"/secret/f{i}", b"x")
            root.mkdir("/private", 0o711)  # searchable, not readable
            root.chmod("/private", 0o711)
            root.write_bytes("/private/listed-never", b"?")
            root.write_bytes("/rootonly", BIG)
            root.chmod("/rootonly", 0o600)
            root.write_bytes("/rootonly-small", b"tiny secret")
            root.chmod("/rootonly-small", 0o600)
            root.write_bytes("/readable", BIG)
            root.chmod("/readable", 0o644)
            for p in ("/secret", "/secret/pub", "/private", "/home/alice", "/rootonly", "/rootonly-small",
                      "/readable", "/secret/small"):
                cl.ino[p] = root.stat(p).st_ino
            for i in range(8):
                cl.ino[f"/secret/f{i}"] = root.stat(f"/secret/f{i}").st_ino
        yield cl
    finally:
        local.stop()


async def errno_of(aw: Awaitable[Any]) -> int | None:
    try:
        await aw
    except FsError as e:
        return e.errno
    return None


class Raw:
    """Typed wrappers carrying one token (no client library in between)."""

    def __init__(self, token: str) -> None:
        self.channels = Channels(10.0, security=ClientSecurity(token=token))

    def dir(self, c: Cluster) -> Any:
        return self.channels.dir(c.dir)

    def shard(self, address: str) -> Any:
        return self.channels.shard(address)

    def data(self, address: str) -> Any:
        return self.channels.data(address)

    def data_streams(self, address: str) -> Any:
        return self.channels.data_streams(address)

    async def close(self) -> None:
        await self.channels.close()


@pytest.fixture
async def alice_raw() -> Any:
    r = Raw(TOKENS["alice"])
    yield r
    await r.close()


async def cluster_map(raw: Raw, c: Cluster) -> pb.ClusterMap:
    return await raw.dir(c).get_cluster_map(pb.GetClusterMapRequest(), 10)


def shard_of_entry(m: pb.ClusterMap, c: Cluster, parent: int, name: str) -> str:
    sid = m.partition_shard[routing.entry_partition(parent, name, m.num_partitions)]
    return next(s.address for s in m.shards if s.id == sid)


def shard_of_ino(m: pb.ClusterMap, ino: int) -> str:
    sid = m.partition_shard[routing.ino_partition(ino)]
    return next(s.address for s in m.shards if s.id == sid)


def root_bytes_unchanged(c: Cluster) -> None:
    with connect(config=c.config("mount"), creds=ROOT) as root:
        assert root.read_bytes("/rootonly") == BIG
        assert root.read_bytes("/readable") == BIG
        assert root.read_bytes("/rootonly-small") == b"tiny secret"
        assert root.read_bytes("/secret/small") == b"root's small secret"
        assert sorted(root.listdir("/secret/pub")) == []
        assert root.stat("/rootonly").st_nlink == 1


# ---------------------------------------------------------------- data servers

async def test_data_servers_refuse_listing_deleting_and_truncating_to_a_user_token(c, alice_raw):
    for address in c.data:
        stub = alice_raw.data(address)
        assert await errno_of(stub.list_chunks(pb.ListChunksRequest(limit=100), 10)) == errno.EPERM
        assert await errno_of(stub.delete_chunks(pb.DeleteChunksRequest(ino=c.ino["/rootonly"]), 10)) \
            == errno.EPERM
        req = pb.TruncateChunkRequest(key=pb.ChunkKey(ino=c.ino["/rootonly"], index=0), length=1)
        assert await errno_of(stub.truncate_chunk(req, 10)) == errno.EPERM
    root_bytes_unchanged(c)


async def test_data_servers_refuse_reads_and_writes_without_a_valid_chunk_capability(c, alice_raw):
    ino = c.ino["/rootonly"]
    m = await cluster_map(alice_raw, c)
    # a capability alice may legitimately hold: read-only, for root's 0644 file
    readable = await alice_raw.shard(shard_of_ino(m, c.ino["/readable"])).get_file(
        pb.GetFileRequest(ino=c.ino["/readable"], creds=ALICE.pb()), 10)
    assert readable.chunk_cap.rights == 4  # R_OK only
    mine_cap = readable.chunk_cap
    forged = pb.ChunkCap(ino=ino, rights=6, expires_ns=time.time_ns() + 10**12, mac=os.urandom(32))
    other_inode = pb.ChunkCap()
    other_inode.CopyFrom(mine_cap)
    other_inode.ino = ino  # the MAC covers the ino: changing it breaks the signature
    for address in c.data:
        stub = alice_raw.data(address)
        for cap in (None, forged, mine_cap, other_inode):
            key = pb.ChunkKey(ino=ino, index=0)
            rd = pb.ReadChunkRequest(key=key, offset=0, length=100)
            wr = pb.WriteChunkRequest(key=key, offset=0, data=b"pwned")
            if cap is not None:
                rd.cap.CopyFrom(cap)
                wr.cap.CopyFrom(cap)
            assert await errno_of(stub.read_chunk(rd, 10)) == errno.EACCES, cap
            assert await errno_of(stub.write_chunk(wr, 10)) == errno.EACCES, cap
            bulk = alice_raw.data_streams(address)
            assert await errno_of(streams.read_chunk(bulk, key, 0, 100, 10, cap)) == errno.EACCES
            # (within the daemon's message limit: a chunk of this test cluster plus headroom)
            assert await errno_of(streams.write_chunk(bulk, key, 0, memoryview(b"p" * 100_000), 10, cap)) \
                == errno.EACCES
        # a read capability does not allow writing the file it is for
        key = pb.ChunkKey(ino=c.ino["/readable"], index=0)
        wr = pb.WriteChunkRequest(key=key, offset=0, data=b"pwned", cap=mine_cap)
        assert await errno_of(stub.write_chunk(wr, 10)) == errno.EACCES
        rd = pb.ReadChunkRequest(key=key, offset=0, length=4, cap=mine_cap)
        reply = await stub.read_chunk(rd, 10)
        assert reply.data == BIG[:4] or not reply.exists  # the replica may live on the other server
    root_bytes_unchanged(c)


async def test_an_expired_chunk_capability_is_estale(c, alice_raw):
    ino = c.ino["/readable"]
    expired = capability.sign_chunk(c.secret(), ino=ino, rights=4, ttl_ns=-10**9)
    for address in c.data:
        rd = pb.ReadChunkRequest(key=pb.ChunkKey(ino=ino, index=0), offset=0, length=4, cap=expired)
        assert await errno_of(alice_raw.data(address).read_chunk(rd, 10)) == errno.ESTALE


# ---------------------------------------------------------------------- shards

async def test_shards_refuse_by_inode_reads_writes_and_truncates_of_a_private_file(c, alice_raw):
    m = await cluster_map(alice_raw, c)
    ino, small = c.ino["/rootonly"], c.ino["/rootonly-small"]
    stub, small_stub = alice_raw.shard(shard_of_ino(m, ino)), alice_raw.shard(shard_of_ino(m, small))
    info = await stub.get_file(pb.GetFileRequest(ino=ino, want_data=True, creds=ALICE.pb()), 10)
    assert info.chunk_cap.rights & 6 == 0 and info.data == b""
    info = await small_stub.get_file(pb.GetFileRequest(ino=small, want_data=True, creds=ALICE.pb()), 10)
    assert info.data == b"" and info.chunk_cap.rights & 6 == 0
    attempts: list[tuple[Callable[[], Awaitable[Any]], int]] = [
        (lambda: small_stub.read_inline(pb.ReadInlineRequest(ino=small, length=10, creds=ALICE.pb()), 10),
         errno.EACCES),
        (lambda: small_stub.write_inline(pb.WriteInlineRequest(ino=small, data=b"x", creds=ALICE.pb()), 10),
         errno.EACCES),
        (lambda: stub.set_attr(pb.SetAttrRequest(ino=ino, mask=8, size=0, creds=ALICE.pb()), 10), errno.EACCES),
        (lambda: stub.set_size(pb.SetSizeRequest(ino=ino, size=1 << 30, creds=ALICE.pb()), 10), errno.EACCES),
        (lambda: small_stub.convert_to_chunked(pb.ConvertRequest(
            ino=small, layout=[0], chunk_size=CHUNK, creds=ALICE.pb()), 10), errno.EACCES),
        (lambda: stub.get_xattr(pb.XattrRequest(ino=ino, name="user.x", creds=ALICE.pb()), 10), errno.EACCES),
        (lambda: stub.set_attr(pb.SetAttrRequest(ino=ino, mask=1, mode=0o666, creds=ALICE.pb()), 10),
         errno.EPERM),
    ]
    for attempt, want in attempts:
        assert await errno_of(attempt()) == want
    root_bytes_unchanged(c)


async def test_shards_refuse_listing_and_lookups_in_directories_alice_cannot_read_or_reach(c, alice_raw):
    m = await cluster_map(alice_raw, c)
    dstub = alice_raw.dir(c)
    secret_cap = (await dstub.get_dir(pb.DirRequest(ino=c.ino["/secret"], creds=ALICE.pb()), 10)).cap
    private_cap = (await dstub.get_dir(pb.DirRequest(ino=c.ino["/private"], creds=ALICE.pb()), 10)).cap
    assert private_cap.rights & 4 == 0  # 0711: searchable, not readable
    for address in c.shards:  # each shard holds some of /secret's names
        stub = alice_raw.shard(address)
        for d, cap in ((c.ino["/secret"], None), (c.ino["/secret"], secret_cap), (c.ino["/private"], None),
                       (c.ino["/private"], private_cap)):
            req = pb.ListFilesRequest(parent_ino=d, with_attrs=True, creds=ALICE.pb())
            if cap is not None:
                req.cap.CopyFrom(cap)
            assert await errno_of(stub.list_files(req, 10)) == errno.EACCES
    touched = set()
    for i in range(8):
        name = f"f{i}"
        address = shard_of_entry(m, c, c.ino["/secret"], name)
        touched.add(address)
        for cap in (None, secret_cap):
            req = pb.LookupFileRequest(parent_ino=c.ino["/secret"], name=name, want_data=True, creds=ALICE.pb())
            if cap is not None:
                req.cap.CopyFrom(cap)
            assert await errno_of(alice_raw.shard(address).lookup_file(req, 10)) == errno.EACCES
    assert touched == set(c.shards)


async def test_no_name_can_be_made_or_removed_in_an_unreachable_directory(c, alice_raw):
    m = await cluster_map(alice_raw, c)
    dstub = alice_raw.dir(c)
    pub = c.ino["/secret/pub"]  # 0777, but inside root's 0700 /secret
    reply = await dstub.get_dir(pb.DirRequest(ino=pub, creds=ALICE.pb()), 10)
    assert reply.cap.rights == 0
    assert await errno_of(dstub.lookup_dir(pb.LookupDirRequest(
        parent_ino=c.ino["/secret"], name="pub", creds=ALICE.pb()), 10)) == errno.EACCES
    assert await errno_of(dstub.list_dirs(pb.ListDirsRequest(ino=pub, creds=ALICE.pb()), 10)) == errno.EACCES
    assert await errno_of(dstub.mkdir(pb.MkdirRequest(
        parent_ino=pub, name="planted", mode=0o777, creds=ALICE.pb()), 10)) == errno.EACCES
    req = pb.CreateFileRequest(parent_ino=pub, name="planted", mode=0o644, type=pb.REGULAR, creds=ALICE.pb(),
                               cap=reply.cap)
    assert await errno_of(alice_raw.shard(shard_of_entry(m, c, pub, "planted")).create_file(req, 10)) \
        == errno.EACCES
    secret_cap = (await dstub.get_dir(pb.DirRequest(ino=c.ino["/secret"], creds=ALICE.pb()), 10)).cap
    req = pb.UnlinkRequest(parent_ino=c.ino["/secret"], name="small", creds=ALICE.pb(), cap=secret_cap)
    address = shard_of_entry(m, c, c.ino["/secret"], "small")
    assert await errno_of(alice_raw.shard(address).unlink(req, 10)) == errno.EACCES
    root_bytes_unchanged(c)


async def test_changes_made_ahead_claim_only_creds_the_token_allows(c, alice_raw):
    """A batch has no creds of its own: each change in it is checked as its single call would be, so
    alice's token cannot send creates, unlinks or mkdirs made ahead as root."""
    m = await cluster_map(alice_raw, c)
    home = c.ino["/home/alice"]
    as_root = [pb.BatchOp(create=pb.CreateFileRequest(parent_ino=home, name="x", mode=0o644, type=pb.REGULAR,
                                                      creds=ROOT.pb(), ino=1)),
               pb.BatchOp(unlink=pb.UnlinkRequest(parent_ino=c.ino["/secret"], name="small", creds=ROOT.pb()))]
    for op in as_root:
        address = shard_of_entry(m, c, home, "x")
        assert await errno_of(alice_raw.shard(address).apply_batch(pb.BatchRequest(ops=[op]), 10)) == errno.EPERM
    mkdir = pb.BatchOp(mkdir=pb.MkdirRequest(parent_ino=home, name="d", mode=0o755, creds=ROOT.pb(), ino=1))
    assert await errno_of(alice_raw.dir(c).apply_dir_batch(pb.BatchRequest(ops=[mkdir]), 10)) == errno.EPERM
    root_bytes_unchanged(c)


async def test_link_follows_protected_hardlinks(c, alice_raw):
    m = await cluster_map(alice_raw, c)
    home = c.ino["/home/alice"]
    cap = (await alice_raw.dir(c).get_dir(pb.DirRequest(ino=home, creds=ALICE.pb()), 10)).cap
    for i, victim in enumerate(("/rootonly", "/rootonly-small", "/readable", "/secret/small")):
        for n in range(6):  # names landing on each shard: local and cross-shard links alike
            name = f"stolen-{i}-{n}"
            req = pb.LinkRequest(ino=c.ino[victim], new_parent=home, new_name=name, creds=ALICE.pb(), cap=cap)
            assert await errno_of(alice_raw.shard(shard_of_entry(m, c, home, name)).link(req, 10)) \
                == errno.EPERM, (victim, name)
    with connect(config=c.config("alice"), creds=ALICE) as alice:
        assert not [n for n in alice.listdir("/home/alice") if n.startswith("stolen")]
        alice.write_bytes("/home/alice/own", b"mine")
        for n in range(4):
            alice.link("/home/alice/own", f"/home/alice/own-link-{n}")  # her own file: allowed
        assert alice.stat("/home/alice/own").st_nlink == 5
    root_bytes_unchanged(c)


# ------------------------------------------------------------------ dir server

async def test_dir_server_hands_out_no_capability_for_an_unreachable_directory(c, alice_raw):
    dstub = alice_raw.dir(c)
    for ino in (c.ino["/secret"], c.ino["/secret/pub"]):
        reply = await dstub.get_dir(pb.DirRequest(ino=ino, creds=ALICE.pb()), 10)
        assert reply.cap.rights & 6 == 0  # no W, no R (on /secret/pub not even X)
    hidden = await dstub.get_dir(pb.DirRequest(ino=c.ino["/secret/pub"], creds=ALICE.pb()), 10)
    assert hidden.cap.rights == 0 and hidden.dir.name == ""  # no names from below /secret by inode number
    assert await errno_of(dstub.list_dirs(pb.ListDirsRequest(ino=c.ino["/secret"], creds=ALICE.pb()), 10)) \
        == errno.EACCES
    assert await errno_of(dstub.list_all_dirs(pb.ListAllDirsRequest(), 10)) == errno.EPERM
    assert await errno_of(dstub.resolve(pb.ResolveRequest(path="/secret/pub", creds=ALICE.pb()), 10)) \
        == errno.EACCES
    home = await dstub.get_dir(pb.DirRequest(ino=c.ino["/home/alice"], creds=ALICE.pb()), 10)
    assert home.cap.rights == 7  # her own, reachable: R|W|X


# --------------------------------------------------------------- library path

@pytest.mark.parametrize("token", ["alice", "mount"])  # her own token, or a mount host's acting for her
def test_library_refuses_what_the_kernel_refuses(c, token):
    with connect(config=c.config(token), creds=ALICE) as alice:
        for attempt, want in (
            (lambda: alice.read_bytes("/secret/small"), errno.EACCES),
            (lambda: alice.stat("/secret/small"), errno.EACCES),
            (lambda: alice.listdir("/secret"), errno.EACCES),
            (lambda: alice.listdir("/private"), errno.EACCES),
            (lambda: alice.write_bytes("/secret/pub/planted", b"x"), errno.EACCES),
            (lambda: alice.read_bytes("/rootonly"), errno.EACCES),
            (lambda: alice.truncate("/rootonly", 0), errno.EACCES),
            (lambda: alice.unlink("/rootonly"), errno.EACCES),
            (lambda: alice.link("/rootonly", "/home/alice/stolen"), errno.EPERM),
        ):
            with pytest.raises(OSError) as e:
                attempt()
            assert e.value.errno == want, (e.value, want)
        assert alice.read_bytes("/readable") == BIG  # 0644 in a reachable directory: readable
    root_bytes_unchanged(c)


def test_alice_works_normally_with_her_own_chunked_files(c):
    with connect(config=c.config("alice"), creds=ALICE) as alice:
        data = os.urandom(5 * CHUNK + 123)
        alice.write_bytes("/home/alice/big", data)
        assert alice.read_bytes("/home/alice/big") == data
        with alice.open("/home/alice/big", "r+b") as f:
            f.seek(2 * CHUNK - 10)
            f.write(b"Z" * 20)
        expect = data[:2 * CHUNK - 10] + b"Z" * 20 + data[2 * CHUNK + 10:]
        assert alice.read_bytes("/home/alice/big") == expect
        alice.truncate("/home/alice/big", CHUNK + 5)
        alice.truncate("/home/alice/big", 4 * CHUNK)
        assert alice.read_bytes("/home/alice/big") == expect[:CHUNK + 5] + bytes(4 * CHUNK - CHUNK - 5)
        with alice.open("/home/alice/small", "wb") as f:  # inline, then past the threshold: converted
            f.write(b"a" * 1000)
            f.flush()
            f.write(b"b" * 10_000)
        assert alice.read_bytes("/home/alice/small") == b"a" * 1000 + b"b" * 10_000
        assert "big" in alice.listdir("/home/alice")


async def test_the_library_fetches_a_fresh_chunk_capability_when_one_expired(c):
    from superfs.client.fs import AsyncFs
    from superfs.client import security_scope

    with security_scope(ClientSecurity(token=TOKENS["alice"])):
        fs = AsyncFs(c.dir, creds=ALICE)
    await fs.start()
    try:
        node = await fs.open_node("/readable", os.O_RDONLY)
        assert node.file is not None and node.file.chunk_cap.rights & 4
        node.file.chunk_cap.CopyFrom(capability.sign_chunk(c.secret(), ino=node.ino, rights=4, ttl_ns=-10**9))
        assert await fs.read_at(node, 0, 3 * CHUNK) == BIG
        assert node.file.chunk_cap.expires_ns > time.time_ns()
    finally:
        await fs.close()
