"""Shared memory on transparent huge pages where the host's default would give 4 KiB pages.

Linux gives shared memory (memfd, /dev/shm) huge pages only as
``/sys/kernel/mm/transparent_hugepage/shmem_enabled`` says, and its default
is ``never``. A tmpfs mounted with ``huge=always`` gets them whatever that
says (unless it says ``deny``). So a short helper process enters a mount
namespace of its own (with a user namespace when it is not privileged),
mounts a private tmpfs of exactly the arena's size there, creates one file,
unlinks it and hands its descriptor back over a socket pair. The file then
behaves like a memfd: nothing to clean up, gone with the last descriptor or
mapping, reachable by local clients through ``/proc/<pid>/fd/<fd>``. The
mount is in no namespace anyone else sees, and goes with the file.

Where namespaces are not allowed (a container's seccomp profile, a
hardened host), the caller falls back to a plain memfd and says why.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

HUGE = 2 << 20
HELPER_TIMEOUT_S = 10.0

# the helper: a fresh interpreter (unshare of a mount namespace needs a
# single thread), standard library only; argv: arena bytes
_HELPER = r"""
import ctypes, errno, os, socket, sys, tempfile
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 16384, 1 << 18
libc = ctypes.CDLL(None, use_errno=True)
def fail(what):
    e = ctypes.get_errno()
    sys.stderr.write(f"{what}: {os.strerror(e)}\n")
    sys.exit(1)
uid, gid = os.getuid(), os.getgid()
if libc.unshare(CLONE_NEWNS) != 0:
    if ctypes.get_errno() != errno.EPERM or libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
        fail("unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
# nothing mounted here may reach the parent's namespace
if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
    fail("making mounts private")
size = int(sys.argv[1])
where = tempfile.gettempdir().encode()
opts = f"huge=always,size={size},mode=0700".encode()
if libc.mount(b"kvserve-arena", where, b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) != 0:
    fail("mounting a tmpfs with huge=always")
path = os.path.join(where.decode(), "arena")
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
os.unlink(path)
os.ftruncate(fd, size)
socket.socket(fileno=int(os.environ["KVSERVE_ARENA_SOCK"])).sendmsg(
    [b"ok"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])
"""


def pmd_mapped_bytes(addr: int, smaps: str = "/proc/self/smaps") -> int:
    """Bytes of this process's mapping that holds ``addr`` mapped with huge (PMD) pages.

    Huge pages are best effort: with memory fragmented the kernel falls back
    to 4 KiB pages without a word, so the daemon counts what it got.
    """
    inside = False
    total = 0
    with open(smaps) as f:
        for line in f:
            head = line.split(maxsplit=1)[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= addr < hi
            elif inside and head in ("ShmemPmdMapped:", "FilePmdMapped:"):
                total += int(line.split()[1]) * 1024
    return total


def huge_tmpfs_file(size: int) -> tuple[int | None, str]:
    """(descriptor of a ``size``-byte file on a private huge-page tmpfs, "") or (None, why not)."""
    size = -(-size // HUGE) * HUGE  # the tmpfs holds whole huge pages
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        env = dict(os.environ, KVSERVE_ARENA_SOCK=str(theirs.fileno()))
        try:
            r = subprocess.run([sys.executable, "-I", "-S", "-c", _HELPER, str(size)], env=env,
                               pass_fds=[theirs.fileno()], capture_output=True, text=True,
                               timeout=HELPER_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"no private tmpfs ({e})"
        theirs.close()
        if r.returncode != 0:
            why = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
            return None, f"no private tmpfs ({why})"
        ours.settimeout(1.0)
        try:
            _, fds, _, _ = socket.recv_fds(ours, 16, 1)
        except OSError as e:
            return None, f"no private tmpfs ({e})"
        if not fds:
            return None, "no private tmpfs (the helper sent no file)"
        os.set_inheritable(fds[0], False)
        return fds[0], ""
    finally:
        ours.close()
        theirs.close()
