"""Configuration of the kvserve daemon: one frozen dataclass, loaded from TOML.

``kvserve serve --config FILE`` reads a TOML table whose keys are the field
names below (unknown keys are an error, so a typo cannot silently fall back
to a default); command-line flags override the file. Sizes may be written
as numbers of bytes or with a unit: ``"512MiB"``, ``"4GiB"``, ``"1.5GB"``.
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from kvserve.policy import POLICIES
from kvserve.prefix import check_namespace_name

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": KiB, "m": 10**6, "mb": 10**6, "mib": MiB,
          "g": 10**9, "gb": 10**9, "gib": GiB, "t": 10**12, "tb": 10**12, "tib": 1 << 40}
_SIZE_RE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*")


def parse_size(text: str | int) -> int:
    """``"64MiB"`` -> 67108864; plain integers pass through."""
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"a size cannot be negative: {text}")
        return text
    m = _SIZE_RE.fullmatch(str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 1048576, 512MiB, 4GiB, 1.5GB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "127.0.0.1:0"            # host:port; port 0 picks a free one
    ready_file: str | None = None          # {"address", "pid"} is written here once serving
    dram_bytes: int = 1 * GiB              # capacity of the DRAM tier (the shared-memory arena)
    page_bytes: int = 4 * KiB              # allocation unit inside the arena
    prefault: bool = True                  # allocate the whole arena at start (faster copies)
    huge_pages: bool = True                # arena on huge pages, via a private tmpfs if the host needs it
    max_object_bytes: int = 64 * MiB       # larger puts are refused (TOO_LARGE)
    policy: str = "s3fifo"                 # eviction policy of both tiers: see kvserve.policy
    namespaces: tuple[str, ...] = ()       # accepted namespaces; empty: any well-formed one
    max_keys: int = 4096                   # keys per request
    lease_seconds: float = 10.0            # a reader's lease (and a writer's reservation) expires after this
    shm: bool = True                       # offer the arena to clients on the same host
    superfs: str | None = None             # dir-server address of the SuperFS tier's cluster; None: no tier
    superfs_config: str | None = None      # that cluster's cluster.toml (its address, TLS and token)
    superfs_root: str = "/kvserve/default"  # directory on SuperFS holding this daemon's objects
    superfs_bytes: int = 0                 # capacity of the SuperFS tier; 0: unbounded
    superfs_timeout_s: float = 10.0        # per SuperFS RPC
    demote_inflight_bytes: int = 256 * MiB  # evicted bytes waiting to be written to SuperFS
    demote_concurrency: int = 32           # SuperFS writes in flight (batches: at most kvserve.demoter.BATCH_WRITERS)
    demote_drain_s: float = 30.0           # at stop, pending demotions get this long; the rest are dropped
    demote_batch_bytes: int = 4 * MiB      # objects demoted together share one segment file up to this size
    metrics_port: int | None = None        # Prometheus endpoint port; None: no endpoint, 0: any free port
    metrics_host: str = "127.0.0.1"
    piece_bytes: int = 512 * KiB           # bytes per streamed gRPC message (fits in L2: faster copies)
    attention_threads: int = 0             # threads of one Attend batch (decode attention); 0: one per CPU
    attention_kernel: str = "numpy"        # "numpy" (BLAS products) or "numba": see kvserve/attention/kernel.py

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {sorted(POLICIES)}, not {self.policy!r}")
        if self.page_bytes < 512 or self.page_bytes & (self.page_bytes - 1):
            raise ValueError("page_bytes must be a power of two >= 512")
        if self.dram_bytes < 2 * self.page_bytes:
            raise ValueError("dram_bytes must hold at least two pages")
        if self.max_object_bytes < 1 or self.max_object_bytes > self.dram_bytes:
            raise ValueError("max_object_bytes must be between 1 and dram_bytes "
                             "(an object is written into DRAM before it can go anywhere else)")
        if self.attention_threads < 0:
            raise ValueError("attention_threads cannot be negative (0: one per CPU)")
        if self.attention_kernel not in ("numpy", "numba"):
            raise ValueError(f"attention_kernel must be numpy or numba, not {self.attention_kernel!r}")
        if self.demote_drain_s < 0 or self.demote_batch_bytes < 1:
            raise ValueError("demote_drain_s cannot be negative, and demote_batch_bytes must be positive")
        if self.lease_seconds <= 0 or self.max_keys < 1 or self.piece_bytes < 4096:
            raise ValueError("lease_seconds, max_keys and piece_bytes must be positive (piece_bytes >= 4096)")
        if not self.superfs_root.startswith("/"):
            raise ValueError("superfs_root must be an absolute path on the cluster")
        for ns in self.namespaces:
            check_namespace_name(ns)

    def replace(self, **changes: Any) -> "ServerConfig":
        return dataclasses.replace(self, **changes)


_SIZE_FIELDS = {"dram_bytes", "page_bytes", "max_object_bytes", "superfs_bytes", "demote_inflight_bytes",
                "piece_bytes", "demote_batch_bytes"}


def config_from_mapping(values: dict[str, Any], base: ServerConfig | None = None) -> ServerConfig:
    """Apply ``values`` (from TOML or flags) over ``base``; unknown keys are an error."""
    known = {f.name for f in dataclasses.fields(ServerConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown configuration keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key in _SIZE_FIELDS and value is not None:
            value = parse_size(value)
        if key == "namespaces":
            value = tuple(value)
        clean[key] = value
    return dataclasses.replace(base or ServerConfig(), **clean)


def load_config(path: str, overrides: dict[str, Any] | None = None) -> ServerConfig:
    """Read a TOML file, then apply ``overrides`` (flags the user gave)."""
    with open(path, "rb") as f:
        values = tomllib.load(f)
    cfg = config_from_mapping(values)
    return config_from_mapping(overrides or {}, cfg)
