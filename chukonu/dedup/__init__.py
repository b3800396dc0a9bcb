"""chukonu.dedup: MinHash-LSH near-duplicate removal.

``minhash_dedup(df, column="text", threshold=0.7, num_perm=256, ngram=5)``
returns the kept rows of a chukonu DataFrame. The steps are plain
``mapInArrow`` functions configured by one ``MinHashConfig``, so they also
run inside real PySpark jobs (``chukonu.dedup.spark``).
"""
from __future__ import annotations

import chukonu.extra_check  # noqa: F401 - first: without the extra, one line naming it

from chukonu.dedup.buckets import EDGE_SCHEMA, BucketStep
from chukonu.dedup.config import MinHashConfig, optimal_bands
from chukonu.dedup.pipeline import DedupStats, minhash_dedup
from chukonu.dedup.signatures import BAND_SCHEMA, SignatureStep, signatures

__all__ = ["BAND_SCHEMA", "BucketStep", "DedupStats", "EDGE_SCHEMA", "MinHashConfig", "SignatureStep",
           "minhash_dedup", "optimal_bands", "signatures"]
