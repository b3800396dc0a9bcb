"""Optional step: keep only candidate pairs whose exact Jaccard similarity reaches the threshold.

LSH candidates include some pairs below the threshold (the S-curve is not
a step); with ``verify`` each pair's shingle sets are compared exactly.
Only documents that appear in a candidate pair are tokenised again.
"""
from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from chukonu.dedup.config import MinHashConfig
from chukonu.dedup.signatures import string_buffers

log = logging.getLogger(__name__)


def shingle_sets(texts: pa.Array, config: MinHashConfig) -> list[np.ndarray]:
    from chukonu.native.minhash import shingle_set

    if config.tokenizer == "nonword":
        from chukonu.dedup.reference import shingle_hashes
        return [np.unique(np.array(shingle_hashes(t, config.ngram, config.tokenizer), dtype=np.uint64))
                if t is not None else np.zeros(0, np.uint64) for t in texts.to_pylist()]
    offsets, data, valid = string_buffers(texts)
    return [shingle_set(offsets, data, i, config.ngram) if valid[i] else np.zeros(0, np.uint64)
            for i in range(len(offsets) - 1)]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def verify_pairs(src: np.ndarray, dst: np.ndarray, ids: np.ndarray, texts: pa.Array,
                 config: MinHashConfig) -> np.ndarray:
    """A mask over the pairs: True where the two documents' Jaccard is >= threshold."""
    sets = shingle_sets(texts, config)
    where = {int(i): k for k, i in enumerate(ids)}
    keep = np.zeros(len(src), dtype=bool)
    for e, (s, d) in enumerate(zip(src.tolist(), dst.tolist())):
        keep[e] = jaccard(sets[where[s]], sets[where[d]]) >= config.threshold
    log.debug("verification kept %d of %d candidate pairs", int(keep.sum()), len(keep))
    return keep
