"""gRPC channel options every SuperFS process uses (clients and daemons alike).

Lives in the transport layer so that the client library does not import
daemon code for them (it used to import superfs.daemon, and with it the
auth and metrics modules).
"""
from __future__ import annotations

MAX_MESSAGE = 80 * 1024 * 1024  # what a process receives from daemons: the largest chunk plus headroom
GRPC_OPTIONS: list[tuple[str, object]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.so_reuseport", 0),
]
