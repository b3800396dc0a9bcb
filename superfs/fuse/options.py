"""What a mount is asked to be: its options, and the FUSE mount options they become."""
from __future__ import annotations

from dataclasses import dataclass

from superfs.client.batcher import DELAY_S
from superfs.fuse.readahead import DEFAULT_READ_AHEAD_KB

BATCH_DELAY_MS = DELAY_S * 1000


@dataclass(frozen=True)
class MountOptions:
    mountpoint: str
    dir_address: str
    attr_timeout: float = 1.0     # seconds the kernel caches attributes
    entry_timeout: float = 1.0    # seconds the kernel caches names (misses are never cached)
    read_only: bool = False
    allow_other: bool = False
    rpc_timeout_s: float = 5.0
    fuse_debug: bool = False      # libfuse prints every request and reply (to the log)
    read_ahead_kb: int = DEFAULT_READ_AHEAD_KB  # the kernel's read-ahead (0: leave its default)
    leases: bool = True           # take directory leases: creates, unlinks and lookups answered here
    batch_delay_ms: float = BATCH_DELAY_MS   # the longest a change made ahead under a lease waits before it is sent


def fuse_options(opts: MountOptions) -> set[str]:
    """The options for pyfuse3.init.

    Big requests need no option: FUSE 3 always allows writes as large as
    libfuse's buffer (1 MiB) and reads as large as the kernel's max_pages.
    FUSE 2's "big_writes" does not exist any more, and "max_read=" would have
    to be repeated in the init handler, which pyfuse3 does not expose (libfuse
    refuses the mount otherwise).
    """
    o = {"fsname=superfs", "subtype=superfs", "default_permissions"}
    if opts.fuse_debug:
        o.add("debug")
    if opts.allow_other:
        o.add("allow_other")
    if opts.read_only:
        o.add("ro")
    return o
