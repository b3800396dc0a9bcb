"""chukonu: a PySpark-compatible, data-centric processing engine on SuperFS.

A pipeline written for PySpark runs on chukonu by changing its imports
(``from chukonu.sql import SparkSession, functions as F``). Partitions are
Arrow record batches; chains of narrow operations run fused, batch by batch;
shuffles spill to disk; tasks reading SuperFS files run beside the data
server holding their chunk. ``chukonu.dedup`` holds MinHash-LSH
near-duplicate removal, usable on chukonu and inside real PySpark jobs.

Layers (imports point down)::

    sql/ (SparkSession, DataFrame, Column, functions)   rdd.py   dedup/   cli.py
      engine/ planner -> stages of tasks -> scheduler -> backends (inline, process pool, Ray)
        engine/ partitions (sources + fused narrow ops) and sinks (shuffle, collect, write)
          io/ formats and input splits      placement.py (where SuperFS chunks live)
            io/fs.py (local files and SuperFS through superfs.client)
"""
from __future__ import annotations

__version__ = "0.1.0"
