"""Mounting: run a mount in the foreground, daemonise it, unmount it.

A mount is one process: ``superfs mount --foreground`` connects to the
cluster, mounts with pyfuse3 on an asyncio loop and serves until it is
unmounted (``superfs umount``, ``fusermount3 -u``) or gets SIGTERM/SIGINT,
which unmount cleanly after pushing what open files still buffer. It logs
one line when mounted and one when unmounted.

The daemonised form (the default of ``superfs mount``, and ``superfs up
--mount``) starts that foreground process detached, with its output in
``STATE/log/mount-NAME.log``, waits until the mountpoint is mounted (or the
process died: then it prints the log's tail), and records the mount in
``STATE/run/mount-NAME.json`` so that ``superfs down`` unmounts it.
"""
from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pyfuse3
import pyfuse3.asyncio

from superfs.procs import pid_alive as _pid_alive, python_module
from superfs.client.fs import AsyncFs
from superfs.fuse.creds import ROOT
from superfs.fuse.operations import SuperFsOperations
from superfs.fuse.options import MountOptions, fuse_options

log = logging.getLogger(__name__)

MAX_TASKS = 128             # FUSE requests served at once
MOUNT_TIMEOUT_S = 30.0
UNMOUNT_TIMEOUT_S = 15.0


# ------------------------------------------------------------- foreground

async def serve(opts: MountOptions) -> None:
    """Mount and serve until unmounted or signalled."""
    fs = AsyncFs(opts.dir_address, timeout_s=opts.rpc_timeout_s, creds=ROOT)
    await fs.start()
    ops = SuperFsOperations(fs, opts)
    mounted = False
    try:
        await ops.setup()
        pyfuse3.init(ops, opts.mountpoint, fuse_options(opts))
        mounted = True
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_quiet_reader_race)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _terminate, sig)
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks, ops)
        log.info("mounted cluster %s at %s (pid %d)", opts.dir_address, opts.mountpoint, os.getpid())
        await pyfuse3.main(max_tasks=MAX_TASKS)
    finally:
        if mounted:
            await ops.shutdown()
            pyfuse3.close(unmount=True)
            log.info("unmounted %s", opts.mountpoint)
        await fs.close()


def _quiet_reader_race(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """pyfuse3.asyncio's wait_readable leaves its reader armed until a later callback removes it: when
    the FUSE fd turns readable as unmounting ends the wait, the reader sets a result on a finished
    future. Harmless (nothing waits on it); not worth an ERROR line."""
    if isinstance(context.get("exception"), asyncio.InvalidStateError) and "set_result" in repr(context.get("handle")):
        log.debug("FUSE fd readable after its wait ended (unmounting)")
        return
    loop.default_exception_handler(context)


def _terminate(sig: int) -> None:
    log.debug("signal %d: unmounting", sig)
    pyfuse3.terminate()


def dump_tasks(ops: SuperFsOperations | None = None) -> None:
    """SIGUSR1: log what every asyncio task of the mount is waiting on (for a stuck mount), and the
    leased directories' counters."""
    tasks = asyncio.all_tasks()
    lines = [f"SIGUSR1: {len(tasks)} asyncio tasks"]
    if ops is not None and ops.leased is not None:
        lines.append(f"leases: {ops.leased.stats()}")
    for task in tasks:
        out = io.StringIO()
        try:
            task.print_stack(limit=12, file=out)
        except Exception as e:  # noqa: BLE001 - a frame of compiled code may lack a line number
            out.write(f"{task!r} (no stack: {e!r})")
        lines.append(out.getvalue().rstrip())
    log.warning("\n".join(lines))


def setup_logging(log_file: str | None, level: str = "INFO") -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    lvl = getattr(logging, level.upper(), logging.INFO)
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        logging.basicConfig(filename=log_file, level=lvl, format=fmt)
    else:
        logging.basicConfig(level=lvl, format=fmt)


def run_foreground(opts: MountOptions) -> int:
    """The body of ``superfs mount --foreground``; returns the exit status."""
    if not ensure_mountpoint(opts.mountpoint):
        return 1
    if is_mounted(opts.mountpoint):
        print(f"superfs: {opts.mountpoint} is already mounted "
              f"(a dead mount? clear it with 'superfs umount {opts.mountpoint}')", file=sys.stderr)
        return 1
    pyfuse3.asyncio.enable()
    try:
        asyncio.run(serve(opts))
    except OSError as e:
        log.error("mount of %s failed: %s", opts.mountpoint, e)
        print(f"superfs: mount of {opts.mountpoint} failed: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:  # pyfuse3.init: fuse_session_new / fuse_session_mount failed
        log.error("mount of %s failed: %s", opts.mountpoint, e)
        print(f"superfs: mount of {opts.mountpoint} failed: {e}", file=sys.stderr)
        return 1
    return 0


def ensure_mountpoint(mountpoint: str) -> bool:
    """Make a missing mountpoint (``superfs up --mount /tmp/superfs`` on a fresh machine)."""
    if not os.path.lexists(mountpoint):
        try:
            os.makedirs(mountpoint)
        except OSError as e:
            print(f"superfs: cannot create mountpoint {mountpoint}: {e.strerror}", file=sys.stderr)
            return False
    if not is_mounted(mountpoint) and not os.path.isdir(mountpoint):
        print(f"superfs: mountpoint {mountpoint} is not a directory", file=sys.stderr)
        return False
    return True


# ------------------------------------------------------------ mount table

def _unescape(field: str) -> str:
    # /proc/self/mounts escapes space, tab, newline and backslash as octal
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def is_mounted(mountpoint: str) -> bool:
    """Is anything mounted there, dead FUSE mounts included (os.path.ismount misses those)?"""
    target = os.path.realpath(mountpoint)
    try:
        with open("/proc/self/mounts") as f:
            return any(_unescape(line.split()[1]) == target for line in f if len(line.split()) > 1)
    except FileNotFoundError:
        return os.path.ismount(target)


def mount_name(mountpoint: str) -> str:
    """A file-name-safe name for a mountpoint (for its pid and log files)."""
    path = os.path.realpath(mountpoint)
    base = "".join(c if c.isalnum() else "_" for c in os.path.basename(path))[:32] or "root"
    return f"{base}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"


def record_path(state_dir: str, mountpoint: str) -> str:
    return os.path.join(state_dir, "run", f"mount-{mount_name(mountpoint)}.json")


def log_path(state_dir: str, mountpoint: str) -> str:
    return os.path.join(state_dir, "log", f"mount-{mount_name(mountpoint)}.log")


def read_records(state_dir: str) -> list[dict[str, object]]:
    run = os.path.join(state_dir, "run")
    out = []
    try:
        names = sorted(os.listdir(run))
    except FileNotFoundError:
        return []
    for name in names:
        if name.startswith("mount-") and name.endswith(".json"):
            try:
                with open(os.path.join(run, name)) as f:
                    rec = json.load(f)
            except (OSError, json.JSONDecodeError):
                continue
            rec["_file"] = os.path.join(run, name)
            out.append(rec)
    return out


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


# ------------------------------------------------------------- background

def spawn_mount(mountpoint: str, dir_address: str, state_dir: str, extra_args: list[str] | None = None,
                timeout_s: float = MOUNT_TIMEOUT_S) -> int:
    """Start a detached foreground mount; wait until it is mounted. Returns an exit status."""
    mountpoint = os.path.realpath(mountpoint)
    if not ensure_mountpoint(mountpoint):
        return 1
    if is_mounted(mountpoint):
        print(f"superfs: {mountpoint} is already mounted", file=sys.stderr)
        return 1
    logfile = os.path.abspath(log_path(state_dir, mountpoint))
    os.makedirs(os.path.dirname(logfile), exist_ok=True)
    os.makedirs(os.path.join(state_dir, "run"), exist_ok=True)
    cmd = [*python_module("superfs.cli.main"), "mount", mountpoint, "--address", dir_address,
           "--foreground", "--log", logfile] + list(extra_args or [])
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd="/")  # as the daemons (launcher.py)
    deadline = time.monotonic() + timeout_s
    while not os.path.ismount(mountpoint):
        if proc.poll() is not None:
            print(f"superfs: the mount process exited with status {proc.returncode}:\n{_tail(logfile)}",
                  file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            print(f"superfs: {mountpoint} was not mounted within {timeout_s:.0f} s:\n{_tail(logfile)}",
                  file=sys.stderr)
            proc.terminate()
            return 1
        time.sleep(0.02)
    rec = {"mountpoint": mountpoint, "pid": proc.pid, "address": dir_address, "log": logfile}
    tmp = record_path(state_dir, mountpoint) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f)
    os.replace(tmp, record_path(state_dir, mountpoint))
    print(f"superfs: mounted {dir_address} at {mountpoint} (pid {proc.pid}, log {logfile})")
    return 0


# --------------------------------------------------------------- unmount

def fusermount_unmount(mountpoint: str, *, lazy: bool = False) -> tuple[bool, str]:
    cmd = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [mountpoint]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=UNMOUNT_TIMEOUT_S)
    except FileNotFoundError:
        r = subprocess.run(["umount"] + (["-l"] if lazy else []) + [mountpoint], capture_output=True,
                           text=True, timeout=UNMOUNT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, "fusermount3 timed out"
    return r.returncode == 0, (r.stderr or r.stdout).strip()


def unmount(mountpoint: str, pid: int | None = None, timeout_s: float = UNMOUNT_TIMEOUT_S, *,
            force: bool = False) -> bool:
    """Unmount (a live or a dead mount) and wait for its process to exit.

    A busy mount (open files, a shell's working directory) is left alone,
    as umount(8) does, unless ``force``: then it is detached (lazy unmount)
    and its process told to stop, which pushes what it buffers and exits.
    """
    mountpoint = os.path.realpath(mountpoint)
    ok = True
    if is_mounted(mountpoint):
        ok, msg = fusermount_unmount(mountpoint)
        if not ok and is_mounted(mountpoint):
            if "busy" in msg.lower() and not force:
                print(f"superfs: {mountpoint} is busy: {msg}", file=sys.stderr)
                return False
            if pid is not None and force:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            ok, msg = fusermount_unmount(mountpoint, lazy=True)
            if not ok and is_mounted(mountpoint):  # (not mounted: the stopping process beat us to it)
                print(f"superfs: cannot unmount {mountpoint}: {msg}", file=sys.stderr)
                return False
        ok = True
    if pid is not None:
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                break
            time.sleep(0.02)
    return ok


def pid_of_mount(state_dir: str, mountpoint: str) -> tuple[int | None, str | None]:
    path = record_path(state_dir, mountpoint)
    try:
        with open(path) as f:
            return int(json.load(f)["pid"]), path
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None, None


def unmount_recorded(state_dir: str) -> list[str]:
    """Unmount every mount recorded under ``state_dir``, busy or not (the cluster is
    going down); returns the mountpoints done."""
    done = []
    for rec in read_records(state_dir):
        mp = str(rec.get("mountpoint", ""))
        pid = rec.get("pid")
        if mp and unmount(mp, int(pid) if isinstance(pid, int) else None, force=True):
            done.append(mp)
            try:
                os.unlink(str(rec["_file"]))
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
    return done
