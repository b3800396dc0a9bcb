"""ckpt: distributed checkpoints on SuperFS (or any directory).

Every rank writes its own share of the state, replicated arrays once,
spread evenly over the data servers; a JSON manifest with per-block
checksums is committed last by an atomic rename; a checkpoint loads onto
any world size and sharding, reading only the bytes each rank needs::

    import ckpt
    state = {"model": {"w": ckpt.Shard(local_rows, global_shape=(8192, 1024), offsets=(r * 1024, 0))},
             "step": 100}
    ckpt.save(state, "superfs://10.0.0.1:7000/runs/a", step=100, rank=r, world_size=8)
    out = ckpt.load("superfs://10.0.0.1:7000/runs/a",
                    target={"model": {"w": ckpt.Shard(buf, (8192, 1024), (0, r * 512))}, "step": 0})

Paths are ``superfs://HOST:PORT/dir``, ``superfs:///dir`` (the local
cluster) or a directory. torch is optional: tensors are accepted wherever
arrays are, and ``ckpt.dcp`` adapts SuperFS storage to torch DCP.
"""
from __future__ import annotations

from ckpt.async_save import SaveHandle, async_save
from ckpt.catalog import latest_step, list_steps
from ckpt.coordination import Coordinator, FileCoordinator, TorchCoordinator
from ckpt.errors import (CheckpointError, CheckpointExistsError, CheckpointNotFoundError, CoordinationError,
                         CorruptionError, FutureVersionError, ManifestError, MismatchError, MissingShardError,
                         PlanError)
from ckpt.load import load, load_manifest
from ckpt.save import SaveResult, save
from ckpt.state import Shard
from ckpt.storage import Storage, open_storage
from ckpt.verify import VerifyReport, verify

__all__ = [
    "CheckpointError", "CheckpointExistsError", "CheckpointNotFoundError", "CoordinationError", "Coordinator",
    "CorruptionError", "FileCoordinator", "FutureVersionError", "ManifestError", "MismatchError",
    "MissingShardError", "PlanError", "SaveHandle", "SaveResult", "Shard", "Storage", "TorchCoordinator",
    "VerifyReport", "async_save", "latest_step", "list_steps", "load", "load_manifest", "open_storage", "save",
    "verify",
]
