"""Step 1: documents -> (id, band key) rows, one per band of each document with words.

``SignatureStep`` is a plain function of an iterator of Arrow record
batches, so the same object runs as a chukonu task and inside PySpark's
``mapInArrow``. Band keys are XXH64 values stored as signed longs (Spark
has no unsigned type); equal keys mean equal bands.
"""
from __future__ import annotations

import logging
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.dedup.config import MinHashConfig

log = logging.getLogger(__name__)

BAND_SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("band_key", pa.int64())])


def string_buffers(a: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets as int64, data bytes, validity) of a string array, without copying the data."""
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    if pa.types.is_string_view(a.type) if hasattr(pa.types, "is_string_view") else False:
        a = a.cast(pa.large_string())
    if not (pa.types.is_string(a.type) or pa.types.is_large_string(a.type)):
        a = a.cast(pa.string())
    wide = pa.types.is_large_string(a.type)
    bufs = a.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64 if wide else np.int32)[a.offset: a.offset + len(a) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and len(bufs[2]) else \
        np.zeros(1, dtype=np.uint8)
    valid = pc.is_valid(a).to_numpy(zero_copy_only=False)
    return offsets.astype(np.int64), data, valid


def signatures(texts: pa.Array, config: MinHashConfig, keep_signatures: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(signatures uint32 docs x num_perm, band keys uint64 docs x bands, has_words bool).

    Without ``keep_signatures`` the first array is a one-row scratch buffer
    and only the band keys are computed for every document.
    """
    from chukonu.native.minhash import signatures_and_bands, signatures_from_words

    bands, rows = config.band_rows
    a, b = config.permutations()
    if config.tokenizer == "nonword":
        from chukonu.dedup.tokens import word_hashes
        starts, hashes, valid = word_hashes(texts)
        n = len(starts) - 1
    else:
        offsets, data, valid = string_buffers(texts)
        n = len(offsets) - 1
    sig = np.empty((n if keep_signatures else 1, config.num_perm), dtype=np.uint32)
    keys = np.zeros((n, bands), dtype=np.uint64)
    has = np.zeros(n, dtype=np.bool_)
    if config.tokenizer == "nonword":
        signatures_from_words(starts, hashes, valid, config.ngram, a, b, bands, rows, sig, keys, has)
    else:
        signatures_and_bands(offsets, data, valid, config.ngram, a, b, bands, rows, sig, keys, has)
    return sig, keys, has


class SignatureStep:
    """mapInArrow function: batches with (id, text) columns -> (id, band_key) rows."""

    def __init__(self, config: MinHashConfig, id_column: str | None = None, text_column: str | None = None) -> None:
        self.config = config
        self.id_column = id_column or config.id_column
        self.text_column = text_column or config.column
        self.__name__ = "minhash_signatures"

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        bands, _ = self.config.band_rows
        for batch in batches:
            if batch.num_rows == 0:
                continue
            ids = batch.column(batch.schema.get_field_index(self.id_column)).to_numpy(zero_copy_only=False)
            _, keys, has = signatures(batch.column(batch.schema.get_field_index(self.text_column)), self.config,
                                      keep_signatures=False)
            if not has.any():
                continue
            out_ids = np.repeat(ids[has].astype(np.int64), bands)
            out_keys = keys[has].reshape(-1).view(np.int64)
            yield pa.RecordBatch.from_arrays([pa.array(out_ids), pa.array(out_keys)], schema=BAND_SCHEMA)
