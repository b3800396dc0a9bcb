"""Prometheus metrics of a SuperFS daemon (the package's only metrics module).

Each daemon has its own registry (several daemons in one test process do
not collide) served over HTTP at ``http://HOST:PORT/metrics`` when its
config names a metrics port. Exported:

* ``superfs_rpc_requests_total{method,code}``: requests served, by gRPC status
* ``superfs_rpc_duration_seconds{method}``: latency histogram per RPC
* ``superfs_rpc_errors_total{method,errno}``: failed requests by errno name (EIO, ETIMEDOUT, ...)
* ``superfs_rpc_answers_total{method,errno}``: requests answered with an errno POSIX expects
  (ENOENT, EEXIST, ENOTEMPTY, EACCES, ...: superfs.errors.EXPECTED_ERRNOS), which are not failures
* ``superfs_lmdb_bytes``, ``superfs_lmdb_entries{db}``: store size on disk and
  entries per sub-database
* ``superfs_lmdb_commits_total``, ``superfs_lmdb_committed_ops_total``,
  ``superfs_lmdb_ops_per_commit``: group commit (ops/commits = mean batch size;
  ``rate(ops)/rate(commits)`` over any window)
* data servers: ``superfs_data_chunks``, ``superfs_data_bytes``, ``superfs_data_disk_bytes``;
  their byte path: ``superfs_bytes_{reads,writes,forwarded,repaired_blocks,dropped}``
* the dir server: ``superfs_cluster_servers{kind}`` (registered),
  ``superfs_data_servers_reachable``, ``superfs_replicas``,
  ``superfs_replica_health`` (reachable data servers / R, capped at 1: below 1,
  new chunks cannot get all their replicas and chunks on the unreachable
  servers have fewer live copies), from a probe of every data server
* the dir server's re-replication (superfs/rebalance/watch.py): ``superfs_data_servers_{draining,dead,removed}``,
  ``superfs_under_replicated_chunks``, ``superfs_rereplicated_{chunks,bytes,files}``,
  ``superfs_rereplication_failures``
* partition moves: on the dir server ``superfs_partitions_moved``,
  ``superfs_partition_moves_in_progress``, ``superfs_partition_rows_copied``,
  ``superfs_partition_bytes_copied``; on a shard ``superfs_partition_rows_imported``,
  ``superfs_partition_bytes_imported``, ``superfs_partitions_frozen``
* ``superfs_daemon_info{daemon}`` and the process collector (CPU, memory, fds)

Request metrics wrap every servicer method (:meth:`DaemonMetrics.wrapper_for`,
installed by :func:`superfs.daemon.serve`);
store figures are read when Prometheus scrapes (custom collectors), so the
Stats RPCs and the metrics never disagree.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from superfs.errors import ERRNO_KEY, EXPECTED_NAMES
from superfs.interception import Behaviour, is_generator

if TYPE_CHECKING:
    from superfs.lmdb_store import LmdbStore

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
PROBE_INTERVAL_S = 5.0


class DaemonMetrics:
    """The registry, request metrics and HTTP endpoint of one daemon."""

    def __init__(self, daemon: str) -> None:
        self.daemon = daemon
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        Gauge("superfs_daemon_info", "Which daemon this is", ["daemon"], registry=self.registry).labels(daemon).set(1)
        self.requests = Counter("superfs_rpc_requests", "Requests served, by method and gRPC status",
                                ["method", "code"], registry=self.registry)
        self.latency = Histogram("superfs_rpc_duration_seconds", "Time to serve a request, by method",
                                 ["method"], registry=self.registry, buckets=LATENCY_BUCKETS)
        self.errors = Counter("superfs_rpc_errors", "Failed requests, by method and errno",
                              ["method", "errno"], registry=self.registry)
        self.answers = Counter("superfs_rpc_answers", "Requests answered with an expected errno "
                               "(ENOENT, EEXIST, ENOTEMPTY, ...), by method and errno",
                               ["method", "errno"], registry=self.registry)
        self._server: Any = None
        self.url: str | None = None

    def add(self, collector: Collector) -> None:
        self.registry.register(collector)

    def wrapper_for(self, method: str) -> Callable[[Behaviour, str], Behaviour]:
        """Request metrics around one method (for :func:`superfs.interception.intercepting`)."""
        return _RpcTimer(self).wrapper_for(method)

    def recorder(self, method: str) -> Callable[[str, float, Any, BaseException | None], None]:
        """``record`` for one method, with its common children looked up once."""
        latency, ok = self.latency.labels(method), self.requests.labels(method, "OK")

        def record(_: str, start: float, context: Any, exc: BaseException | None) -> None:
            if exc is None:
                latency.observe(time.perf_counter() - start)
                ok.inc()
            else:
                self.record(method, start, context, exc)
        return record

    def record(self, method: str, start: float, context: grpc.aio.ServicerContext | None,
               exc: BaseException | None) -> None:
        self.latency.labels(method).observe(time.perf_counter() - start)
        if exc is None:
            self.requests.labels(method, "OK").inc()
            return
        code, err = "UNKNOWN", "EIO"
        if isinstance(exc, asyncio.CancelledError):
            code, err = "CANCELLED", "EINTR"
        elif context is not None:
            c = context.code()
            if isinstance(c, grpc.StatusCode):
                code = c.name
            for key, value in context.trailing_metadata() or ():
                if key == ERRNO_KEY:
                    err = str(value)
        self.requests.labels(method, code).inc()
        (self.answers if err in EXPECTED_NAMES else self.errors).labels(method, err).inc()

    def serve(self, listen: str) -> str:
        """Start the HTTP endpoint (a thread) on host:port; returns its URL."""
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        try:
            self._server, _ = start_http_server(int(port), addr=host, registry=self.registry)
        except OSError as e:
            raise OSError(e.errno, f"metrics endpoint {listen}: {e.strerror}") from None
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self._server.server_port}/metrics"
        log.info("%s metrics on %s", self.daemon, self.url)
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            threading.Thread(target=server.shutdown, daemon=True).start()
            server.server_close()


class _RpcTimer:
    """Wraps every servicer method: latency, status and errno of each call."""

    def __init__(self, metrics: DaemonMetrics) -> None:
        self.m = metrics

    def wrapper_for(self, method: str) -> Callable[[Behaviour, str], Behaviour]:
        return lambda behaviour, kind: self._timed(behaviour, method)

    def _timed(self, behaviour: Behaviour, method: str) -> Behaviour:
        record = self.m.recorder(method)
        if is_generator(behaviour):
            async def timed_gen(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                start = time.perf_counter()
                try:
                    async for item in behaviour(request, context):
                        yield item
                except BaseException as e:
                    record(method, start, context, e)
                    raise
                record(method, start, context, None)
            return timed_gen

        async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            try:
                reply = await behaviour(request, context)
            except BaseException as e:
                record(method, start, context, e)
                raise
            record(method, start, context, None)
            return reply
        return timed


# ------------------------------------------------------------ store figures

class LmdbCollector(Collector):
    """Size, entries per sub-database and group-commit counts of one LmdbStore."""

    def __init__(self, store: "LmdbStore") -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        s = self.store
        yield GaugeMetricFamily("superfs_lmdb_bytes", "Bytes of the LMDB store on disk", value=s.db_bytes())
        entries = GaugeMetricFamily("superfs_lmdb_entries", "Entries per LMDB sub-database", labels=["db"])
        try:
            with s.read() as txn:
                for name, db in sorted(s.dbs.items()):
                    entries.add_metric([name], txn.stat(db)["entries"])
        except Exception as e:  # noqa: BLE001 - a closing store must not break a scrape
            log.debug("lmdb stat failed: %s", e)
        yield entries
        yield CounterMetricFamily("superfs_lmdb_commits", "LMDB write transactions committed (group commits)",
                                  value=s.batches)
        yield CounterMetricFamily("superfs_lmdb_committed_ops", "Mutations committed, over all group commits",
                                  value=s.batched_ops)
        yield GaugeMetricFamily("superfs_lmdb_ops_per_commit", "Mean mutations per group commit since start",
                                value=s.batched_ops / s.batches if s.batches else 0.0)


class FiguresCollector(Collector):
    """Gauges read from a function at scrape time: ``fn() -> [(name, help, value)]``."""

    def __init__(self, fn: Callable[[], list[tuple[str, str, float]]]) -> None:
        self.fn = fn

    def collect(self) -> Iterator[Metric]:
        try:
            figures = self.fn()
        except Exception as e:  # noqa: BLE001 - a closing store must not break a scrape
            log.debug("figures failed: %s", e)
            return
        for name, doc, value in figures:
            yield GaugeMetricFamily(name, doc, value=value)


def chunk_figures(chunks: Any) -> Callable[[], list[tuple[str, str, float]]]:
    """A data server's ChunkStore: chunks and bytes held."""
    def fn() -> list[tuple[str, str, float]]:
        s = chunks.stats()
        return [("superfs_data_chunks", "Chunks held by this data server", s.chunks),
                ("superfs_data_bytes", "Chunk bytes held by this data server", s.bytes),
                ("superfs_data_disk_bytes", "Bytes its chunk store takes on disk (slot files and LMDB index)",
                 s.db_bytes)]
    return fn


class ReplicaHealth(Collector):
    """The dir server's view of the data servers: registered, answering, enough for R copies.

    :meth:`run` probes every registered data server with its (cheap) Stats RPC
    every few seconds; a scrape reports the latest results.
    """

    def __init__(self, cluster_map: Callable[[], Any], probe: Callable[[int], Any],
                 interval_s: float = PROBE_INTERVAL_S) -> None:
        self.cluster_map = cluster_map
        self.probe = probe
        self.interval_s = interval_s
        self.reachable: dict[int, bool] = {}

    def _servers(self) -> list[Any]:
        """Data servers that hold chunks (a removed one was drained or re-replicated: it may be gone)."""
        return [s for s in self.cluster_map().data_servers if getattr(s, "state", "") != "removed"]

    async def probe_once(self) -> None:
        servers = self._servers()

        async def one(server_id: int) -> bool:
            try:
                await self.probe(server_id)
                return True
            except Exception:  # noqa: BLE001 - any failure means unreachable
                return False

        results = await asyncio.gather(*(one(s.id) for s in servers))
        self.reachable = {s.id: ok for s, ok in zip(servers, results)}

    def probed_all(self) -> bool:
        """Whether every registered data server has been probed at least once."""
        return all(s.id in self.reachable for s in self._servers())

    async def run(self) -> None:
        while True:
            await self.probe_once()
            # data servers register after the dir server starts: probe them soon, not in one interval
            waiting = not self.cluster_map().data_servers or not self.probed_all()
            await asyncio.sleep(min(0.5, self.interval_s) if waiting else self.interval_s)

    def collect(self) -> Iterator[Metric]:
        m = self.cluster_map()
        servers = GaugeMetricFamily("superfs_cluster_servers", "Servers registered in the cluster map",
                                    labels=["kind"])
        servers.add_metric(["shard"], len(m.shards))
        servers.add_metric(["data"], len(m.data_servers))
        yield servers
        yield GaugeMetricFamily("superfs_replicas", "Copies wanted of each chunk (R)", value=m.replicas)
        if not self.probed_all():
            return  # not known yet: a server not yet probed is not a lost one (no 0.00 right after start)
        held = self._servers()
        live = sum(1 for s in held if self.reachable.get(s.id))
        yield GaugeMetricFamily("superfs_data_servers_reachable", "Data servers answering the dir server's probe",
                                value=live)
        want = min(m.replicas or 1, len(held)) if held else 0
        health = min(1.0, live / want) if want else 1.0
        yield GaugeMetricFamily("superfs_replica_health",
                                "Reachable data servers / R, capped at 1 (1: every chunk can have R live copies)",
                                value=health)


# ------------------------------------------------- what each daemon exports

Background = Callable[[], Any]


def dir_server_metrics(store: Any, registry: Any, view: Any, timeout_s: float,
                       leases: Any = None, mover: Any = None) -> tuple[list[Collector], list[Background]]:
    """Collectors and background probe of the dir server (DirStore, ClusterRegistry, its ClusterView,
    LeaseManager)."""
    from superfs.v1 import superfs_pb2 as pb

    def probe(server_id: int) -> Any:
        return view.data(server_id).stats(pb.Empty(), min(timeout_s, 2.0))

    health = ReplicaHealth(lambda: registry.map, probe)
    collectors: list[Collector] = [LmdbCollector(store.db), health]
    if leases is not None:
        collectors.append(FiguresCollector(lease_figures(leases)))
    if mover is not None:
        collectors.append(FiguresCollector(move_figures(mover)))
    return collectors, [health.run]


def lease_figures(leases: Any) -> Callable[[], list[tuple[str, str, float]]]:
    """The dir server's LeaseManager: directory leases held, recalled, revoked and fenced."""
    def fn() -> list[tuple[str, str, float]]:
        return [("superfs_leases_held", "Directory leases clients hold now", leases.table.held()),
                ("superfs_leases_recalled", "Leases given back on recall since start", leases.recalled),
                ("superfs_leases_revoked", "Leases taken from holders that did not answer a recall", leases.revoked),
                ("superfs_lease_fences", "Fences pushed to the shards (a directory's epoch raised)", leases.fences)]
    return fn


def shard_metrics(store: Any, servicer: Any = None) -> list[Collector]:
    """A shard's FileMetaStore (files and dentries are its LMDB entry counts), and its partition moves."""
    out: list[Collector] = [LmdbCollector(store.lmdb)]
    if servicer is not None:
        out.append(FiguresCollector(lambda: [
            ("superfs_partition_rows_imported", "Rows of partitions copied onto this shard since start",
             servicer.imported_rows),
            ("superfs_partition_bytes_imported", "Bytes of partitions copied onto this shard since start",
             servicer.imported_bytes),
            ("superfs_partitions_frozen", "Partitions of this shard frozen by a move in progress",
             len(servicer.cluster.frozen_partitions))]))
    return out


def move_figures(mover: Any) -> Callable[[], list[tuple[str, str, float]]]:
    """The dir server's PartitionMover: partitions moved, moves in progress, rows and bytes copied."""
    def fn() -> list[tuple[str, str, float]]:
        return [("superfs_partitions_moved", "Partitions moved to another shard since start", mover.moved),
                ("superfs_partition_moves_in_progress", "Partition moves recorded in the cluster map",
                 len(mover.registry.map.moves)),
                ("superfs_partition_rows_copied", "Rows copied by partition moves since start", mover.rows_copied),
                ("superfs_partition_bytes_copied", "Bytes copied by partition moves since start",
                 mover.bytes_copied)]
    return fn


def byte_path_figures(server: Any) -> Callable[[], list[tuple[str, str, float]]]:
    """A data server's ByteServer: requests served, chained forwards, repaired blocks, dropped connections."""
    def fn() -> list[tuple[str, str, float]]:
        return [("superfs_bytes_reads", "Chunk reads served on the byte path", server.reads),
                ("superfs_bytes_writes", "Chunk writes served on the byte path", server.writes),
                ("superfs_bytes_located", "Chunks located for a client on this host that reads them itself",
                 server.located),
                ("superfs_bytes_forwarded", "Chained writes forwarded to the next replica", server.forwarded),
                ("superfs_bytes_repaired_blocks", "Corrupt blocks repaired from another replica",
                 server.repaired_blocks),
                ("superfs_bytes_dropped", "Byte-path connections dropped (garbage, stalls, over the limit)",
                 server.dropped)]
    return fn


def data_server_metrics(chunks: Any, byte_server: Any = None) -> list[Collector]:
    """A data server's ChunkStore (and its byte path)."""
    out: list[Collector] = [LmdbCollector(chunks.store), FiguresCollector(chunk_figures(chunks))]
    if byte_server is not None:
        out.append(FiguresCollector(byte_path_figures(byte_server)))
    return out
