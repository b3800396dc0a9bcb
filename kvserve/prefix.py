"""Block keys: prefix-chained hashes over fixed-size blocks of token ids.

A KV cache block is only reusable behind the exact same prefix, so the key
of block ``i`` covers its own tokens *and* everything before it: it hashes
the key of block ``i-1`` together with block ``i``'s tokens. Two prompts that
share their first ``k`` blocks therefore share their first ``k`` keys, and a
store can answer "how many leading blocks do you hold" with one lookup per
key.

The chain starts from a seed that covers the :class:`Namespace` (model,
dtype, layout, tensor-parallel rank and size) and the block size, so the KV
bytes of one model (or one TP shard) can never be served to another.

Hashes are deterministic across processes, hosts and runs: xxh3-128
(16-byte keys, the default, fast) or sha256 (32-byte keys, for stores shared
by mutually distrusting tenants). Python's salted ``hash()`` is never used.
Only full blocks are keyed: a trailing partial block is recomputed by the
serving engine, not cached.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import xxhash

KEY_SIZES = {"xxh3": 16, "sha256": 32}
VALID_KEY_SIZES = frozenset(KEY_SIZES.values())
DEFAULT_BLOCK_SIZE = 512
MAX_NAMESPACE_CHARS = 200

# Model names look like "meta-llama/Llama-3.1-8B"; nothing here may need quoting
# in a path component except "/", which the SuperFS tier escapes.
_NAME_RE = re.compile(r"[A-Za-z0-9._:/@+=-]+")
_PART_RE = re.compile(r"[A-Za-z0-9._:@+=-]+")


@dataclass(frozen=True)
class Namespace:
    """Which KV bytes a key may stand for: one model, dtype, layout and TP shard."""

    model: str
    dtype: str = "bf16"
    layout: str = "default"
    tp_rank: int = 0
    tp_size: int = 1

    def __post_init__(self) -> None:
        if not self.model or not _NAME_RE.fullmatch(self.model):
            raise ValueError(f"bad model name {self.model!r}: use letters, digits and ._:/@+=-")
        for field in ("dtype", "layout"):
            value = getattr(self, field)
            if not value or not _PART_RE.fullmatch(value):
                raise ValueError(f"bad {field} {value!r}: use letters, digits and ._:@+=-")
        if not (0 <= self.tp_rank < self.tp_size):
            raise ValueError(f"tp_rank {self.tp_rank} must be in [0, tp_size={self.tp_size})")
        if len(self.name) > MAX_NAMESPACE_CHARS:
            raise ValueError(f"namespace longer than {MAX_NAMESPACE_CHARS} characters")

    @property
    def name(self) -> str:
        """The canonical string form, e.g. ``llama-3-8b/bf16/nhd/tp0of8``."""
        return f"{self.model}/{self.dtype}/{self.layout}/tp{self.tp_rank}of{self.tp_size}"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, name: str) -> "Namespace":
        """Inverse of :attr:`name`."""
        try:
            model, dtype, layout, tp = name.rsplit("/", 3)
            rank, size = tp.removeprefix("tp").split("of")
            if not tp.startswith("tp"):
                raise ValueError
            return cls(model, dtype, layout, int(rank), int(size))
        except ValueError:
            raise ValueError(f"not a namespace name: {name!r} (want MODEL/DTYPE/LAYOUT/tpRANKofSIZE)") from None


def namespace_name(namespace: Namespace | str) -> str:
    """The wire form of a namespace; plain strings are checked, not parsed."""
    if isinstance(namespace, Namespace):
        return namespace.name
    check_namespace_name(namespace)
    return namespace


def check_namespace_name(name: Any) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_NAMESPACE_CHARS or not _NAME_RE.fullmatch(name):
        raise ValueError(f"bad namespace {name!r}: 1-{MAX_NAMESPACE_CHARS} characters of letters, digits and ._:/@+=-")


def check_key(key: Any) -> bytes:
    """A key is 16 (xxh3) or 32 (sha256) bytes; anything else is malformed."""
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError(f"a key is bytes, not {type(key).__name__}")
    key = bytes(key)
    if len(key) not in VALID_KEY_SIZES:
        raise ValueError(f"a key is 16 or 32 bytes, not {len(key)}")
    return key


def chain_seed(namespace: Namespace | str, block_size: int, algo: str) -> bytes:
    """The value the chain starts from: covers namespace, block size and algorithm."""
    text = f"kvserve/v1\0{namespace_name(namespace)}\0{block_size}\0{algo}".encode()
    if algo == "sha256":
        return hashlib.sha256(text).digest()
    return xxhash.xxh3_128_digest(text)


def _token_bytes(token_ids: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(token_ids)
    if arr.ndim != 1:
        raise ValueError(f"token_ids must be one-dimensional, not shape {arr.shape}")
    if arr.size == 0:
        return arr.astype("<u4")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"token_ids must be integers, not {arr.dtype}")
    if int(arr.min()) < 0 or int(arr.max()) >= 1 << 32:
        raise ValueError("token ids must be in [0, 2**32)")
    # one fixed width and byte order: the same ids hash the same on every host
    return np.ascontiguousarray(arr, dtype="<u4")


def block_hashes(token_ids: Sequence[int] | np.ndarray, *, block_size: int = DEFAULT_BLOCK_SIZE,
                 namespace: Namespace | str, algo: str = "xxh3") -> list[bytes]:
    """Keys of the full ``block_size``-token blocks of ``token_ids``, chained.

    ``keys[i]`` depends on tokens ``[0, (i+1)*block_size)`` and the namespace;
    a trailing partial block gets no key.
    """
    if algo not in KEY_SIZES:
        raise ValueError(f"algo must be one of {sorted(KEY_SIZES)}, not {algo!r}")
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, not {block_size!r}")
    tokens = _token_bytes(token_ids)
    raw = memoryview(tokens.view(np.uint8))  # type: ignore[arg-type]
    step = block_size * 4
    prev = chain_seed(namespace, block_size, algo)
    keys: list[bytes] = []
    for i in range(len(tokens) // block_size):
        block = raw[i * step:(i + 1) * step]
        if algo == "sha256":
            h = hashlib.sha256(prev)
            h.update(block)
            prev = h.digest()
        else:
            x = xxhash.xxh3_128(prev)
            x.update(block)
            prev = x.digest()
        keys.append(prev)
    return keys
