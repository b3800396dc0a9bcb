"""``python -m ckpt``: list, verify and remove checkpoints from the command line.

    python -m ckpt ls PATH               steps, committed or partial, latest, size
    python -m ckpt verify PATH [--step N | --all]   re-read every byte, check checksums
    python -m ckpt rm PATH STEP [STEP ...]           remove checkpoints (latest moves back)

PATH is a directory or a superfs:// URL. Exit status: 0 when all is well,
1 when verify found problems or a step does not exist, 2 on bad usage.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from ckpt.catalog import latest_step, list_steps, read_manifest, remove_step, step_dir
from ckpt.errors import CheckpointError
from ckpt.manifest import MANIFEST_NAME
from ckpt.storage import open_storage
from ckpt.verify import verify

DESCRIPTION = """\
Distributed checkpoints on SuperFS or a directory: list, verify, remove.

PATH is a directory (local or a SuperFS mount) or a URL superfs://HOST:PORT/dir
(superfs:///dir for the local cluster started by 'superfs up').
"""


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def cmd_ls(args: argparse.Namespace) -> int:
    storage = open_storage(args.path)
    steps = list_steps(storage)
    if not steps and storage.exists(MANIFEST_NAME):  # PATH is one checkpoint (e.g. a DCP checkpoint_id)
        m = read_manifest(storage, "")
        print(f"one checkpoint (step {m.step}): {m.world_size} ranks, {len(m.items)} items, {human(m.nbytes)}")
        return 0
    if not steps:
        print(f"no checkpoints in {storage.url}")
        return 0
    latest = latest_step(storage)
    print(f"{'STEP':>10}  {'STATUS':<9}  {'RANKS':>5}  {'ITEMS':>6}  {'SIZE':>10}  CREATED")
    for info in steps:
        if not info.committed:
            print(f"{info.step:>10}  {'partial':<9}  {'-':>5}  {'-':>6}  {'-':>10}  -")
            continue
        try:
            m = read_manifest(storage, info.dir)
        except CheckpointError as e:
            print(f"{info.step:>10}  {'unreadable':<9}  {e}")
            continue
        status = "latest" if info.step == latest else "committed"
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.created))
        print(f"{info.step:>10}  {status:<9}  {m.world_size:>5}  {len(m.items):>6}  {human(m.nbytes):>10}  {created}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    storage = open_storage(args.path)
    if args.all:
        steps: list[int | None] = [s.step for s in list_steps(storage) if s.committed]
    else:
        steps = [args.step]
    bad = 0
    for step in steps:
        try:
            report = verify(storage, step)
        except CheckpointError as e:
            print(f"FAILED {storage.url}{'' if step is None else '/' + step_dir(step)}: {e}")
            bad += 1
            continue
        if report.ok:
            print(f"OK {report.location}: {report.items} items, {human(report.bytes_checked)} verified")
        else:
            bad += 1
            print(f"CORRUPT {report.location}: {len(report.problems)} problem(s)")
            for p in report.problems:
                print(f"  {p}")
    return 1 if bad else 0


def cmd_rm(args: argparse.Namespace) -> int:
    storage = open_storage(args.path)
    status = 0
    for step in args.steps:
        try:
            remove_step(storage, step)
            print(f"removed step {step}")
        except CheckpointError as e:
            print(f"ckpt rm: {e}", file=sys.stderr)
            status = 1
    return status


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ckpt", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="log what is being done")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    ls = sub.add_parser("ls", help="list checkpoints: step, committed/partial/latest, ranks, size")
    ls.add_argument("path", metavar="PATH")
    ls.set_defaults(func=cmd_ls)
    v = sub.add_parser("verify", help="re-read a checkpoint and check every checksum",
                       description="Re-read every byte of a checkpoint (default: latest) and check it against the "
                                   "manifest's checksums; exits 1 if anything is corrupt or missing.")
    v.add_argument("path", metavar="PATH")
    which = v.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, help="verify this step (default: latest)")
    which.add_argument("--all", action="store_true", help="verify every committed step")
    v.set_defaults(func=cmd_verify)
    rm = sub.add_parser("rm", help="remove checkpoints (if latest is removed, it moves to the newest left)")
    rm.add_argument("path", metavar="PATH")
    rm.add_argument("steps", metavar="STEP", type=int, nargs="+")
    rm.set_defaults(func=cmd_rm)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except CheckpointError as e:
        print(f"ckpt: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"ckpt: {e}", file=sys.stderr)
        return 1
