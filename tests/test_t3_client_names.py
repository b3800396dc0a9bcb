"""Client namespace operations against real daemons, errnos compared with Linux.

Each scenario runs the same operations on a local directory and on SuperFS
and asserts the same outcome ('ok' or the errno name) for every step.
"""
from __future__ import annotations

import errno
import threading

import pytest
from localfs import LocalFs, outcome

from superfs import routing
from superfs.client import Client, Creds, connect


def compare(client: Client, local: LocalFs, base: str, steps: list[tuple[str, tuple]]) -> None:
    """Run each (method, args) on both; paths in args are relative to base."""
    for method, args in steps:
        sargs = tuple(f"{base}/{a}" if isinstance(a, str) and not a.startswith("@") else a.lstrip("@")
                      if isinstance(a, str) else a for a in args)
        largs = tuple(f"/{a}" if isinstance(a, str) and not a.startswith("@") else a.lstrip("@")
                      if isinstance(a, str) else a for a in args)
        want = outcome(lambda: getattr(local, method)(*largs))
        got = outcome(lambda: getattr(client, method)(*sargs))
        assert got == want, f"{method}{args}: superfs {got}, linux {want}"


@pytest.fixture
def local(tmp_path) -> LocalFs:
    return LocalFs(str(tmp_path))


def test_mkdir_rmdir_errnos(client, workdir, local):
    compare(client, local, workdir, [
        ("mkdir", ("a",)), ("mkdir", ("a",)), ("mkdir", ("missing/x",)), ("mkdir", ("a/b",)),
        ("rmdir", ("a",)), ("rmdir", ("a/b",)), ("rmdir", ("a/b",)), ("rmdir", ("nope",)),
        ("mkdir", ("a/.",)), ("mkdir", ("a/..",)), ("rmdir", ("a/.",)),
        ("mkdir", ("x" * 255,)), ("mkdir", ("y" * 256,)), ("rmdir", ("x" * 255,)),
    ])


def test_files_versus_directories(client, workdir, local):
    with local.open("/f", "w"), client.open(f"{workdir}/f", "w"):
        pass
    compare(client, local, workdir, [
        ("mkdir", ("d",)), ("mkdir", ("f",)), ("rmdir", ("f",)), ("unlink", ("d",)),
        ("mkdir", ("f/x",)), ("stat", ("f/x",)), ("stat", ("f/",)), ("open", ("d", "@w")),
        ("rename", ("f", "d")), ("rename", ("d", "f")), ("open", ("f", "@x")), ("open", ("g", "@r")),
        ("unlink", ("g",)), ("listdir", ("f",)),
    ])


def test_rename_rules(client, workdir, local):
    for fs, base in ((local, ""), (client, workdir)):
        for d in ("a", "a/b", "e", "full", "full/x"):
            fs.mkdir(f"{base}/{d}")
        with fs.open(f"{base}/f1", "w") as f:
            f.write("one")
        with fs.open(f"{base}/f2", "w") as f:
            f.write("two")
    compare(client, local, workdir, [
        ("rename", ("a", "a/b/c")), ("rename", ("a", "a")), ("rename", ("a", "full")),
        ("rename", ("a", "e")), ("rename", ("f1", "f2")), ("rename", ("f1", "f2")),
        ("rename", ("nope", "x")), ("rename", ("f2", "missing/x")), ("rename", ("e/b", "full/x/b")),
    ])
    with client.open(f"{workdir}/f2") as f:
        assert f.read() == "one"
    assert sorted(client.listdir(workdir)) == local.listdir("/")


def test_names_length_and_bad_characters(client, workdir):
    ok = "n" * 255
    with client.open(f"{workdir}/{ok}", "w") as f:
        f.write("x")
    assert client.stat(f"{workdir}/{ok}").st_size == 1
    with pytest.raises(OSError) as e:
        client.open(f"{workdir}/{'n' * 256}", "w")
    assert e.value.errno == errno.ENAMETOOLONG
    with pytest.raises(OSError) as e:
        client.mkdir(f"{workdir}/bad\0name")
    assert e.value.errno == errno.EINVAL
    multibyte = "é" * 128  # 256 bytes in UTF-8
    with pytest.raises(OSError) as e:
        client.mkdir(f"{workdir}/{multibyte}")
    assert e.value.errno == errno.ENAMETOOLONG


def test_rmdir_sees_entries_on_other_shards(client, workdir):
    client.mkdir(f"{workdir}/d")
    parent = client.stat(workdir).st_ino
    d_ino = client.stat(f"{workdir}/d").st_ino
    cmap = client.aio.cluster.map
    own = cmap.partition_shard[routing.entry_partition(parent, "d", cmap.num_partitions)]
    name = next(f"f{i}" for i in range(1000)
                if cmap.partition_shard[routing.entry_partition(d_ino, f"f{i}", cmap.num_partitions)] != own)
    with client.open(f"{workdir}/d/{name}", "w"):
        pass
    with pytest.raises(OSError) as e:
        client.rmdir(f"{workdir}/d")
    assert e.value.errno == errno.ENOTEMPTY
    client.unlink(f"{workdir}/d/{name}")
    client.rmdir(f"{workdir}/d")
    assert not client.exists(f"{workdir}/d")


def test_hard_links_count_and_share_data(client, workdir):
    client.mkdir(f"{workdir}/other")
    client.write_bytes(f"{workdir}/f", b"shared")
    client.link(f"{workdir}/f", f"{workdir}/g")
    client.link(f"{workdir}/f", f"{workdir}/other/h")  # most likely another shard
    assert client.stat(f"{workdir}/f").st_nlink == 3
    assert client.stat(f"{workdir}/other/h").st_ino == client.stat(f"{workdir}/f").st_ino
    client.unlink(f"{workdir}/f")
    assert client.stat(f"{workdir}/g").st_nlink == 2
    assert client.read_bytes(f"{workdir}/other/h") == b"shared"
    client.unlink(f"{workdir}/g")
    assert client.stat(f"{workdir}/other/h").st_nlink == 1
    for src, dst, err in ((f"{workdir}/other", f"{workdir}/dl", errno.EPERM),
                          (f"{workdir}/other/h", f"{workdir}/other/h", errno.EEXIST),
                          (f"{workdir}/missing", f"{workdir}/x", errno.ENOENT)):
        with pytest.raises(OSError) as e:
            client.link(src, dst)
        assert e.value.errno == err


def test_symlinks_and_loops(client, workdir, local):
    client.mkdir(f"{workdir}/real")
    client.write_bytes(f"{workdir}/real/file", b"via link")
    client.symlink("real", f"{workdir}/rel")
    client.symlink(f"{workdir}/real/file", f"{workdir}/abs")
    assert client.read_bytes(f"{workdir}/rel/file") == b"via link"
    assert client.read_bytes(f"{workdir}/abs") == b"via link"
    assert client.readlink(f"{workdir}/rel") == "real"
    assert client.lstat(f"{workdir}/rel").st_mode & 0o170000 == 0o120000
    client.symlink("b", f"{workdir}/a")
    client.symlink("a", f"{workdir}/b")
    local.symlink("b", "/a")
    local.symlink("a", "/b")
    local.symlink("nowhere", "/dangling")
    client.symlink("nowhere", f"{workdir}/dangling")
    compare(client, local, workdir, [
        ("stat", ("a",)), ("lstat", ("a",)), ("stat", ("a/x",)), ("stat", ("dangling",)),
        ("lstat", ("dangling",)), ("readlink", ("dangling",)), ("mkdir", ("a",)),
    ])
    with pytest.raises(OSError) as e:
        client.readlink(f"{workdir}/real")
    assert e.value.errno == errno.EINVAL


def test_listing_pages_across_shards(client, workdir):
    names = sorted(f"entry-{i:05d}" for i in range(2500))
    for n in names[:2400]:
        with client.open(f"{workdir}/{n}", "wb"):
            pass
    for n in names[2400:]:
        client.mkdir(f"{workdir}/{n}")
    assert client.listdir(workdir) == names
    kinds = {e.name: e.is_dir() for e in client.scandir(workdir)}
    assert sum(kinds.values()) == 100


def test_racing_exclusive_creates_one_winner(cluster, workdir):
    address = str(cluster.config["dir_server"])
    clients = [connect(address), connect(address)]
    try:
        for round_ in range(15):
            barrier = threading.Barrier(2)
            results: list[str] = []

            def attempt(c: Client) -> None:
                barrier.wait()
                try:
                    c.open(f"{workdir}/race-{round_}", "x").close()
                    results.append("won")
                except FileExistsError:
                    results.append("EEXIST")

            threads = [threading.Thread(target=attempt, args=(c,)) for c in clients]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(results) == ["EEXIST", "won"]
    finally:
        for c in clients:
            c.close()


def test_permissions_for_another_uid(cluster, client, workdir):
    client.chmod(workdir, 0o755)
    client.write_bytes(f"{workdir}/secret", b"root only")
    client.chmod(f"{workdir}/secret", 0o600)
    client.mkdir(f"{workdir}/open")
    client.chmod(f"{workdir}/open", 0o777)
    with connect(str(cluster.config["dir_server"]), creds=Creds(4321, 4321)) as other:
        for fn, err in ((lambda: other.open(f"{workdir}/new", "w"), errno.EACCES),
                        (lambda: other.mkdir(f"{workdir}/new"), errno.EACCES),
                        (lambda: other.unlink(f"{workdir}/secret"), errno.EACCES),
                        (lambda: other.open(f"{workdir}/secret"), errno.EACCES),
                        (lambda: other.chmod(f"{workdir}/secret", 0o777), errno.EPERM),
                        (lambda: other.chown(f"{workdir}/open", 4321, 4321), errno.EPERM)):
            with pytest.raises(OSError) as e:
                fn()
            assert e.value.errno == err
        other.write_bytes(f"{workdir}/open/mine", b"ok")
        st = other.stat(f"{workdir}/open/mine")
        assert (st.st_uid, st.st_gid) == (4321, 4321)
    client.chmod(workdir, 0o700)
    with connect(str(cluster.config["dir_server"]), creds=Creds(4321, 4321)) as other:
        with pytest.raises(OSError) as e:
            other.stat(f"{workdir}/open/mine")
        assert e.value.errno == errno.EACCES


def test_attributes_and_xattrs(client, workdir):
    path = f"{workdir}/f"
    client.write_bytes(path, b"abc")
    client.chmod(path, 0o640)
    assert client.stat(path).st_mode & 0o7777 == 0o640
    client.utime(path, ns=(1_000_000_000, 2_000_000_123))
    st = client.stat(path)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000, 2_000_000_123)
    client.chown(path, 77, 88)
    assert (client.stat(path).st_uid, client.stat(path).st_gid) == (77, 88)
    for target in (path, workdir):
        client.setxattr(target, "user.k", b"v1")
        client.setxattr(target, "user.k", b"v2", 2)
        assert client.getxattr(target, "user.k") == b"v2"
        assert "user.k" in client.listxattr(target)
        with pytest.raises(OSError) as e:
            client.setxattr(target, "user.k", b"v3", 1)
        assert e.value.errno == errno.EEXIST
        client.removexattr(target, "user.k")
        with pytest.raises(OSError) as e:
            client.getxattr(target, "user.k")
        assert e.value.errno == errno.ENODATA


def test_walk_and_statfs(client, workdir):
    client.makedirs(f"{workdir}/a/b/c")
    client.write_bytes(f"{workdir}/a/b/c/f", b"x" * 10)
    client.makedirs(f"{workdir}/a/b/c", exist_ok=True)
    with pytest.raises(FileExistsError):
        client.makedirs(f"{workdir}/a/b/c")
    seen = [(top[len(workdir):], sorted(d), sorted(f)) for top, d, f in client.walk(workdir)]
    assert seen == [("", ["a"], []), ("/a", ["b"], []), ("/a/b", ["c"], []), ("/a/b/c", [], ["f"])]
    s = client.statfs()
    assert s["files"] >= 1 and s["directories"] >= 4 and s["shards"] == 2


def test_connect_without_a_cluster_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        connect(state_dir=str(tmp_path))
    assert "superfs up" in str(e.value)
    with pytest.raises(OSError) as e2:
        connect("127.0.0.1:1", timeout_s=1.0)
    assert e2.value.errno in (errno.EIO, errno.ETIMEDOUT)




def test_lookup_never_hands_unreadable_bytes_to_another_uid(cluster, client, workdir):
    client.chmod(workdir, 0o755)
    client.write_bytes(f"{workdir}/private", b"not for you")
    client.chmod(f"{workdir}/private", 0o600)
    with connect(str(cluster.config["dir_server"]), creds=Creds(4321, 4321)) as other:
        parent = other.stat(workdir).st_ino
        node = other.run(other.aio.meta.lookup(parent, "private", other.creds, want_data=True))
        assert node.file.data == b"" and node.attr.size == len(b"not for you")
        with pytest.raises(PermissionError):
            other.read_bytes(f"{workdir}/private")
