"""``superfs status``: daemons up or down, and what the cluster holds."""
from __future__ import annotations

import sys

from superfs.cli.launcher import LocalCluster


def human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def show_status(state_dir: str, address: str | None) -> int:
    from superfs.client import Client

    ok = True
    if address is None:
        cluster = LocalCluster(state_dir)
        if not cluster.exists():
            print(f"superfs: no cluster in {state_dir} (start one with 'superfs up')", file=sys.stderr)
            return 1
        print(f"cluster in {state_dir}")
        for name, addr, pid in cluster.status():
            state = f"up   pid {pid}" if pid else "DOWN"
            ok &= pid is not None
            print(f"  {name:<8} {addr:<22} {state}")
        address = str(cluster.config["dir_server"])
        if cluster.running_pid("dir") is None:
            print("the dir server is down: start the cluster with 'superfs up'", file=sys.stderr)
            return 3
    try:
        with Client(address, timeout_s=3.0) as client:
            s = client.statfs()
    except OSError as e:
        print(f"superfs: cannot read cluster statistics from {address}: {e.strerror}", file=sys.stderr)
        print("(is the cluster up? 'superfs up' starts the local one)", file=sys.stderr)
        return 1
    print(f"directories {s['directories']}   files {s['files']}   bytes {human(s['bytes_used'])}"
          f"   shards {s['shards']}   data servers {s['data_servers']}")
    return 0 if ok else 3
