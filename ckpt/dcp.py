"""PyTorch DCP adapters: ``torch.distributed.checkpoint`` save/load onto SuperFS via ckpt's storage.

    import torch.distributed.checkpoint as dcp
    from ckpt.dcp import CkptWriter, CkptReader
    dcp.save(state_dict, storage_writer=CkptWriter("superfs://host:port/run", step=100))
    dcp.load(state_dict, storage_reader=CkptReader("superfs://host:port/run"))

DCP's planners decide what each rank writes (and dedupe replicated
tensors); these classes decide how: one data file per rank with the
placement-balanced chunk order, per-block checksums, and ckpt's JSON
manifest (never pickle) committed last by rename. The manifest is an
ordinary ckpt manifest, so ``ckpt ls/verify/rm`` work on DCP checkpoints
and ``ckpt.load`` reads their tensors; DCP's own metadata that is not
already there (planner data, version) rides in ``extra["torch_dcp"]``.
Non-tensor values are pickled by DCP itself (``torch.save``) and stored
as opaque blobs; the manifest stays JSON.

With ``step`` the path is a checkpoint root (``step-N`` directories and
a ``latest`` pointer, as ``ckpt.save`` uses); without it, the path is the
checkpoint directory itself, as with FileSystemWriter.
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import uuid
from typing import Any, Iterator

import numpy as np

from superfs.extras import require

try:
    import torch
    from torch.distributed.checkpoint.metadata import (BytesStorageMetadata, ChunkStorageMetadata, Metadata,
                                                       MetadataIndex, StorageMeta, TensorProperties,
                                                       TensorStorageMetadata)
    from torch.distributed.checkpoint.planner import (LoadItemType, LoadPlan, LoadPlanner, SavePlan,
                                                      SavePlanner, WriteItemType)
    from torch.distributed.checkpoint.storage import StorageReader, StorageWriter, WriteResult
    from torch.futures import Future
except ModuleNotFoundError:
    require("torch", "ckpt.dcp (PyTorch DCP adapters)")  # torch missing: one line naming the extra
    raise

from ckpt.boxes import Box
from ckpt.catalog import clean_after_commit, read_manifest, resolve, set_latest, step_dir
from ckpt.checksum import DEFAULT_BLOCK_SIZE
from ckpt.dtypes import as_numpy, writable_view
from ckpt.errors import CheckpointExistsError
from ckpt.manifest import MANIFEST_NAME, FileEntry, Item, Manifest, Piece
from ckpt.reader import PieceReader, ReadTask
from ckpt.save_planner import rank_file_name
from ckpt.state import Container
from ckpt.storage import Storage, join, open_storage
from ckpt.writer import write_rank_file

log = logging.getLogger(__name__)

EXTRA_KEY = "torch_dcp"


def torch_dtype(name: str) -> torch.dtype:
    if hasattr(torch, name) and isinstance(getattr(torch, name), torch.dtype):
        return getattr(torch, name)
    return torch.from_numpy(np.empty(0, dtype=np.dtype(name))).dtype


def dtype_name(dtype: torch.dtype) -> str:
    return as_numpy(torch.empty(0, dtype=dtype))[1]


def fqn_of(item: Item) -> str:
    """DCP's flat key for a ckpt item: path parts joined by '.', as DCP flattens nested dicts."""
    return ".".join(str(p) for p in item.path)


def _jsonable(obj: Any) -> Any:
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        pass
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    raise TypeError(f"planner data of type {type(obj).__name__} cannot be stored as JSON")


class CkptWriter(StorageWriter):
    def __init__(self, path: Any = None, *, step: int | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
                 keep_last: int | None = None, overwrite: bool = False) -> None:
        super().__init__()
        self.location = path
        self.step = step
        self.block_size = block_size
        self.keep_last = keep_last
        self.overwrite = overwrite
        self.token = uuid.uuid4().hex[:16]
        self.rank = 0

    # -- where things go
    @property
    def storage(self) -> Storage:
        return open_storage(self.location)

    @property
    def dir(self) -> str:
        return step_dir(self.step) if self.step is not None else ""

    def reset(self, checkpoint_id: Any = None) -> None:
        if checkpoint_id:
            self.location = checkpoint_id
        self.token = uuid.uuid4().hex[:16]

    def set_up_storage_writer(self, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        self.is_coordinator = is_coordinator
        self.rank = kwargs.get("rank") or 0

    def prepare_local_plan(self, plan: SavePlan) -> SavePlan:
        return plan

    def prepare_global_plan(self, plans: list[SavePlan]) -> list[SavePlan]:
        storage = self.storage
        if not self.overwrite and storage.exists(join(self.dir, MANIFEST_NAME)):
            raise CheckpointExistsError(f"a checkpoint already exists at {storage.url}/{self.dir}")
        return [dataclasses.replace(p, storage_data={"rank": i, "token": self.token}) for i, p in enumerate(plans)]

    def write_data(self, plan: SavePlan, planner: SavePlanner) -> Future[list[WriteResult]]:
        rank, token = plan.storage_data["rank"], plan.storage_data["token"]
        storage = self.storage
        storage.makedirs(self.dir)
        name = rank_file_name(token, rank)
        blobs: dict[int, bytes] = {}
        sizes = []
        for i, item in enumerate(plan.items):
            if item.type == WriteItemType.BYTE_IO:
                data = planner.resolve_data(item)
                blobs[i] = data.getvalue() if isinstance(data, io.BytesIO) else bytes(data)
                sizes.append(len(blobs[i]))
            else:  # the chunk's bytes (tensor_storage_size() counts the whole global tensor)
                td = item.tensor_data
                assert td is not None
                sizes.append(math.prod(td.chunk.sizes) * torch.empty(0, dtype=td.properties.dtype).element_size())

        def sources() -> Iterator[np.ndarray]:
            for i, item in enumerate(plan.items):
                if i in blobs:
                    yield np.frombuffer(blobs.pop(i), dtype=np.uint8)
                else:
                    yield as_numpy(planner.resolve_data(item))[0]

        results: list[WriteResult] = []
        if plan.items:
            report = write_rank_file(storage, join(self.dir, name), name, rank, sources(), sum(sizes),
                                     self.block_size)
            offset = 0
            for i, (item, n, sums) in enumerate(zip(plan.items, sizes, report["checksums"])):
                sd = {"file": name, "offset": offset, "nbytes": n, "checksums": sums}
                if i == 0:
                    sd["file_entry"] = report["file"]
                results.append(WriteResult(index=item.index, size_in_bytes=n, storage_data=sd))
                offset += n
        fut: Future[list[WriteResult]] = Future()
        fut.set_result(results)
        return fut

    def finish(self, metadata: Metadata, results: list[list[WriteResult]]) -> None:
        storage = self.storage
        by_index: dict[MetadataIndex, dict[str, Any]] = {}
        files: dict[str, FileEntry] = {}
        for rank_results in results:
            for wr in rank_results:
                by_index[wr.index] = wr.storage_data
                fe = wr.storage_data.get("file_entry")
                if fe:
                    files[fe["name"]] = FileEntry.from_json(fe["name"], fe)
        items: list[Item] = []
        for fqn, md in metadata.state_dict_metadata.items():
            if isinstance(md, BytesStorageMetadata):
                sd = by_index[MetadataIndex(fqn)]
                items.append(Item((fqn,), "blob", pieces=[Piece(Box((), ()), sd["file"], sd["offset"], sd["nbytes"],
                                                                 sd["checksums"])]))
                continue
            pieces = []
            for chunk in md.chunks:
                sd = by_index[MetadataIndex(fqn, chunk.offsets)]
                pieces.append(Piece(Box(tuple(chunk.offsets), tuple(chunk.sizes)), sd["file"], sd["offset"],
                                    sd["nbytes"], sd["checksums"]))
            items.append(Item((fqn,), "array", dtype_name(md.properties.dtype), tuple(md.size), pieces))
        extra = {EXTRA_KEY: {"version": metadata.version, "planner_data": _jsonable(metadata.planner_data),
                             "requires_grad": [f for f, md in metadata.state_dict_metadata.items()
                                               if isinstance(md, TensorStorageMetadata)
                                               and md.properties.requires_grad]}}
        manifest = Manifest(step=self.step or 0, world_size=len(results), token=self.token,
                            block_size=self.block_size, items=items,
                            containers=[Container((), "dict", tuple(metadata.state_dict_metadata))],
                            files=files, extra=extra)
        storage.sync_dir(self.dir)
        storage.write_atomic(join(self.dir, MANIFEST_NAME), manifest.to_bytes())  # the commit point
        if self.step is not None:
            set_latest(storage, self.step)
            try:
                clean_after_commit(storage, manifest, self.keep_last)
            except OSError as e:
                log.warning("cleanup after committing step %d failed: %s", self.step, e)

    def storage_meta(self) -> StorageMeta | None:
        return StorageMeta(checkpoint_id=str(self.location), save_id=self.token)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: Any) -> bool:
        return str(checkpoint_id).startswith("superfs://")


class CkptReader(StorageReader):
    def __init__(self, path: Any = None, *, step: int | None = None, threads: int = 4) -> None:
        super().__init__()
        self.location = path
        self.step = step
        self.threads = threads
        self.load_id = uuid.uuid4().hex[:16]

    def reset(self, checkpoint_id: Any = None) -> None:
        if checkpoint_id:
            self.location = checkpoint_id
        self.load_id = uuid.uuid4().hex[:16]

    def _manifest(self) -> tuple[Storage, str, Manifest]:
        storage = open_storage(self.location)
        d, _ = resolve(storage, self.step)
        return storage, d, read_manifest(storage, d)

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        _, _, manifest = self._manifest()
        extra = manifest.extra.get(EXTRA_KEY, {})
        grads = set(extra.get("requires_grad", ()))
        sd_md: dict[str, Any] = {}
        for item in manifest.items:
            fqn = fqn_of(item)
            if item.kind == "blob":
                sd_md[fqn] = BytesStorageMetadata()
            elif item.kind == "array":
                props = TensorProperties(dtype=torch_dtype(item.dtype), requires_grad=fqn in grads)
                sd_md[fqn] = TensorStorageMetadata(props, torch.Size(item.global_shape), [
                    ChunkStorageMetadata(torch.Size(p.box.offsets), torch.Size(p.box.shape)) for p in item.pieces])
        planner_data = extra.get("planner_data")
        if isinstance(planner_data, dict):
            planner_data = {k: tuple(v) if isinstance(v, list) else v for k, v in planner_data.items()}
        return Metadata(state_dict_metadata=sd_md, planner_data=planner_data, storage_data=None,
                        storage_meta=StorageMeta(checkpoint_id=str(self.location), load_id=self.load_id),
                        version=extra.get("version"))

    def set_up_storage_reader(self, metadata: Metadata, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        self.storage, self.dir, self.manifest = self._manifest()
        self.pieces: dict[MetadataIndex, tuple[Item, Piece]] = {}
        for item in self.manifest.items:
            for p in item.pieces:
                key = MetadataIndex(fqn_of(item), p.box.offsets if item.kind == "array" else None)
                self.pieces[key] = (item, p)

    def prepare_local_plan(self, plan: LoadPlan) -> LoadPlan:
        return plan

    def prepare_global_plan(self, plans: list[LoadPlan]) -> list[LoadPlan]:
        return plans

    def read_data(self, plan: LoadPlan, planner: LoadPlanner) -> Future[None]:
        reader = PieceReader(self.storage, self.dir, self.manifest, threads=self.threads)
        try:
            tensor_reqs = []
            tasks = []
            for req in plan.items:
                key = MetadataIndex(req.storage_index.fqn, req.storage_index.offset)
                item, piece = self.pieces[key]
                if req.type == LoadItemType.BYTE_IO:
                    planner.load_bytes(req, io.BytesIO(reader.blob(item)))
                    continue
                target = planner.resolve_tensor(req).detach()
                dest, _, commit = writable_view(target)
                offsets = tuple(o + s for o, s in zip(piece.box.offsets, req.storage_offsets))
                region = Box(offsets, tuple(req.lengths))
                tasks.append(ReadTask(item, piece, region, dest, region))
                tensor_reqs.append((req, target, commit))
            reader.run(tasks)
            for req, target, commit in tensor_reqs:
                commit()
                planner.commit_tensor(req, target)
        finally:
            reader.close()
        fut: Future[None] = Future()
        fut.set_result(None)
        return fut

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: Any) -> bool:
        return str(checkpoint_id).startswith("superfs://")
