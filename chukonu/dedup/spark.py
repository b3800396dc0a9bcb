"""Running chukonu's MinHash kernels inside a real PySpark job.

The step objects are plain ``mapInArrow`` functions, so an existing Spark
pipeline embeds them directly::

    from chukonu.dedup.spark import pyspark_minhash_dedup
    kept = pyspark_minhash_dedup(spark_df, column="text", threshold=0.7)

or step by step with ``signature_fn(config)`` / ``bucket_fn(config)``. The
Spark executors' Python workers must be able to import chukonu (and numba).
Candidate pairs are collected to the driver for the union-find, as in
chukonu; the drop list goes back as a broadcast anti-join.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from chukonu.dedup.buckets import BucketStep
from chukonu.dedup.components import duplicates_to_drop, unique_pairs
from chukonu.dedup.config import MinHashConfig
from chukonu.dedup.signatures import SignatureStep

log = logging.getLogger(__name__)

BAND_DDL = "id long, band_key long"
EDGE_DDL = "src long, dst long"


def signature_fn(config: MinHashConfig, id_column: str = "id", text_column: str | None = None) -> SignatureStep:
    """For ``df.mapInArrow(fn, "id long, band_key long")``."""
    return SignatureStep(config, id_column, text_column)


def bucket_fn(config: MinHashConfig) -> BucketStep:
    """For ``bands.repartition(n, "band_key").mapInArrow(fn, "src long, dst long")``."""
    return BucketStep(config)


def pyspark_minhash_dedup(df: Any, column: str = "text", threshold: float = 0.7, num_perm: int = 256,
                          ngram: int = 5, seed: int = 42, num_partitions: int | None = None,
                          tokenizer: str = "bytes") -> Any:
    """minhash_dedup for a pyspark.sql.DataFrame, with chukonu's kernels in the Python workers."""
    from pyspark.sql import functions as F

    config = MinHashConfig(column=column, threshold=threshold, num_perm=num_perm, ngram=ngram, seed=seed,
                           id_column="__cid", tokenizer=tokenizer)
    ided = df.withColumn("__cid", F.monotonically_increasing_id()).cache()
    bands = ided.select("__cid", column).mapInArrow(signature_fn(config, "__cid", column), BAND_DDL)
    n = num_partitions or int(df.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    edges = bands.repartition(n, "band_key").mapInArrow(bucket_fn(config), EDGE_DDL).toPandas()
    src, dst = unique_pairs(edges["src"].to_numpy(np.int64), edges["dst"].to_numpy(np.int64))
    drop = duplicates_to_drop(src, dst)
    spark = df.sparkSession
    drop_df = spark.createDataFrame([(int(x),) for x in drop], "__cid long")
    return ided.join(F.broadcast(drop_df), "__cid", "left_anti").drop("__cid")
