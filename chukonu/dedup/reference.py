"""The same MinHash-LSH dedup written the straightforward way: one document at a time in Python.

Words, shingles, permutations and band keys follow exactly the definitions
in ``chukonu.native.minhash`` (regex words, ``xxhash`` calls, a numpy
signature per document, dict buckets, a dict union-find), so on any corpus
it must keep exactly the rows chukonu keeps. Tests use it to check the
compiled kernels; the PySpark baseline of ``bench/dedup.py`` runs these
per-document functions inside ``mapInArrow``, which is how such pipelines
are usually written.
"""
from __future__ import annotations

import re
import struct
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import xxhash

from chukonu.dedup.config import MinHashConfig

WORD = re.compile(rb"[0-9A-Za-z_\x80-\xff]+")


def words(text: str, tokenizer: str = "bytes") -> list[bytes]:
    if tokenizer == "nonword":
        from chukonu.dedup.tokens import python_words
        return python_words(text)
    return [w.lower() for w in WORD.findall(text.encode("utf-8"))]


def shingle_hashes(text: str, ngram: int, tokenizer: str = "bytes") -> list[int]:
    wh = [xxhash.xxh64_intdigest(w) for w in words(text, tokenizer)]
    if not wh:
        return []
    if len(wh) < ngram:
        return [xxhash.xxh64_intdigest(struct.pack(f"<{len(wh)}Q", *wh))]
    return [xxhash.xxh64_intdigest(struct.pack(f"<{ngram}Q", *wh[i:i + ngram])) for i in range(len(wh) - ngram + 1)]


def signature(shingles: list[int], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimum of (a*h + b) mod 2**64 >> 32 over the shingles, for every permutation at once."""
    h = np.array(shingles, dtype=np.uint64)[:, None]
    with np.errstate(over="ignore"):
        return ((a[None, :] * h + b[None, :]) >> np.uint64(32)).min(axis=0).astype(np.uint32)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> list[int]:
    out = []
    for j in range(bands):
        k = xxhash.xxh64_intdigest(sig[j * rows:(j + 1) * rows].astype("<u8").tobytes(), j)
        out.append(k - (1 << 64) if k >= 1 << 63 else k)
    return out


def document_bands(text: str | None, config: MinHashConfig, a: np.ndarray, b: np.ndarray) -> list[int]:
    if text is None:
        return []
    sh = shingle_hashes(text, config.ngram, config.tokenizer)
    if not sh:
        return []
    bands, rows = config.band_rows
    return band_keys(signature(sh, a, b), bands, rows)


class PerDocumentSignatures:
    """A mapInArrow function computing band keys document by document (the usual PySpark way)."""

    def __init__(self, config: MinHashConfig, id_column: str = "id", text_column: str = "text") -> None:
        self.config, self.id_column, self.text_column = config, id_column, text_column
        self.__name__ = "per_document_signatures"

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        a, b = self.config.permutations()
        for batch in batches:
            ids = batch.column(batch.schema.get_field_index(self.id_column)).to_pylist()
            texts = batch.column(batch.schema.get_field_index(self.text_column)).to_pylist()
            out_ids, out_keys = [], []
            for i, t in zip(ids, texts):
                for k in document_bands(t, self.config, a, b):
                    out_ids.append(i)
                    out_keys.append(k)
            yield pa.RecordBatch.from_arrays([pa.array(out_ids, pa.int64()), pa.array(out_keys, pa.int64())],
                                             names=["id", "band_key"])


def dedup(texts: Iterable[str | None], config: MinHashConfig) -> list[int]:
    """Indices of the documents kept (the first of each group of near-duplicates)."""
    a, b = config.permutations()
    buckets: dict[int, list[int]] = {}
    texts = list(texts)
    for i, t in enumerate(texts):
        for k in document_bands(t, config, a, b):
            buckets.setdefault(k, []).append(i)
    parent = list(range(len(texts)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for members in buckets.values():
        for m in members[1:]:
            ra, rb = find(members[0]), find(m)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return [i for i in range(len(texts)) if find(i) == i]
