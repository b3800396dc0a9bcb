"""Eviction policies: which object a full tier gives up next.

A policy only orders keys; it knows nothing of bytes, tiers or leases. The
tier that owns it calls, in this order over an object's life::

    insert(key, size)   once, when the object becomes resident
    access(key)         on every hit (and on a put of a key already held)
    victim(skip)        when space is needed: the next key to evict, which the
                        policy forgets; keys for which skip(key) is true
                        (leased, or pinned on the first pass) are passed over
    remove(key)         when the tier drops a key for another reason

Policies (``POLICIES``, chosen by name in the daemon's configuration):

* ``lru``: least recently used, the baseline.
* ``s3fifo``: S3-FIFO (Yang et al., SOSP'23). New objects enter a small FIFO
  (10% of the bytes); only those hit while there, or seen again soon after
  leaving (a ghost list of keys), reach the main FIFO, where a hit buys an
  object another lap (up to 3). Most KV blocks are written once and never
  read again (58% on the Mooncake synthetic trace): S3-FIFO lets them leave
  quickly instead of pushing out blocks that were already reused.

Prefix awareness lives in the store, not here: a batch touches its keys from
the deepest block to the first, so within a chain the tail is always older
than its prefix and chains are evicted from the tail (a block is useless
without the blocks before it).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Callable, ClassVar, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)

Skip = Callable[[K], bool]


class EvictionPolicy(ABC, Generic[K]):
    name: ClassVar[str]

    @abstractmethod
    def insert(self, key: K, size: int) -> None:
        """``key`` became resident (it is not already)."""

    @abstractmethod
    def access(self, key: K) -> None:
        """``key`` (resident) was hit."""

    @abstractmethod
    def remove(self, key: K) -> None:
        """``key`` left the tier other than through :meth:`victim`; unknown keys are ignored."""

    @abstractmethod
    def victim(self, skip: Skip[K] | None = None) -> K | None:
        """Forget and return the next key to evict, or None if every key is skipped."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __contains__(self, key: object) -> bool: ...


class LruPolicy(EvictionPolicy[K]):
    name = "lru"

    def __init__(self) -> None:
        self._order: OrderedDict[K, None] = OrderedDict()  # least recent first

    def insert(self, key: K, size: int) -> None:
        self._order[key] = None

    def access(self, key: K) -> None:
        if key in self._order:
            self._order.move_to_end(key)

    def remove(self, key: K) -> None:
        self._order.pop(key, None)

    def victim(self, skip: Skip[K] | None = None) -> K | None:
        for _ in range(len(self._order)):
            key = next(iter(self._order))
            if skip is not None and skip(key):
                # busy objects are being read right now: as good as recently used
                self._order.move_to_end(key)
                continue
            del self._order[key]
            return key
        return None

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._order


class S3FifoPolicy(EvictionPolicy[K]):
    name = "s3fifo"

    MAX_FREQ = 3

    def __init__(self, small_share: float = 0.1) -> None:
        self.small_share = small_share
        self._small: OrderedDict[K, int] = OrderedDict()  # key -> size, oldest first
        self._main: OrderedDict[K, int] = OrderedDict()
        self._freq: dict[K, int] = {}
        self._ghost: OrderedDict[K, None] = OrderedDict()  # keys recently evicted from small
        self._small_bytes = 0
        self._main_bytes = 0

    def insert(self, key: K, size: int) -> None:
        self._freq[key] = 0
        if key in self._ghost:
            # evicted from the small queue and wanted again: it is not a one-hit wonder
            del self._ghost[key]
            self._main[key] = size
            self._main_bytes += size
        else:
            self._small[key] = size
            self._small_bytes += size

    def access(self, key: K) -> None:
        f = self._freq.get(key)
        if f is not None and f < self.MAX_FREQ:
            self._freq[key] = f + 1

    def remove(self, key: K) -> None:
        if self._freq.pop(key, None) is None:
            return
        if key in self._small:
            self._small_bytes -= self._small.pop(key)
        else:
            self._main_bytes -= self._main.pop(key)

    def _remember(self, key: K) -> None:
        self._ghost[key] = None
        limit = max(64, len(self._main) + len(self._small))
        while len(self._ghost) > limit:
            self._ghost.popitem(last=False)

    def victim(self, skip: Skip[K] | None = None) -> K | None:
        # every step either evicts or spends one unit of an object's frequency
        # (at most MAX_FREQ each) or moves it from small to main (once)
        budget = (self.MAX_FREQ + 2) * (len(self._small) + len(self._main)) + 1
        main_skips = 0  # busy keys met in a row in main: a whole lap means main has nothing to give
        for _ in range(budget):
            total = self._small_bytes + self._main_bytes
            main_stuck = main_skips >= len(self._main)
            if self._small and (self._small_bytes >= self.small_share * total or main_stuck):
                key, size = self._small.popitem(last=False)
                self._small_bytes -= size
                if self._freq[key] > 0 or (skip is not None and skip(key)):
                    self._freq[key] = 0
                    self._main[key] = size
                    self._main_bytes += size
                    continue
                del self._freq[key]
                self._remember(key)
                return key
            if main_stuck:
                return None
            key, size = self._main.popitem(last=False)
            self._main[key] = size  # back at the tail unless evicted below
            if skip is not None and skip(key):
                main_skips += 1
                continue
            main_skips = 0
            f = self._freq[key]
            if f > 0:
                self._freq[key] = f - 1  # a hit buys another lap
                continue
            del self._main[key]
            self._main_bytes -= size
            del self._freq[key]
            return key
        return None

    def __len__(self) -> int:
        return len(self._freq)

    def __contains__(self, key: object) -> bool:
        return key in self._freq


POLICIES: dict[str, Callable[[], EvictionPolicy]] = {  # type: ignore[type-arg]
    LruPolicy.name: LruPolicy,
    S3FifoPolicy.name: S3FifoPolicy,
}


def make_policy(name: str) -> EvictionPolicy:  # type: ignore[type-arg]
    try:
        return POLICIES[name]()
    except KeyError:
        raise ValueError(f"unknown eviction policy {name!r} (known: {', '.join(sorted(POLICIES))})") from None
