"""``superfs status``: daemons up or down, their metrics URLs and key figures, and what the cluster holds.

The figures per daemon are read from its Prometheus endpoint (the same
numbers a monitoring system scrapes): requests served, failed requests
(EIO, ETIMEDOUT, ...) apart from requests answered with an errno POSIX
expects (ENOENT for a name that is not there, EEXIST, ENOTEMPTY, ...: not
faults), each by errno, store size, and per kind directories (dir server), files (shard), chunks
and bytes (data server), replica health (dir server). The cluster totals
come from the client library's statfs.
"""
from __future__ import annotations

import sys
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from superfs import config_file
from superfs.cli.launcher import LocalCluster

SCRAPE_TIMEOUT_S = 2.0


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one metrics endpoint (OSError if it does not answer)."""
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def by_errno(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> str:
    """'(ENOENT 60, EEXIST 3)': a counter's total per errno, largest first ('' when all are 0)."""
    per: dict[str, float] = {}
    for (n, labels), v in samples.items():
        if n == name and v:
            err = dict(labels).get("errno", "?")
            per[err] = per.get(err, 0.0) + v
    top = sorted(per.items(), key=lambda kv: -kv[1])
    return "(" + ", ".join(f"{e} {v:.0f}" for e, v in top) + ")" if top else ""


def figures(url: str | None) -> str:
    """One line of key figures from a daemon's metrics, or why there are none."""
    if url is None:
        return "(metrics off)"
    try:
        s = scrape(url)
    except OSError as e:
        return f"(metrics do not answer: {getattr(e, 'reason', None) or e})"
    parts = [f"requests {total(s, 'superfs_rpc_requests_total'):.0f}",
             f"failed {total(s, 'superfs_rpc_errors_total'):.0f} {by_errno(s, 'superfs_rpc_errors_total')}".rstrip(),
             f"expected errnos {total(s, 'superfs_rpc_answers_total'):.0f} "
             f"{by_errno(s, 'superfs_rpc_answers_total')}".rstrip(),
             f"store {human(total(s, 'superfs_lmdb_bytes'))}"]
    if any(n == "superfs_replica_health" for n, _ in s):
        parts.append(f"dirs {total(s, 'superfs_lmdb_entries', db='dirs'):.0f}")
        parts.append(f"data servers reachable {total(s, 'superfs_data_servers_reachable'):.0f}"
                     f"/{total(s, 'superfs_cluster_servers', kind='data'):.0f}")
        parts.append(f"replica health {total(s, 'superfs_replica_health'):.2f}")
        parts.append(f"under-replicated {total(s, 'superfs_under_replicated_chunks'):.0f}")
        parts.append(f"re-replicated {total(s, 'superfs_rereplicated_chunks'):.0f} chunks")
    elif any(n == "superfs_data_chunks" for n, _ in s):
        parts.append(f"chunks {total(s, 'superfs_data_chunks'):.0f}")
        parts.append(f"data {human(total(s, 'superfs_data_bytes'))} "
                     f"({human(total(s, 'superfs_data_disk_bytes'))} on disk)")
    else:
        parts.append(f"files {total(s, 'superfs_lmdb_entries', db='inodes'):.0f}")
    return "   ".join(parts)


def _metrics_url(node: config_file.NodeSettings) -> str | None:
    if not node.metrics_port:
        return None
    host = node.listen.rsplit(":", 1)[0]
    if host in ("0.0.0.0", "[::]", ""):
        host = node.address.rsplit(":", 1)[0]
    return f"http://{host}:{node.metrics_port}/metrics"


def _print_daemon(name: str, addr: str, state: str, url: str | None) -> None:
    print(f"  {name:<8} {addr:<22} {state:<14} {url or '-'}")
    print(f"  {'':<8} {figures(url)}")


def show_status(state_dir: str, address: str | None, config_path: str | None = None) -> int:
    from superfs.client import connect

    ok = True
    cf: config_file.ClusterFile | None = None
    if config_path is not None:
        try:
            cf = config_file.load(config_path)
        except config_file.ConfigError as e:
            print(f"superfs: {e}", file=sys.stderr)
            return 2
        if cf.dir_server is None:
            print(f"superfs: {config_path}: dir_server.address: missing", file=sys.stderr)
            return 2
        print(f"cluster {cf.name!r} of {cf.path}")
        nodes = [("dir", cf.dir_server)] + [(f"shard-{n.id}", n) for n in cf.shards] + \
                [(f"data-{n.id}", n) for n in cf.data_servers]
        for name, node in nodes:
            _print_daemon(name, node.address, "", _metrics_url(node))
    elif address is None:
        cluster = LocalCluster(state_dir)
        if not cluster.exists():
            print(f"superfs: no cluster in {state_dir} (start one with 'superfs up')", file=sys.stderr)
            return 1
        print(f"cluster in {state_dir}")
        for name, addr, pid in cluster.status():
            ok &= pid is not None
            _print_daemon(name, addr, f"up   pid {pid}" if pid else "DOWN", cluster.metrics_url(name))
        if cluster.running_pid("dir") is None:
            print("the dir server is down: start the cluster with 'superfs up'", file=sys.stderr)
            return 3
        cf = cluster.cluster_file()
    target = address or (cf.dir_server.address if cf and cf.dir_server else "")
    try:
        client = connect(address, timeout_s=3.0) if address else connect(config=cf, timeout_s=3.0)
    except OSError as e:
        print(f"superfs: cannot read cluster statistics from {target}: {e.strerror}", file=sys.stderr)
        print("(is the cluster up? 'superfs up' starts the local one)", file=sys.stderr)
        return 1
    with client:
        try:
            s = client.statfs()
        except OSError as e:
            print(f"superfs: cannot read cluster statistics from {target}: {e.strerror}", file=sys.stderr)
            print("(is the cluster up? 'superfs up' starts the local one)", file=sys.stderr)
            return 1
        print(f"directories {s['directories']}   files {s['files']}   bytes {human(s['bytes_used'])}"
              f"   shards {s['shards']}   data servers {s['data_servers']}")
        _print_replication(client)
    return 0 if ok else 3


def _print_replication(client: Any) -> None:
    """Data servers that are not active, files still placed on them, under-replicated chunks.

    Counted by a scan of every shard's files (superfs/rebalance), so only
    when some data server is draining, dead or removed: otherwise every
    chunk is placed on active servers.
    """
    from superfs.errors import FsError
    from superfs.rebalance import passes, plan
    from superfs.rebalance.port import ChunkPort

    cmap = client.aio.cluster.map
    leaving = {i: st for i, st in plan.states(cmap).items() if st != plan.ACTIVE}
    if not leaving:
        print("data servers all active")
        return
    try:
        chunks, files_on = client.run(passes.under_replicated(ChunkPort(client.aio.cluster), cmap))
    except (OSError, FsError) as e:
        print(f"data servers {leaving} (cannot count what is left to move: {e})")
        return
    print("data servers " + ", ".join(f"{i} {st} ({files_on.get(i, 0)} files left to move)"
                                      for i, st in sorted(leaving.items()))
          + f"   under-replicated chunks {chunks}")
