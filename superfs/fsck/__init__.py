"""fsck and replica repair of a whole SuperFS cluster, online, through the client library.

Layers, pointing down:

- ``runner``: phases, progress lines, confirmation by a second scan, report, exit status;
- ``repair``: one idempotent fix per finding; ``replicas``: copying chunks between replicas;
- ``checks``: the rules, pure functions from a snapshot to findings (no network);
- ``snapshot``: scanning the dir server, every shard and every data server;
- ``findings``: the table of what can be found and how it is repaired.

The CLI is ``superfs fsck [--repair]`` and ``superfs repair`` (superfs/cli/admin_cmds.py).
"""
from __future__ import annotations

from superfs.fsck.findings import KINDS, Finding
from superfs.fsck.runner import Options, Run

__all__ = ["KINDS", "Finding", "Options", "Run"]
