"""``superfs mount | umount``: SuperFS as a POSIX file system (FUSE).

``superfs mount DIR`` mounts the local cluster (or ``--address``) at DIR as a
background process with a pid file and a log under the state directory;
``--foreground`` serves in the calling process (for systemd and tests).
``superfs up --mount DIR`` and ``superfs down`` use :func:`mount_background`
and :func:`unmount_all_of`.
"""
from __future__ import annotations

import argparse
import os
import sys

from superfs.client.local import default_state_dir, local_dir_address
from superfs.config import DEFAULT_RPC_TIMEOUT_S
from superfs.fuse import mount as mount_mod
from superfs.fuse.options import BATCH_DELAY_MS, MountOptions
from superfs.fuse.readahead import DEFAULT_READ_AHEAD_KB


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "mount", help="mount SuperFS at a directory (FUSE)",
        description="Mount a SuperFS cluster at MOUNTPOINT. By default the mount runs in the background "
                    "with its pid file and log under the state directory; --foreground serves in this "
                    "process until unmounted or sent SIGTERM/SIGINT.")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--address", help="dir server HOST:PORT (default: the local cluster's)")
    where.add_argument("--state-dir", default=None,
                       help="the local cluster's state directory (default: $XDG_DATA_HOME/superfs "
                            "or ~/.local/share/superfs)")
    p.add_argument("--config", metavar="FILE",
                   help="the cluster's TOML file: dir server address, credentials and TLS settings")
    p.add_argument("--foreground", action="store_true", help="serve in this process (do not daemonise)")
    p.add_argument("--attr-timeout", type=float, default=1.0, metavar="S",
                   help="seconds the kernel caches attributes (default 1)")
    p.add_argument("--entry-timeout", type=float, default=1.0, metavar="S",
                   help="seconds the kernel caches names (default 1)")
    p.add_argument("--rpc-timeout", type=float, default=DEFAULT_RPC_TIMEOUT_S, metavar="S",
                   help=f"seconds before a request to a daemon fails with ETIMEDOUT "
                        f"(default {DEFAULT_RPC_TIMEOUT_S:g})")
    p.add_argument("--read-only", action="store_true", help="mount read-only")
    p.add_argument("--read-ahead-kb", type=int, default=DEFAULT_READ_AHEAD_KB, metavar="KB",
                   help=f"the kernel's read-ahead for the mount, so sequential reads arrive in big "
                        f"requests (default {DEFAULT_READ_AHEAD_KB}; 0 keeps FUSE's 128; needs root)")
    p.add_argument("--allow-other", action=argparse.BooleanOptionalAction, default=None,
                   help="let users other than the mounting one use the mount, as any local file "
                        "system does (default: on when root mounts; other users need user_allow_other "
                        "in /etc/fuse.conf)")
    p.add_argument("--leases", action=argparse.BooleanOptionalAction, default=True,
                   help="take directory leases: in a directory this mount creates files or "
                        "subdirectories in, lookups, creates, small writes, unlinks, mkdirs and rmdirs "
                        "are answered at once and sent in batches; others see them as soon as they look "
                        "(default on; --no-leases: every operation waits for the servers, close-to-open)")
    p.add_argument("--batch-delay-ms", type=float, default=BATCH_DELAY_MS, metavar="MS",
                   help=f"under a lease, the longest a change made ahead waits before it is sent to its "
                        f"shard (default {BATCH_DELAY_MS:g}); a crash of the mount loses at most this "
                        f"much, and fsync sends at once")
    p.add_argument("--log", metavar="FILE", help="log here instead of stderr")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    p.add_argument("--fuse-debug", action="store_true",
                   help="log every FUSE request and its reply (libfuse's debug option), to find a "
                        "request that is never answered; SIGUSR1 to the mount process logs what "
                        "each of its tasks waits on, and its leases' counters")
    p.set_defaults(func=cmd_mount)

    p = sub.add_parser("umount", help="unmount a SuperFS mount",
                       description="Unmount MOUNTPOINT (also a dead mount left by a killed mount process) "
                                   "and wait for its process to exit.")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("--state-dir", default=None, help="state directory the mount was recorded in")
    p.set_defaults(func=cmd_umount)


def _passthrough(args: argparse.Namespace) -> list[str]:
    """Flags the background process gets again."""
    out = ["--attr-timeout", str(args.attr_timeout), "--entry-timeout", str(args.entry_timeout),
           "--rpc-timeout", str(args.rpc_timeout), "--log-level", args.log_level,
           "--read-ahead-kb", str(args.read_ahead_kb), "--batch-delay-ms", str(args.batch_delay_ms)]
    if args.read_only:
        out.append("--read-only")
    if args.allow_other is not None:
        out.append("--allow-other" if args.allow_other else "--no-allow-other")
    if args.fuse_debug:
        out.append("--fuse-debug")
    if not args.leases:
        out.append("--no-leases")
    return out


def cmd_mount(args: argparse.Namespace) -> int:
    from superfs.client import resolve, security_scope

    state = args.state_dir or default_state_dir()
    security = None
    try:
        if args.config:
            address, security, _ = resolve(config=args.config)
            address = args.address or address
        else:
            address = args.address or local_dir_address(state)
    except FileNotFoundError as e:
        print(f"superfs: {e.strerror}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:
        print(f"superfs: {e}", file=sys.stderr)
        return 2
    mountpoint = os.path.abspath(args.mountpoint)
    if not 0 <= args.batch_delay_ms <= 60_000:
        print("superfs: --batch-delay-ms must be between 0 and 60000", file=sys.stderr)
        return 2
    if not args.foreground:
        extra = _passthrough(args) + (["--config", os.path.abspath(args.config)] if args.config else [])
        return mount_mod.spawn_mount(mountpoint, address, state, extra)
    mount_mod.setup_logging(args.log, args.log_level)
    opts = MountOptions(mountpoint=mountpoint, dir_address=address, attr_timeout=args.attr_timeout,
                        entry_timeout=args.entry_timeout, read_only=args.read_only,
                        allow_other=default_allow_other(args.allow_other), rpc_timeout_s=args.rpc_timeout,
                        fuse_debug=args.fuse_debug, read_ahead_kb=args.read_ahead_kb, leases=args.leases,
                        batch_delay_ms=args.batch_delay_ms)
    with security_scope(security):  # channels the mount opens carry these credentials
        return mount_mod.run_foreground(opts)


def default_allow_other(flag: bool | None) -> bool:
    """Other users may use a mount that root made (as they use any local file system,
    with permissions checked); a user's own mount stays private unless asked."""
    return flag if flag is not None else os.geteuid() == 0


def cmd_umount(args: argparse.Namespace) -> int:
    state = args.state_dir or default_state_dir()
    mountpoint = os.path.realpath(args.mountpoint)
    pid, record = mount_mod.pid_of_mount(state, mountpoint)
    if not mount_mod.is_mounted(mountpoint) and pid is None:
        print(f"superfs: {mountpoint} is not mounted", file=sys.stderr)
        return 1
    if not mount_mod.unmount(mountpoint, pid):
        return 1
    if record is not None:
        try:
            os.unlink(record)
        except FileNotFoundError:
            pass
    print(f"superfs: unmounted {mountpoint}")
    return 0


def mount_background(mountpoint: str, dir_address: str, state_dir: str) -> int:
    """Mount in a detached process (for ``superfs up --mount``); 0 once mounted."""
    return mount_mod.spawn_mount(os.path.abspath(mountpoint), dir_address, state_dir)


def unmount_all_of(state_dir: str) -> None:
    """Unmount every mount recorded for ``state_dir`` (for ``superfs down``)."""
    for mp in mount_mod.unmount_recorded(state_dir):
        print(f"superfs: unmounted {mp}")
