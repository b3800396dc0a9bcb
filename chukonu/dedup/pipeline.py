"""minhash_dedup: near-duplicate removal on a chukonu DataFrame, as four small steps.

1. signatures: ``mapInArrow(SignatureStep)`` -> (id, band key) rows;
2. buckets: shuffle by band key, ``mapInArrow(BucketStep)`` -> candidate pairs;
3. (optional) verify: exact Jaccard of each candidate pair;
4. components: union-find on the driver -> ids to drop; a filter keeps the rest.

Ids are ``monotonically_increasing_id`` of the input (or the integer
``id_column`` given): the same rows get the same ids when the input is read
again for the final filter, so nothing has to be cached, and the kept
document of each group is the first in input order.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from chukonu.dedup.buckets import EDGE_SCHEMA, BucketStep
from chukonu.engine.expressions import ColRef
from chukonu.dedup.components import duplicates_to_drop, unique_pairs
from chukonu.dedup.config import MinHashConfig
from chukonu.dedup.signatures import BAND_SCHEMA, SignatureStep
from chukonu.dedup.verify import verify_pairs

log = logging.getLogger(__name__)


@dataclass
class DedupStats:
    documents_with_bands: int = 0
    candidate_pairs: int = 0
    verified_pairs: int = 0
    dropped: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


class KeepStep:
    """mapInArrow function: drop rows whose id is in a sorted array of ids."""

    def __init__(self, drop: np.ndarray, id_column: str, schema: pa.Schema) -> None:
        self.drop = np.asarray(drop, dtype=np.int64)
        self.id_column, self.schema = id_column, schema
        self.__name__ = "minhash_keep"

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            ids = b.column(b.schema.get_field_index(self.id_column)).to_numpy(zero_copy_only=False)
            if len(self.drop):
                pos = np.searchsorted(self.drop, ids)
                hit = (pos < len(self.drop)) & (self.drop[np.minimum(pos, len(self.drop) - 1)] == ids)
                b = b.filter(pa.array(~hit))
            if b.num_rows:
                yield b


BUCKET_BYTES = 16 << 20   # band rows per bucket task: about 40 bytes of memory per byte of shuffle


def _band_shuffle(sig: Any, num_partitions: int | None) -> Any:
    """sig.repartition("band_key"), with reduce partitions merged only up to BUCKET_BYTES."""
    from chukonu.engine import plan as P
    from chukonu.sql import analysis
    if num_partitions:
        return sig.repartition(num_partitions, "band_key")
    key = analysis.bind(ColRef("band_key"), sig._plan.schema)
    n = sig._engine.shuffle_partitions
    return sig._new(P.Repartition(sig._plan, n, [key], adaptive=True, target_bytes=BUCKET_BYTES))


def candidate_pairs(df: Any, config: MinHashConfig, num_partitions: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1 and 2 on a DataFrame that has the id and text columns."""
    sig = df.select(config.id_column, config.column).mapInArrow(SignatureStep(config), BAND_SCHEMA)
    shuffled = _band_shuffle(sig, num_partitions)
    edges = shuffled.mapInArrow(BucketStep(config), EDGE_SCHEMA).toArrow()
    src = edges.column("src").to_numpy()
    dst = edges.column("dst").to_numpy()
    return unique_pairs(src, dst)


def minhash_dedup(df: Any, column: str = "text", threshold: float = 0.7, num_perm: int = 256, ngram: int = 5,
                  seed: int = 42, bands: int | None = None, rows: int | None = None, verify: bool = False,
                  id_column: str | None = None, num_partitions: int | None = None,
                  return_stats: bool = False, tokenizer: str = "bytes") -> Any:
    r"""The DataFrame of ``df``'s rows that are not near-duplicates of an earlier row.

    Two rows are near-duplicates when the MinHash-LSH estimate of the
    Jaccard similarity of their word ``ngram`` shingles says so at
    ``threshold`` (``bands`` x ``rows`` chosen for it unless given); with
    ``verify``, only when their exact Jaccard similarity is >= ``threshold``.
    ``tokenizer`` picks the words: "bytes" (default) or "nonword" (text-dedup's
    split on Unicode ``\W``; see ``MinHashConfig``).
    """
    from chukonu.sql import functions as F

    started = time.perf_counter()
    stats = DedupStats()
    if column not in df.columns:
        from chukonu.errors import AnalysisException
        raise AnalysisException(f"minhash_dedup: no column {column!r} in {df.columns}")
    if id_column is None:
        id_column = "__cid"
        ided = df.withColumn(id_column, F.monotonically_increasing_id())
    else:
        ided = df
    config = MinHashConfig(column=column, threshold=threshold, num_perm=num_perm, ngram=ngram, seed=seed,
                           bands=bands, rows=rows, verify=verify, id_column=id_column, tokenizer=tokenizer)
    src, dst = candidate_pairs(ided, config, num_partitions)
    stats.candidate_pairs = len(src)
    stats.seconds["candidates"] = time.perf_counter() - started
    if verify and len(src):
        t0 = time.perf_counter()
        involved = np.unique(np.concatenate([src, dst]))
        pair_docs = ided.select(id_column, column)
        docs = pair_docs.mapInArrow(KeepOnly(involved, id_column), _arrow(pair_docs)).toArrow()
        keep = verify_pairs(src, dst, docs.column(0).to_numpy(), docs.column(1), config)
        src, dst = src[keep], dst[keep]
        stats.seconds["verify"] = time.perf_counter() - t0
    stats.verified_pairs = len(src)
    drop = duplicates_to_drop(src, dst)
    stats.dropped = len(drop)
    kept = ided.mapInArrow(KeepStep(drop, id_column, _arrow(ided)), _arrow(ided))
    if id_column == "__cid":
        kept = kept.drop("__cid")
    stats.seconds["plan"] = time.perf_counter() - started
    log.info("minhash_dedup: %d candidate pairs, %d after verification, %d rows dropped", stats.candidate_pairs,
             stats.verified_pairs, stats.dropped)
    return (kept, stats) if return_stats else kept


class KeepOnly:
    """mapInArrow function: keep rows whose id is in a sorted array (the documents to verify)."""

    def __init__(self, ids: np.ndarray, id_column: str) -> None:
        self.ids, self.id_column = np.asarray(ids, dtype=np.int64), id_column
        self.__name__ = "minhash_fetch"

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            ids = b.column(b.schema.get_field_index(self.id_column)).to_numpy(zero_copy_only=False)
            pos = np.searchsorted(self.ids, ids)
            hit = (pos < len(self.ids)) & (self.ids[np.minimum(pos, max(len(self.ids) - 1, 0))] == ids)
            if hit.any():
                yield b.filter(pa.array(hit))


def _arrow(df: Any) -> pa.Schema:
    from chukonu.engine.plan import to_arrow_schema
    return to_arrow_schema(df._plan.schema)
