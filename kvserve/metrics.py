"""Prometheus metrics of one daemon (the package's only metrics module).

Counters and gauges are read from the store when Prometheus scrapes
(a custom collector over :meth:`KvStore.stats`), so there is one source of
truth for them and the Stats RPC. Latencies and transferred bytes are
recorded by the service as requests complete. Each daemon has its own
registry, so several stores in one process (tests) do not collide.

Exported (``tier`` is ``dram`` or ``superfs``):

* ``kvserve_hits_total{tier}``, ``kvserve_tier_misses_total{tier}``, ``kvserve_misses_total``
  (in no tier), ``kvserve_puts_total``
* ``kvserve_evictions_total{tier}``, ``kvserve_corrupt_total{tier}``
* ``kvserve_tier_bytes{tier}``, ``kvserve_tier_capacity_bytes{tier}``, ``kvserve_tier_objects{tier}``
* ``kvserve_tier_read_bytes_total{tier}``, ``kvserve_tier_written_bytes_total{tier}``
* ``kvserve_leases_active``, ``kvserve_demotions_dropped_total``
* ``kvserve_request_seconds{op}`` (histogram), ``kvserve_transfer_bytes_total{path,direction}``
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from kvserve.store import KvStore

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0)


class _StoreCollector(Collector):
    def __init__(self, store: "KvStore") -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        s: dict[str, Any] = self.store.stats()
        tiers: dict[str, dict[str, Any]] = {"dram": s["dram"], "superfs": s["superfs"]}

        def per_tier(kind: type, name: str, doc: str, field: str) -> Metric:
            fam = kind(name, doc, labels=["tier"])
            for tier, values in tiers.items():
                if values:
                    fam.add_metric([tier], values[field])
            return fam

        yield per_tier(CounterMetricFamily, "kvserve_hits", "Objects found, by the tier that held them", "hits")
        yield per_tier(CounterMetricFamily, "kvserve_tier_misses", "Lookups that reached a tier and missed there",
                       "misses")
        yield per_tier(CounterMetricFamily, "kvserve_evictions", "Objects evicted from a tier", "evictions")
        yield per_tier(CounterMetricFamily, "kvserve_corrupt", "Objects whose bytes failed their checksum",
                       "corrupt")
        yield per_tier(CounterMetricFamily, "kvserve_tier_read_bytes", "Object bytes read from a tier",
                       "bytes_read")
        yield per_tier(CounterMetricFamily, "kvserve_tier_written_bytes", "Object bytes written to a tier",
                       "bytes_written")
        yield per_tier(GaugeMetricFamily, "kvserve_tier_bytes", "Bytes held by a tier", "bytes")
        yield per_tier(GaugeMetricFamily, "kvserve_tier_capacity_bytes", "Capacity of a tier (0: unbounded)",
                       "capacity")
        yield per_tier(GaugeMetricFamily, "kvserve_tier_objects", "Objects held by a tier", "objects")
        yield CounterMetricFamily("kvserve_misses", "Lookups found in no tier", value=s["misses"])
        yield CounterMetricFamily("kvserve_puts", "Objects stored by clients", value=s["puts"])
        yield GaugeMetricFamily("kvserve_leases_active", "Leases held by readers", value=s["leases_active"])
        yield CounterMetricFamily("kvserve_demotions_dropped", "Evicted objects that could not reach SuperFS",
                                  value=s["demotions_dropped"])


class StoreMetrics:
    def __init__(self, store: "KvStore") -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StoreCollector(store))
        self.latency = Histogram("kvserve_request_seconds", "Time to serve a request, by operation", ["op"],
                                 registry=self.registry, buckets=LATENCY_BUCKETS)
        self.transfer = Counter("kvserve_transfer_bytes", "Object bytes moved to or from clients",
                                ["path", "direction"], registry=self.registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint (a thread); returns the bound port."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(self._server.server_port)
        log.debug("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
