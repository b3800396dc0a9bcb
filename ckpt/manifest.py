"""The manifest: a JSON document that is the whole truth about one committed checkpoint.

It lists every item (path, dtype, global shape, and the pieces that hold
it: box, file, byte offset, length, per-block checksums), every container
of the state's nesting, and every data file (owning rank, logical size and,
on SuperFS, which physical chunk holds each logical chunk). It is written
last and its atomic rename is the commit point. JSON, never pickle: it is
readable by people and by any language, and loading it cannot run code.

A manifest from a newer format version is refused (FutureVersionError):
guessing at fields we do not know could silently load wrong bytes.
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

from ckpt.boxes import Box
from ckpt.errors import FutureVersionError, ManifestError
from ckpt.state import SCALAR_TYPES, Container, Path, key_str, path_from_json, path_id

FORMAT = "ckpt"
VERSION = 1
MANIFEST_NAME = "manifest.json"


@dataclass
class FileEntry:
    """One data file: its bytes are a logical stream, remapped chunk by chunk on SuperFS."""

    name: str
    rank: int
    size: int
    chunk_size: int = 0
    chunk_map: list[int] | None = None  # logical chunk i lives in physical chunk chunk_map[i]

    def physical(self, offset: int, length: int) -> list[tuple[int, int]]:
        """Physical (offset, length) runs holding logical bytes [offset, offset+length)."""
        if not self.chunk_map:
            return [(offset, length)] if length else []
        cs = self.chunk_size
        runs: list[tuple[int, int]] = []
        pos, end = offset, offset + length
        while pos < end:
            idx, off = divmod(pos, cs)
            take = min(cs - off, end - pos)
            phys = self.chunk_map[idx] * cs + off
            if runs and runs[-1][0] + runs[-1][1] == phys:
                runs[-1] = (runs[-1][0], runs[-1][1] + take)
            else:
                runs.append((phys, take))
            pos += take
        return runs

    @property
    def physical_size(self) -> int:
        if not self.chunk_map or not self.size:
            return self.size
        last = (self.size - 1) // self.chunk_size
        return self.chunk_map[last] * self.chunk_size + self.size - last * self.chunk_size

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"rank": self.rank, "size": self.size}
        if self.chunk_map:
            d["chunk_size"] = self.chunk_size
            d["chunk_map"] = self.chunk_map
        return d

    @staticmethod
    def from_json(name: str, d: dict[str, Any]) -> "FileEntry":
        return FileEntry(name, int(d["rank"]), int(d["size"]), int(d.get("chunk_size", 0)),
                         [int(i) for i in d["chunk_map"]] if d.get("chunk_map") else None)


@dataclass
class Piece:
    """One stored block of an item: ``box`` of the global array, at ``offset`` in ``file``."""

    box: Box
    file: str
    offset: int
    nbytes: int
    checksums: list[str] = field(default_factory=list)  # xxh3-64 hex of each block_size block

    def to_json(self) -> dict[str, Any]:
        return {"offsets": list(self.box.offsets), "shape": list(self.box.shape), "file": self.file,
                "offset": self.offset, "nbytes": self.nbytes, "checksums": self.checksums}

    @staticmethod
    def from_json(d: dict[str, Any]) -> "Piece":
        return Piece(Box(tuple(d["offsets"]), tuple(d["shape"])), d["file"], int(d["offset"]),
                     int(d["nbytes"]), list(d["checksums"]))


@dataclass
class Item:
    """A leaf of the state: an array ("array"), a scalar ("scalar"), or opaque bytes ("blob")."""

    path: Path
    kind: str
    dtype: str = ""
    global_shape: tuple[int, ...] = ()
    pieces: list[Piece] = field(default_factory=list)
    value: Any = None

    @property
    def key(self) -> str:
        return key_str(self.path)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.pieces)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": list(self.path), "kind": self.kind}
        if self.kind == "scalar":
            d["value"] = encode_scalar(self.value)
        else:
            if self.kind == "array":
                d["dtype"] = self.dtype
                d["global_shape"] = list(self.global_shape)
            d["pieces"] = [p.to_json() for p in self.pieces]
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> "Item":
        kind = d["kind"]
        path = path_from_json(d["path"])
        if kind == "scalar":
            return Item(path, kind, value=decode_scalar(d["value"]))
        if kind not in ("array", "blob"):
            raise ManifestError(f"item {key_str(path)!r} has unknown kind {kind!r}")
        return Item(path, kind, d.get("dtype", ""), tuple(int(n) for n in d.get("global_shape", ())),
                    [Piece.from_json(p) for p in d["pieces"]])


@dataclass
class Manifest:
    step: int
    world_size: int
    token: str
    block_size: int
    items: list[Item]
    containers: list[Container]
    files: dict[str, FileEntry]
    created: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = VERSION

    def item_map(self) -> dict[str, Item]:
        return {path_id(i.path): i for i in self.items}

    @property
    def nbytes(self) -> int:
        return sum(i.nbytes for i in self.items)

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT, "version": self.version, "step": self.step, "world_size": self.world_size,
            "token": self.token, "block_size": self.block_size, "created": self.created,
            "containers": [{"path": list(c.path), "kind": c.kind, "keys": list(c.keys)} for c in self.containers],
            "files": {name: f.to_json() for name, f in sorted(self.files.items())},
            "items": [i.to_json() for i in self.items],
            "extra": self.extra,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @staticmethod
    def from_bytes(data: bytes, where: str = "manifest") -> "Manifest":
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ManifestError(f"{where} is not valid JSON: {e}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ManifestError(f"{where} is not a ckpt manifest")
        version = doc.get("version")
        if not isinstance(version, int) or version < 1:
            raise ManifestError(f"{where} has no valid format version")
        if version > VERSION:
            raise FutureVersionError(f"{where} has format version {version}, newer than this ckpt reads "
                                     f"({VERSION}): upgrade ckpt to load it")
        try:
            return Manifest(
                step=int(doc["step"]), world_size=int(doc["world_size"]), token=str(doc["token"]),
                block_size=int(doc["block_size"]), created=float(doc.get("created", 0.0)),
                items=[Item.from_json(i) for i in doc["items"]],
                containers=[Container(path_from_json(c["path"]), c["kind"], tuple(path_from_json(c["keys"])))
                            for c in doc["containers"]],
                files={name: FileEntry.from_json(name, f) for name, f in doc["files"].items()},
                extra=dict(doc.get("extra", {})), version=version)
        except (KeyError, TypeError, ValueError) as e:
            raise ManifestError(f"{where} is malformed: {type(e).__name__}: {e}") from None


def encode_scalar(v: Any) -> dict[str, Any]:
    """JSON for a scalar, exact: floats as hex so every bit (nan payloads aside) survives."""
    if isinstance(v, bool):
        return {"type": "bool", "value": v}
    if isinstance(v, int):
        return {"type": "int", "value": v}
    if isinstance(v, float):
        return {"type": "float", "value": v.hex()}
    if isinstance(v, str):
        return {"type": "str", "value": v}
    if isinstance(v, bytes):
        return {"type": "bytes", "value": base64.b64encode(v).decode()}
    if v is None:
        return {"type": "none"}
    raise TypeError(f"not a scalar: {type(v).__name__} (expected one of {SCALAR_TYPES})")


def decode_scalar(d: dict[str, Any]) -> Any:
    t = d.get("type")
    if t == "bool":
        return bool(d["value"])
    if t == "int":
        return int(d["value"])
    if t == "float":
        return float.fromhex(d["value"])
    if t == "str":
        return str(d["value"])
    if t == "bytes":
        return base64.b64decode(d["value"])
    if t == "none":
        return None
    raise ManifestError(f"unknown scalar type {t!r} in manifest")
