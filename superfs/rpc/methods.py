"""Every unary method of the SuperFS services, from the proto: its messages and whether it changes state.

Sessions carry unary calls only (the streamed chunk RPCs stay on gRPC); a
method is named on the wire as ``"ShardService/CreateFile"``. A method that
changes nothing may be sent again freely (after a reconnect, or to another
replica); every other one is a *mutation*, applied at most once per session
and call id by the daemon (superfs/rpc/server.py). The list of reads is
explicit, so a method added to the proto is a mutation until someone says
otherwise: the safe default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from superfs.v1 import superfs_pb2 as pb

SERVICES = ("DirService", "ShardService", "DataService")

# Calls a daemon makes to a client on the client's session (superfs/rpc/client.py handlers)
RECALL_LEASE = "Client/RecallLease"   # RecallLeaseRequest -> Empty: send what is pending, drop the lease

READS = frozenset({
    "DirService/GetClusterMap", "DirService/Resolve", "DirService/GetDir", "DirService/LookupDir",
    "DirService/ListDirs", "DirService/GetDirXattr", "DirService/ListDirXattr", "DirService/Stats",
    "DirService/ListAllDirs", "DirService/ListDirIntents",
    "ShardService/LookupFile", "ShardService/GetFile", "ShardService/ReadInline", "ShardService/ListFiles",
    "ShardService/GetXattr", "ShardService/ListXattr", "ShardService/Stats", "ShardService/ScanEntries",
    "ShardService/ScanInodes", "ShardService/ListPending", "ShardService/ExportPartition",
    "ShardService/DigestPartition",
    "DataService/ReadChunk", "DataService/ListChunks", "DataService/Stats",
})


@dataclass(frozen=True)
class Method:
    full: str          # "ShardService/CreateFile"
    service: str       # "ShardService"
    name: str          # "CreateFile"
    request: Any       # the request message class
    reply: Any         # the reply message class
    mutation: bool


def _table() -> dict[str, Method]:
    out: dict[str, Method] = {}
    for service in SERVICES:
        for m in pb.DESCRIPTOR.services_by_name[service].methods:
            if m.client_streaming or m.server_streaming:
                continue
            full = f"{service}/{m.name}"
            out[full] = Method(full, service, m.name, getattr(pb, m.input_type.name),
                               getattr(pb, m.output_type.name), full not in READS)
    return out


METHODS: dict[str, Method] = _table()


def method(full: str) -> Method:
    """The method called ``full``; KeyError if it is not a unary SuperFS method."""
    return METHODS[full]
