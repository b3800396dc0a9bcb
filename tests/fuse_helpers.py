"""Real FUSE mounts for the t4 tests: a local cluster, mounts as processes.

A mount is ``python -m superfs.cli.main mount MP --foreground`` in its own
process, exactly as a user or systemd runs it; a test waits for
``os.path.ismount`` (never a sleep). Mountpoints live under a directory
every uid can traverse, so tests can run commands as another user, and the
mounts pass ``--allow-other`` for the same reason (``defaults=True``: no
option but the address, as ``superfs up --mount`` mounts).

No mount is ever left behind: fixtures unmount at teardown, and an atexit
hook unmounts whatever is still registered if a test run is interrupted.
"""
from __future__ import annotations

import atexit
import ctypes
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

import pytest

from superfs.cli.launcher import LocalCluster

FUSE_INLINE = 8192            # small, so inline -> chunked moves happen in ordinary tests
FUSE_CHUNK = 256 * 1024
MOUNT_TIMEOUT_S = 30.0
OTHER_UID = 1234
OTHER_GID = 1234

_live: dict[str, "MountProcess"] = {}


def fuse_unavailable() -> str | None:
    """Why a real mount cannot work here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed"
    try:
        import pyfuse3  # noqa: F401
    except ImportError:
        return "pyfuse3 is not installed"
    return None


def _in_mount_table(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1].replace("\\040", " ") == real for line in f)


def _term_with_parent() -> None:
    """In the mount's child process: SIGTERM (a clean unmount) if pytest dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class MountProcess:
    """One ``superfs mount --foreground`` process."""

    def __init__(self, mountpoint: str, address: str, log_path: str, extra: list[str] | None = None,
                 defaults: bool = False) -> None:
        self.mountpoint = mountpoint
        self.defaults = defaults
        self.address = address
        self.log_path = log_path
        self.extra = list(extra or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self.expect_errors = False  # set by tests that crash the mount or the cluster on purpose

    def start(self) -> "MountProcess":
        os.makedirs(self.mountpoint, exist_ok=True)
        os.chmod(self.mountpoint, 0o755)
        cmd = [sys.executable, "-m", "superfs.cli.main", "mount", self.mountpoint, "--address", self.address,
               "--foreground", "--log", self.log_path]
        if not self.defaults:
            cmd += ["--allow-other", "--rpc-timeout", "20"]  # slow is not wrong: CI machines are often loaded
        cmd += self.extra
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path + ".stderr", "ab"), start_new_session=True,
                                     preexec_fn=_term_with_parent)
        _live[self.mountpoint] = self
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"mount process exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.mountpoint} not mounted within {MOUNT_TIMEOUT_S} s:\n"
                                   + self.log_tail())
            time.sleep(0.01)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for p in (self.log_path, self.log_path + ".stderr"):
            try:
                with open(p, errors="replace") as f:
                    out += f.readlines()[-lines:]
            except FileNotFoundError:
                pass
        return "".join(out)

    def log_text(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL the mount process (a crash); the dead mount stays in the table."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Unmount and reap the process, whatever state it is in."""
        try:
            if _in_mount_table(self.mountpoint):
                r = subprocess.run(["fusermount3", "-u", self.mountpoint], capture_output=True, timeout=30)
                if r.returncode != 0 and _in_mount_table(self.mountpoint):
                    if self.proc is not None and self.proc.poll() is None:
                        self.proc.send_signal(signal.SIGTERM)
                        try:
                            self.proc.wait(10)
                        except subprocess.TimeoutExpired:
                            pass
                    if _in_mount_table(self.mountpoint):
                        subprocess.run(["fusermount3", "-u", "-z", self.mountpoint], capture_output=True,
                                       timeout=30)
            if self.proc is not None:
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        finally:
            _live.pop(self.mountpoint, None)


@atexit.register
def _unmount_leftovers() -> None:
    for m in list(_live.values()):
        try:
            m.stop()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            subprocess.run(["fusermount3", "-u", "-z", m.mountpoint], capture_output=True)


def start_fuse_cluster(state_dir: str, **kw: Any) -> LocalCluster:
    cluster = LocalCluster(state_dir)
    cluster.init(shards=kw.get("shards", 2), data_servers=kw.get("data_servers", 2),
                 replicas=kw.get("replicas", 2), inline_threshold=kw.get("inline_threshold", FUSE_INLINE),
                 chunk_size=kw.get("chunk_size", FUSE_CHUNK), durability="durable")
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def public_tmpdir(prefix: str) -> str:
    """A directory every uid can traverse (pytest's tmp dirs are 0700)."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return d


# ----------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def fuse_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    c = start_fuse_cluster(str(tmp_path_factory.mktemp("fusecluster")))
    yield c
    c.stop()


@pytest.fixture(scope="module")
def mount_root() -> Iterator[str]:
    d = public_tmpdir("superfs-t4-")
    yield d
    for m in list(_live.values()):
        if m.mountpoint.startswith(d + "/"):
            m.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def mount_factory(fuse_cluster: LocalCluster, mount_root: str) -> Iterator[Callable[..., MountProcess]]:
    made: list[MountProcess] = []

    def make(name: str = "mnt", extra: list[str] | None = None, defaults: bool = False) -> MountProcess:
        mp = os.path.join(mount_root, name)
        m = MountProcess(mp, str(fuse_cluster.config["dir_server"]),
                         os.path.join(mount_root, f"{name}.log"), extra, defaults)
        made.append(m)
        return m.start()

    yield make
    for m in made:
        m.stop()
    # like s3ql's test plugin: a mount that logged an error or a traceback failed
    for m in made:
        # pyfuse3 logs "fuse_reply_* failed" when the kernel no longer waits for
        # an answer (a request of a process that was interrupted, or one still
        # in flight at unmount): not an error of the file system
        bad = [line for line in m.log_text().splitlines()
               if (" ERROR " in line or "Traceback" in line) and "fuse_reply_* failed" not in line
               and not m.expect_errors]
        if bad:
            keep = tempfile.mkdtemp(prefix="superfs-t4-failed-", dir="/tmp")
            shutil.copy(m.log_path, keep)
            raise AssertionError(f"mount {m.mountpoint} logged errors (log kept in {keep}):\n" + "\n".join(bad[:20]))


@pytest.fixture(scope="module")
def mnt(mount_factory: Callable[..., MountProcess]) -> MountProcess:
    return mount_factory("mnt")


@pytest.fixture
def mdir(mnt: MountProcess, request: pytest.FixtureRequest) -> str:
    """A fresh directory on the mount for each test."""
    name = request.node.name.replace("[", "_").replace("]", "").replace("/", "_")[:120]
    path = os.path.join(mnt.mountpoint, name)
    os.mkdir(path)
    return path


@pytest.fixture
def ldir(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh local directory (for comparisons), traversable by every uid."""
    d = public_tmpdir("superfs-local-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------ other users

def as_user(fn: Callable[..., Any], *args: Any, uid: int = OTHER_UID, gid: int = OTHER_GID,
            groups: tuple[int, ...] = ()) -> tuple[str, Any]:
    """Run ``fn(*args)`` in a forked child as uid/gid; ("ok", result) or (errno name, None)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges, run, report, never return into pytest
        code = 0
        try:
            os.close(r)
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            try:
                out: dict[str, Any] = {"ok": fn(*args)}
            except OSError as e:
                out = {"err": errno.errorcode.get(e.errno or 0, str(e.errno))}
            os.write(w, json.dumps(out, default=repr).encode())
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "child failed"
    res = json.loads(b"".join(chunks))
    return ("ok", res["ok"]) if "ok" in res else (res["err"], None)


def outcome(fn: Callable[..., Any], *args: Any) -> str:
    """'ok' or the errno name the call ends with."""
    try:
        r = fn(*args)
        if isinstance(r, int) and fn is os.open:
            os.close(r)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e.errno))


def fsync_dir(path: str) -> None:
    """fsync a directory: what a mount holds back for it (made-ahead names, batched changes) is sent."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
