"""Tier 1: the layers import as ARCHITECTURE.md draws them (no network, no daemons).

- the client library loads the transport, never daemon code (superfs.daemon,
  the metrics module, the session server, servicers);
- daemons (dir server, shards, data servers, the metrics probe) reach each
  other through superfs.rpc, never through superfs.client;
- nothing names a SuperFS RPC by a string: no ``getattr`` of a stub, no
  ``"Service/Method"`` literal outside the transport (superfs/rpc), whose job
  is to map the typed methods onto the wire.
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAEMON_PACKAGES = ("superfs/dirserver", "superfs/shard", "superfs/dataserver")
DAEMON_MODULES = ("superfs/metrics.py", "superfs/daemon.py", "superfs/cli/daemon_cmds.py")
CALLERS = ("superfs", "chukonu", "ckpt", "kvserve")
TRANSPORT = "superfs/rpc/"


def _python_files(top: str) -> list[str]:
    out = []
    for base, dirs, files in os.walk(os.path.join(ROOT, top)):
        dirs[:] = [d for d in dirs if d not in ("v1", "__pycache__")]
        out += [os.path.join(base, f) for f in files if f.endswith(".py")]
    return out


def _imports(path: str) -> set[str]:
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_importing_the_client_loads_no_daemon_code() -> None:
    code = ("import sys, superfs.client; "
            "print('\\n'.join(m for m in sys.modules if m.startswith('superfs')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": ROOT}).stdout.split()
    # (superfs.auth, which the client needs for its token, still brings superfs.interception along)
    daemon_side = [m for m in loaded if m in ("superfs.daemon", "superfs.metrics", "superfs.rpc.server")
                   or m.startswith(("superfs.dirserver", "superfs.shard", "superfs.dataserver"))]
    assert "superfs.rpc.cluster_map" in loaded and daemon_side == []


def test_daemons_use_the_transport_not_the_client_library() -> None:
    files = [f for p in DAEMON_PACKAGES for f in _python_files(p)] + [os.path.join(ROOT, m) for m in DAEMON_MODULES]
    offenders = {os.path.relpath(f, ROOT): sorted(i for i in _imports(f) if i.startswith("superfs.client"))
                 for f in files}
    assert {f: i for f, i in offenders.items() if i} == {}


def test_no_rpc_is_named_by_a_string() -> None:
    stub_getattr = re.compile(r"getattr\(\s*[\w.]*(stub|rpc)\w*\s*,")
    method_literal = re.compile(r"[\"'](Dir|Shard|Data)Service/[A-Z]\w*[\"']")
    offenders = []
    for top in CALLERS:
        for path in _python_files(top):
            rel = os.path.relpath(path, ROOT)
            if rel.startswith(TRANSPORT):
                continue
            with open(path) as f:
                for n, line in enumerate(f, 1):
                    if stub_getattr.search(line) or method_literal.search(line):
                        offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []
