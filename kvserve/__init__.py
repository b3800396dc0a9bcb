"""kvserve: a KV-cache store for LLM serving, on SuperFS.

Keys are prefix-chained hashes of token blocks (:func:`block_hashes`); a
daemon keeps objects in a DRAM tier (a shared-memory arena) over a SuperFS
tier, and clients talk to one daemon (:class:`KvClient`) or to several that
form one store (:class:`KvCluster`). ``python -m kvserve`` runs the daemon
(``serve``), replays a serving trace (``replay``), schedules a prefill/decode
cluster over the cache (``conduct``, :mod:`kvserve.conductor`) or writes a
synthetic trace (``gen-trace``). :mod:`kvserve.attention` computes decode
attention in the daemon over the blocks it holds.
"""
from __future__ import annotations

from kvserve.errors import (BadRequest, KvError, NoSpace, ObjectTooLarge, ShmUnavailable, Status, StoreUnavailable,
                            Tier, UnknownNamespace)
from kvserve.prefix import Namespace, block_hashes

__all__ = ["BadRequest", "KvError", "Namespace", "NoSpace", "ObjectTooLarge", "ShmUnavailable", "Status",
           "StoreUnavailable", "Tier", "UnknownNamespace", "block_hashes"]
