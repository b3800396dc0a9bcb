"""StoreApi: what a kvserve client offers, whether it talks to one daemon or many.

:class:`kvserve.client.KvClient` (one daemon) and
:class:`kvserve.cluster.KvCluster` (several daemons as one store) implement
the abstract methods; the conveniences (get, get_batch, get_prefix, the
``*_into`` zero-copy reads) are written once here on top of :meth:`lookup`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

from kvserve.errors import Status, Tier


@dataclass
class Hit:
    """One object found: its bytes (``data``; None if read into the caller's buffer), size and tier."""

    size: int
    tier: Tier
    data: bytes | None = None


class StoreApi(ABC):
    @abstractmethod
    def put_batch(self, keys: Sequence[bytes], values: Sequence[Any], *, pin: bool = False) -> list[Status]:
        """Store objects (bytes-like or numpy arrays, not copied on the way); one Status each."""

    @abstractmethod
    def lookup(self, keys: Sequence[bytes], *, prefix: bool = False,
               outs: Sequence[Any] | None = None) -> list[Hit | None]:
        """Find objects (into ``outs`` if given); with ``prefix``, only the leading present run."""

    @abstractmethod
    def exists(self, keys: Sequence[bytes]) -> list[Tier]: ...

    @abstractmethod
    def remove(self, keys: Sequence[bytes]) -> list[Status]: ...

    @abstractmethod
    def pin(self, keys: Sequence[bytes], pinned: bool = True) -> list[Status]:
        """Pinned objects are evicted from DRAM only after every unpinned one."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "StoreApi":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------- conveniences

    def put(self, key: bytes, data: Any, *, pin: bool = False) -> Status:
        return self.put_batch([key], [data], pin=pin)[0]

    def get(self, key: bytes) -> bytes | None:
        hit = self.lookup([key])[0]
        return hit.data if hit is not None else None

    def get_batch(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return [h.data if h is not None else None for h in self.lookup(keys)]

    def get_prefix(self, keys: Sequence[bytes]) -> list[bytes]:
        """The objects of the longest run of leading keys that are all present."""
        return [h.data for h in self.lookup(keys, prefix=True) if h is not None and h.data is not None]

    def get_into(self, keys: Sequence[bytes], outs: Sequence[Any]) -> list[int | None]:
        """Read each object into its buffer (at least as large); sizes, None for a miss."""
        return [h.size if h is not None else None for h in self.lookup(keys, outs=outs)]

    def get_prefix_into(self, keys: Sequence[bytes], outs: Sequence[Any]) -> int:
        """Read the leading present objects into ``outs``; returns how many."""
        return len(self.lookup(keys, prefix=True, outs=outs))

    def unpin(self, keys: Sequence[bytes]) -> list[Status]:
        return self.pin(keys, False)
