"""KvCluster: several kvserve daemons as one store, keys spread client-side.

Each key belongs to one daemon, chosen by rendezvous (highest random
weight) hashing of (daemon address, key): every client computes the same
owner with no coordination, and adding or removing a daemon moves only the
keys that daemon gains or loses. Daemons never talk to each other.

A daemon that does not answer loses only its own keys: its gets are misses,
its puts report UNAVAILABLE, and the cluster stops calling it for
``retry_after_s`` (so a dead daemon costs one failed call per period, not a
timeout per request). Keys are not moved to another daemon meanwhile: they
would be cold there anyway, and moving them would make a flapping daemon
shuffle the whole cache.

Batches are split by owner and sent to the owners in parallel.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence, TypeVar

import xxhash

from kvserve.api import Hit, StoreApi
from kvserve.client import KvClient
from kvserve.errors import Status, StoreUnavailable, Tier
from kvserve.prefix import Namespace

log = logging.getLogger(__name__)

T = TypeVar("T")


class KvCluster(StoreApi):
    def __init__(self, addresses: Sequence[str], namespace: Namespace | str, *, timeout_s: float = 10.0,
                 shm: bool | None = None, retry_after_s: float = 1.0) -> None:
        if not addresses:
            raise ValueError("a cluster needs at least one daemon address")
        if len(set(addresses)) != len(addresses):
            raise ValueError("daemon addresses must be distinct")
        self.addresses = list(addresses)
        self.clients = [KvClient(a, namespace, timeout_s=timeout_s, shm=shm) for a in self.addresses]
        self.retry_after_s = retry_after_s
        self._down_until = [0.0] * len(self.clients)
        self._seeds = [a.encode() for a in self.addresses]
        self._pool = ThreadPoolExecutor(max_workers=len(self.clients), thread_name_prefix="kvcluster")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for c in self.clients:
            c.close()

    # -------------------------------------------------------------- routing

    def owner(self, key: bytes) -> int:
        """Index of the daemon that holds ``key``."""
        best, best_w = 0, -1
        for i, seed in enumerate(self._seeds):
            w = xxhash.xxh3_64_intdigest(key, seed=xxhash.xxh3_64_intdigest(seed))
            if w > best_w:
                best, best_w = i, w
        return best

    def _groups(self, keys: Sequence[bytes]) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for pos, key in enumerate(keys):
            groups.setdefault(self.owner(key), []).append(pos)
        return groups

    def is_up(self, i: int) -> bool:
        return time.monotonic() >= self._down_until[i]

    def _fan_out(self, groups: dict[int, list[int]], fn: Callable[[KvClient, list[int]], T]) -> dict[int, T | None]:
        """Run ``fn`` per daemon in parallel; None for a daemon that is (or just went) down."""

        def one(i: int) -> T | None:
            if not self.is_up(i):
                return None
            try:
                return fn(self.clients[i], groups[i])
            except StoreUnavailable as e:
                log.warning("kvserve daemon %s is unavailable (%s); its keys miss for %.1f s",
                            self.addresses[i], e, self.retry_after_s)
                self._down_until[i] = time.monotonic() + self.retry_after_s
                return None

        if len(groups) == 1:
            (i,) = groups
            return {i: one(i)}
        futures = {i: self._pool.submit(one, i) for i in groups}
        return {i: f.result() for i, f in futures.items()}

    # ------------------------------------------------------------------ API

    def put_batch(self, keys: Sequence[bytes], values: Sequence[Any], *, pin: bool = False) -> list[Status]:
        if len(keys) != len(values):
            raise ValueError("put_batch needs one value per key")
        groups = self._groups(keys)
        results = self._fan_out(groups, lambda c, pos: c.put_batch([keys[p] for p in pos],
                                                                   [values[p] for p in pos], pin=pin))
        out = [Status.UNAVAILABLE] * len(keys)
        for i, statuses in results.items():
            if statuses is not None:
                for p, s in zip(groups[i], statuses):
                    out[p] = s
        return out

    def lookup(self, keys: Sequence[bytes], *, prefix: bool = False,
               outs: Sequence[Any] | None = None) -> list[Hit | None]:
        if outs is not None and len(outs) != len(keys):
            raise ValueError("one output buffer per key")
        groups = self._groups(keys)
        # With prefix, each daemon stops at the first of *its* keys it lacks; the
        # global prefix ends at the earliest such stop over all daemons.
        results = self._fan_out(groups, lambda c, pos: c.lookup(
            [keys[p] for p in pos], prefix=prefix, outs=[outs[p] for p in pos] if outs is not None else None))
        out: list[Hit | None] = [None] * len(keys)
        for i, hits in results.items():
            for p, h in zip(groups[i], hits or ()):
                out[p] = h
        if prefix:
            cut = next((p for p, h in enumerate(out) if h is None), len(out))
            out = out[:cut]
        return out

    def exists(self, keys: Sequence[bytes]) -> list[Tier]:
        groups = self._groups(keys)
        results = self._fan_out(groups, lambda c, pos: c.exists([keys[p] for p in pos]))
        out = [Tier.NONE] * len(keys)
        for i, tiers in results.items():
            for p, t in zip(groups[i], tiers or ()):
                out[p] = t
        return out

    def remove(self, keys: Sequence[bytes]) -> list[Status]:
        return self._per_key(keys, lambda c, ks: c.remove(ks))

    def pin(self, keys: Sequence[bytes], pinned: bool = True) -> list[Status]:
        return self._per_key(keys, lambda c, ks: c.pin(ks, pinned))

    def _per_key(self, keys: Sequence[bytes], fn: Callable[[KvClient, list[bytes]], list[Status]]) -> list[Status]:
        groups = self._groups(keys)
        results = self._fan_out(groups, lambda c, pos: fn(c, [keys[p] for p in pos]))
        out = [Status.UNAVAILABLE] * len(keys)
        for i, statuses in results.items():
            for p, s in zip(groups[i], statuses or ()):
                out[p] = s
        return out

    def stats(self) -> list[Any]:
        """Each daemon's StatsReply, None for one that does not answer."""
        return list(self._fan_out({i: [] for i in range(len(self.clients))},
                                  lambda c, _: c.stats()).values())
