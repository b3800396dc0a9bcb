"""Ordinary tools on the mount: cp, tar, rsync, find, du, git, sqlite, shutil, mv.

Each tool works on a source tree made on local disk (files of several sizes
around the inline threshold and the chunk size, symlinks, hard links, an
empty directory, odd names, modes) and its result is compared with the
original.
"""
from __future__ import annotations

import filecmp
import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
from typing import Any

import pytest
from fuse_helpers import (FUSE_CHUNK, FUSE_INLINE, OTHER_GID, OTHER_UID, fuse_cluster, ldir, mdir, mnt,  # noqa: F401
                          mount_factory, mount_root)


def make_tree(root: str) -> None:
    os.makedirs(f"{root}/src/pkg/sub", exist_ok=True)
    os.makedirs(f"{root}/empty")
    sizes = [0, 1, 100, FUSE_INLINE - 1, FUSE_INLINE, FUSE_INLINE + 1, FUSE_CHUNK, FUSE_CHUNK + 3, 3 * FUSE_CHUNK]
    for i, size in enumerate(sizes):
        d = ["src", "src/pkg", "src/pkg/sub"][i % 3]
        data = hashlib.sha256(str(i).encode()).digest() * (size // 32 + 1)
        with open(f"{root}/{d}/file{i}.bin", "wb") as f:
            f.write(data[:size])
    for i in range(40):
        with open(f"{root}/src/pkg/mod{i}.py", "w") as f:
            f.write(f"# module {i}\nVALUE = {i}\n" * (i + 1))
    with open(f"{root}/src/name with spaces & üñí.txt", "w") as f:
        f.write("odd name\n")
    os.chmod(f"{root}/src/pkg/mod1.py", 0o755)
    os.chmod(f"{root}/src/pkg/mod2.py", 0o600)
    os.symlink("pkg/mod3.py", f"{root}/src/link_rel")
    os.symlink("/nonexistent/target", f"{root}/src/link_dangling")
    os.link(f"{root}/src/pkg/mod4.py", f"{root}/src/hardlink")
    os.utime(f"{root}/src/pkg/mod5.py", ns=(1_500_000_000_000_000_000, 1_600_000_000_123_456_789))


def tree_digest(root: str) -> dict[str, Any]:
    """Relative path -> (type, mode, size, sha256 / target), with hard links identified."""
    out: dict[str, Any] = {}
    inos: dict[int, str] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(top, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                first = inos.setdefault(st.st_ino, rel)
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size, digest, first if st.st_nlink > 1 else "")
    return out


def run(cmd: list[str], cwd: str | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=240, **kw)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def test_cp_a_and_diff(ldir: str, mdir: str) -> None:
    make_tree(ldir)
    run(["cp", "-a", f"{ldir}/src", f"{mdir}/copy"])
    run(["diff", "-r", "--no-dereference", f"{ldir}/src", f"{mdir}/copy"])
    assert tree_digest(f"{mdir}/copy") == tree_digest(f"{ldir}/src")
    mtime = os.stat(f"{mdir}/copy/pkg/mod5.py").st_mtime_ns
    assert mtime == 1_600_000_000_123_456_789
    # and back again
    run(["cp", "-a", f"{mdir}/copy", f"{ldir}/back"])
    run(["diff", "-r", "--no-dereference", f"{ldir}/src", f"{ldir}/back"])


def test_tar_round_trip(ldir: str, mdir: str) -> None:
    make_tree(ldir)
    run(["tar", "-cf", f"{mdir}/tree.tar", "-C", ldir, "src", "empty"])
    os.mkdir(f"{mdir}/x")
    run(["tar", "-xpf", f"{mdir}/tree.tar", "-C", f"{mdir}/x"])
    assert tree_digest(f"{mdir}/x/src") == tree_digest(f"{ldir}/src")
    assert os.listdir(f"{mdir}/x/empty") == []
    # create on the mount from the mount, extract locally
    run(["tar", "-czf", f"{mdir}/again.tgz", "-C", f"{mdir}/x", "src"])
    os.mkdir(f"{ldir}/y")
    run(["tar", "-xzpf", f"{mdir}/again.tgz", "-C", f"{ldir}/y"])
    assert tree_digest(f"{ldir}/y/src") == tree_digest(f"{ldir}/src")


def test_rsync(ldir: str, mdir: str) -> None:
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed")
    make_tree(ldir)
    run(["rsync", "-aH", f"{ldir}/src/", f"{mdir}/r/"])
    assert tree_digest(f"{mdir}/r") == tree_digest(f"{ldir}/src")
    r = run(["rsync", "-aHi", "--dry-run", f"{ldir}/src/", f"{mdir}/r/"])
    assert r.stdout.strip() == "", f"a second rsync would still change:\n{r.stdout}"


def test_find_and_du(ldir: str, mdir: str) -> None:
    make_tree(ldir)
    run(["cp", "-a", f"{ldir}/src", f"{mdir}/src"])
    # directory sizes differ between file systems: print sizes of the rest only
    expr = ["find", ".", "(", "-type", "d", "-printf", "%y %m %P\\n", ")", "-o", "-printf", "%y %m %s %n %P\\n"]
    local = sorted(run(expr, cwd=f"{ldir}/src").stdout.splitlines())
    mounted = sorted(run(expr, cwd=f"{mdir}/src").stdout.splitlines())
    assert mounted == local
    names = run(["find", f"{mdir}/src", "-name", "*.py", "-size", "+500c"]).stdout.split()
    assert names and all(n.endswith(".py") for n in names)
    apparent_local = int(run(["du", "-sb", f"{ldir}/src"]).stdout.split()[0])
    apparent = int(run(["du", "-sb", f"{mdir}/src"]).stdout.split()[0])
    # du -b counts directories at their st_size, which differs between file systems
    dirs_l = sum(os.lstat(os.path.join(t, d)).st_size for t, ds, _ in os.walk(f"{ldir}/src") for d in ds)
    dirs_l += os.lstat(f"{ldir}/src").st_size
    dirs_m = sum(os.lstat(os.path.join(t, d)).st_size for t, ds, _ in os.walk(f"{mdir}/src") for d in ds)
    dirs_m += os.lstat(f"{mdir}/src").st_size
    assert apparent - dirs_m == apparent_local - dirs_l
    assert int(run(["du", "-sk", f"{mdir}/src"]).stdout.split()[0]) > 0


def test_git(mdir: str) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "GIT_CONFIG_NOSYSTEM": "1", "HOME": mdir}
    repo = f"{mdir}/repo"
    run(["git", "init", "-q", repo], env=env)
    for i in range(20):
        with open(f"{repo}/f{i}.txt", "w") as f:
            f.write(f"line {i}\n" * (i * 50 + 1))
    run(["git", "add", "."], cwd=repo, env=env)
    run(["git", "commit", "-q", "-m", "first"], cwd=repo, env=env)
    with open(f"{repo}/f3.txt", "a") as f:
        f.write("changed\n")
    os.unlink(f"{repo}/f4.txt")
    status = run(["git", "status", "--porcelain"], cwd=repo, env=env).stdout.splitlines()
    assert sorted(status) == [" D f4.txt", " M f3.txt"]
    run(["git", "commit", "-qam", "second"], cwd=repo, env=env)
    log = run(["git", "log", "--format=%s"], cwd=repo, env=env).stdout.split()
    assert log == ["second", "first"]
    assert run(["git", "status", "--porcelain"], cwd=repo, env=env).stdout == ""
    run(["git", "gc", "-q"], cwd=repo, env=env)
    run(["git", "fsck", "--strict"], cwd=repo, env=env)
    clone = f"{mdir}/clone"
    run(["git", "clone", "-q", repo, clone], env=env)
    assert open(f"{clone}/f3.txt").read().endswith("changed\n")


def test_git_as_other_user(mdir: str) -> None:
    """git writes its objects through fds of files created 0444: as a non-root user too."""
    if shutil.which("git") is None or shutil.which("setpriv") is None:
        pytest.skip("git or setpriv is not installed")
    os.chmod(mdir, 0o777)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": mdir, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "u", "GIT_AUTHOR_EMAIL": "u@e", "GIT_COMMITTER_NAME": "u",
           "GIT_COMMITTER_EMAIL": "u@e"}
    as_other = ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_GID}", "--clear-groups"]
    repo = f"{mdir}/urepo"
    run(as_other + ["git", "init", "-q", repo], env=env)
    run(as_other + ["sh", "-c", f"for i in 1 2 3; do echo $i > {repo}/f$i; done"], env=env)
    run(as_other + ["git", "-C", repo, "add", "."], env=env)
    run(as_other + ["git", "-C", repo, "commit", "-q", "-m", "by another user"], env=env)
    assert run(as_other + ["git", "-C", repo, "log", "--format=%s"], env=env).stdout.split() == ["by", "another",
                                                                                             "user"]
    run(as_other + ["git", "-C", repo, "fsck", "--strict"], env=env)
    assert os.stat(f"{repo}/f1").st_uid == OTHER_UID


def test_sqlite(mdir: str) -> None:
    path = f"{mdir}/db.sqlite"
    con = sqlite3.connect(path)
    con.execute("create table t (k integer primary key, v text)")
    with con:
        con.executemany("insert into t values (?, ?)", [(i, f"value {i}" * 20) for i in range(5000)])
    with con:
        con.execute("update t set v = 'x' where k % 3 = 0")
        con.execute("delete from t where k % 5 = 0")
    assert con.execute("select count(*) from t").fetchone()[0] == 4000
    con.close()
    # a second connection (fcntl locks are local to this mount: they work between its processes)
    con2 = sqlite3.connect(path)
    assert con2.execute("select count(*) from t where v = 'x'").fetchone()[0] == len(
        [k for k in range(5000) if k % 3 == 0 and k % 5])
    con2.execute("pragma journal_mode=wal")
    with con2:
        con2.execute("insert into t values (100001, 'wal')")
    assert con2.execute("pragma integrity_check").fetchone()[0] == "ok"
    con2.close()
    con3 = sqlite3.connect(path)
    assert con3.execute("select v from t where k = 100001").fetchone()[0] == "wal"
    con3.close()


def test_shutil_copytree_rmtree(ldir: str, mdir: str) -> None:
    make_tree(ldir)
    shutil.copytree(f"{ldir}/src", f"{mdir}/tree", symlinks=True)
    cmp = filecmp.dircmp(f"{ldir}/src", f"{mdir}/tree")
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
    shutil.copytree(f"{mdir}/tree", f"{mdir}/tree2", symlinks=True)
    assert tree_digest(f"{mdir}/tree2") == {k: v[:4] + ("",) if v[0] == "file" else v
                                           for k, v in tree_digest(f"{ldir}/src").items()}
    shutil.rmtree(f"{mdir}/tree")
    shutil.rmtree(f"{mdir}/tree2")
    assert os.listdir(mdir) == []


def test_mv_tree_across_directories(ldir: str, mdir: str) -> None:
    make_tree(ldir)
    run(["cp", "-a", f"{ldir}/src", f"{mdir}/a"])
    os.makedirs(f"{mdir}/dest/deeper")
    before = tree_digest(f"{mdir}/a")
    run(["mv", f"{mdir}/a", f"{mdir}/dest/deeper/a"])
    assert not os.path.exists(f"{mdir}/a")
    assert tree_digest(f"{mdir}/dest/deeper/a") == before
    # mv from the mount to local disk (a copy across file systems) and back
    run(["mv", f"{mdir}/dest/deeper/a", f"{ldir}/moved"])
    assert tree_digest(f"{ldir}/moved") == before
    run(["mv", f"{ldir}/moved", f"{mdir}/back"])
    assert tree_digest(f"{mdir}/back") == before
