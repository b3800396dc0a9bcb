"""The deadline of the call a daemon is serving, for the layers below the service.

A session call carries how long its caller will wait (superfs/rpc). The
session server puts the resulting monotonic deadline here for the handler's
task; the LMDB writer reads it when a mutation is queued and refuses to apply
the mutation once that moment has passed, so a change is never made after
its caller was told it timed out (superfs/lmdb_store.py).
"""
from __future__ import annotations

import contextvars

call_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("superfs_call_deadline", default=None)
