"""Peers in the same run: the md benchmark over SuperFS and the file systems a user would pick.

Targets (``--targets``, default all five): ``local-disk`` (a temp dir under
``--local-dir``), ``tmpfs`` (under /dev/shm), ``passthrough`` (bench/passthrough.py,
the minimal pyfuse3 passthrough, over a tmpfs directory: the floor of any
Python FUSE file system), ``superfs-mount`` (``superfs mount`` of a fresh
local cluster, defaults) and ``superfs-library`` (the same cluster through
``superfs.connect``). ``--peers ceph,moosefs`` adds CephFS (ceph-fuse) and
MooseFS (mfsmount), started and stopped with the scripts in
``--peer-scripts`` (default ../shared/peers of the source tree; they need
root and Debian's packages): optional extras, never used by the tests.

Every target runs the same phases with the same files and processes; then
one ``ratio`` row per phase gives SuperFS's ops/s (mount and library) over
each peer's.

    superfs bench peers [--files N] [--procs P] [--peers ceph,moosefs]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from typing import Any, Iterator

from superfs.bench import md
from superfs.bench.cluster import dir_address, fuse_unmount, superfs_mount, temp_cluster, wait_mounted
from superfs.bench.report import emit
from superfs.bench.targets import TargetSpec

BASE_TARGETS = ("local-disk", "tmpfs", "passthrough", "superfs-mount", "superfs-library")
OPTIONAL_PEERS = {"ceph": ("setup_ceph.sh", "cephmnt"), "moosefs": ("setup_moosefs.sh", "mfsmnt")}
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSTHROUGH = os.path.join(SOURCE_ROOT, "bench", "passthrough.py")
PEER_SCRIPTS = os.environ.get("SUPERFS_PEER_SCRIPTS", os.path.join(SOURCE_ROOT, "..", "shared", "peers"))
PEER_START_TIMEOUT_S = 600


@contextmanager
def passthrough_mount(work: str) -> Iterator[str]:
    """bench/passthrough.py over a tmpfs directory, same cache timeouts as the SuperFS mount."""
    if not os.path.exists(PASSTHROUGH):
        raise FileNotFoundError(f"{PASSTHROUGH}: the passthrough ships with the source tree only")
    src = tempfile.mkdtemp(prefix="superfs-pt-src-", dir="/dev/shm")
    mp = os.path.join(work, "passthrough")
    os.mkdir(mp)
    proc = subprocess.Popen([sys.executable, PASSTHROUGH, src, mp], stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_mounted(mp, proc)
        yield mp
    finally:
        fuse_unmount(mp, proc)
        subprocess.run(["rm", "-rf", src])


@contextmanager
def script_peer(name: str, scripts: str, peers_dir: str) -> Iterator[str]:
    """A peer from ../shared/peers: ``start`` before, ``stop`` after; yields its mountpoint."""
    script, mnt = OPTIONAL_PEERS[name]
    env = dict(os.environ, PEERS_DIR=os.path.abspath(peers_dir))
    cmd = ["bash", os.path.join(scripts, script)]
    r = subprocess.run(cmd + ["start"], env=env, capture_output=True, text=True, timeout=PEER_START_TIMEOUT_S)
    mp = os.path.join(os.path.abspath(peers_dir), mnt)
    try:
        said = (r.stdout + r.stderr).strip()[-500:] or "no output"
        if not os.path.ismount(mp):
            raise RuntimeError(f"{script} start failed (exit {r.returncode}): {said}")
        if r.returncode != 0:  # mounted, but a later step failed (MooseFS: mfssetgoal)
            print(f"{script} start: mounted, but exit {r.returncode}: {said}", file=sys.stderr)
        yield mp
    finally:
        subprocess.run(cmd + ["stop"], env=env, capture_output=True, timeout=PEER_START_TIMEOUT_S)


def ratio_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per phase: each SuperFS target's ops/s over each peer's."""
    by: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["phase"] != "score" and r.get("label"):
            by.setdefault(r["phase"], {})[r["label"]] = r["ops_per_s"]
    out = []
    for phase, vals in by.items():
        for ours in ("superfs-mount", "superfs-library"):
            if ours not in vals:
                continue
            ratios = {peer: round(vals[ours] / v, 3) if v else None
                      for peer, v in vals.items() if not peer.startswith("superfs")}
            out.append({"name": "md_ratio", "phase": phase, "superfs": ours, "ratio_to": ratios,
                        "nproc": os.cpu_count()})
    return out


def run(targets: list[str], cfg: md.MdConfig, local_dir: str, scripts: str,
        peers_dir: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="superfs-peers-") as work, ExitStack() as stack:
        cluster = None
        for name in targets:
            try:
                if name == "local-disk":
                    path = stack.enter_context(tempfile.TemporaryDirectory(dir=local_dir))
                elif name == "tmpfs":
                    path = stack.enter_context(tempfile.TemporaryDirectory(dir="/dev/shm"))
                elif name == "passthrough":
                    path = stack.enter_context(passthrough_mount(work))
                elif name.startswith("superfs"):
                    if cluster is None:
                        cluster = stack.enter_context(temp_cluster())
                    if name == "superfs-mount":
                        path = stack.enter_context(superfs_mount(cluster, os.path.join(work, "superfs")))
                    else:
                        path = f"superfs://{dir_address(cluster)}/md"
                elif name in OPTIONAL_PEERS:
                    path = stack.enter_context(script_peer(name, scripts, peers_dir))
                else:
                    raise ValueError(f"unknown target {name!r}")
                rows += md.run(TargetSpec.parse(path), md.MdConfig(**{**cfg.__dict__, "label": name}))
            except (OSError, RuntimeError, ValueError, md.BenchError) as e:
                emit({"name": "md", "phase": "skipped", "label": name, "error": f"{type(e).__name__}: {e}"})
    for r in ratio_rows(rows):
        emit(r)
        rows.append(r)
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--files", type=int, default=1000, metavar="N", help="files per process per phase (1000)")
    p.add_argument("--procs", type=int, default=os.cpu_count() or 1, metavar="P", help="worker processes")
    p.add_argument("--iterations", type=int, default=1, metavar="K")
    p.add_argument("--stonewall", type=float, default=None, metavar="S", help="seconds per phase per process")
    p.add_argument("--phases", default=",".join(md.PHASES), help="comma-separated subset of the md phases")
    p.add_argument("--targets", default=",".join(BASE_TARGETS), help="comma-separated, of: "
                   + ",".join(BASE_TARGETS))
    p.add_argument("--peers", default="", help="optional extras: ceph,moosefs (started from --peer-scripts)")
    p.add_argument("--peer-scripts", default=PEER_SCRIPTS, help="directory of setup_ceph.sh, setup_moosefs.sh")
    p.add_argument("--peers-dir", default="./.peers", help="the peers' state and mountpoints ($PEERS_DIR)")
    p.add_argument("--local-dir", default="/var/tmp", help="the local-disk target's parent (/var/tmp)")


def main(args: argparse.Namespace) -> int:
    phases = tuple(p for p in md.PHASES if p in args.phases.split(","))
    cfg = md.MdConfig(files=args.files, procs=max(1, args.procs), iterations=max(1, args.iterations),
                      stonewall_s=args.stonewall, phases=phases)
    targets = [t for t in args.targets.split(",") if t] + [p for p in args.peers.split(",") if p]
    run(targets, cfg, args.local_dir, args.peer_scripts, args.peers_dir)
    return 0
