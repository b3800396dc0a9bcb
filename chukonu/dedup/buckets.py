"""Step 2: (id, band key) rows of one shuffle partition -> candidate pairs (src, dst).

Run after a shuffle by band key, so every row of a bucket is in the same
partition. Rows are sorted by key; each bucket yields star edges from its
smallest id (enough for connected components), or every pair of the
bucket when candidates will be verified.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa

from chukonu.dedup.config import MinHashConfig

EDGE_SCHEMA = pa.schema([pa.field("src", pa.int64()), pa.field("dst", pa.int64())])


def bucket_edges(ids: np.ndarray, keys: np.ndarray, config: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    from chukonu.native.minhash import bucket_edges as kernel

    order = np.argsort(keys)   # the kernel finds each bucket's smallest id itself: no need to sort ids
    return kernel(keys[order], ids[order], config.verify, config.max_bucket)


class BucketStep:
    """mapInArrow function over a whole partition of band rows."""

    def __init__(self, config: MinHashConfig) -> None:
        self.config = config
        self.__name__ = "minhash_buckets"

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        ids_parts, key_parts = [], []
        for b in batches:
            if b.num_rows:
                ids_parts.append(b.column(b.schema.get_field_index("id")).to_numpy(zero_copy_only=False))
                key_parts.append(b.column(b.schema.get_field_index("band_key")).to_numpy(zero_copy_only=False))
        if not ids_parts:
            return
        ids = np.concatenate(ids_parts).astype(np.int64, copy=False)
        keys = np.concatenate(key_parts).astype(np.int64, copy=False)
        del ids_parts, key_parts   # the batches' buffers can go before the sort allocates
        src, dst = bucket_edges(ids, keys, self.config)
        if len(src):
            yield pa.RecordBatch.from_arrays([pa.array(src), pa.array(dst)], schema=EDGE_SCHEMA)
