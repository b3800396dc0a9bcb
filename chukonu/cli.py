"""The ``chukonu`` command line: ``python -m chukonu dedup INPUT OUTPUT [options]`` and ``support``.

``dedup`` reads a Parquet or JSON-lines data set (a file or a directory,
local or ``superfs://``), removes near-duplicate rows of one text column
with MinHash-LSH, writes the kept rows in the same format and prints a
JSON line of statistics. Progress and the job summary go to stderr.
``support`` prints (or writes into the README) what chukonu supports of the
PySpark API, read from the code.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from superfs.extras import MissingExtra, exit_status

log = logging.getLogger(__name__)


def _detect_format(path: str) -> str:
    p = path.rstrip("/")
    for ext, fmt in ((".parquet", "parquet"), (".json", "json"), (".jsonl", "json"), (".json.gz", "json"),
                     (".csv", "csv"), (".txt", "text")):
        if p.endswith(ext):
            return fmt
    return "parquet"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chukonu", description="chukonu: a PySpark-compatible, data-centric "
                                     "engine; MinHash-LSH near-duplicate removal.")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dedup", help="remove near-duplicate documents (MinHash-LSH)",
                       description="Remove near-duplicate rows of a text column with MinHash-LSH and write the "
                       "kept rows. INPUT and OUTPUT are local paths or superfs://HOST:PORT/path URLs.")
    d.add_argument("input", metavar="INPUT", help="input file or directory (parquet, json lines, csv, text)")
    d.add_argument("output", metavar="OUTPUT", help="output directory")
    d.add_argument("--column", default="text", help="text column to compare (default: text)")
    d.add_argument("--threshold", type=float, default=0.7, help="Jaccard similarity threshold (default: 0.7)")
    d.add_argument("--num-perm", type=int, default=256, help="MinHash permutations (default: 256)")
    d.add_argument("--ngram", type=int, default=5, help="words per shingle (default: 5)")
    d.add_argument("--tokenizer", default="bytes", choices=["bytes", "nonword"],
                   help="words: 'bytes' = runs of [0-9A-Za-z_] or bytes >= 0x80, ASCII-lowercased (default); "
                   "'nonword' = lowercased text split on Unicode \\W, as text-dedup/datatrove-style references")
    d.add_argument("--seed", type=int, default=42, help="seed of the permutations (default: 42)")
    d.add_argument("--bands", type=int, default=None, help="LSH bands (default: chosen for the threshold)")
    d.add_argument("--rows", type=int, default=None, help="rows per band (default: chosen for the threshold)")
    d.add_argument("--verify", action="store_true", help="check candidate pairs' exact Jaccard similarity")
    d.add_argument("--format", default=None, help="input format (default: from the extension, else parquet)")
    d.add_argument("--output-format", default=None, help="output format (default: the input format)")
    d.add_argument("--mode", default="errorifexists", choices=["errorifexists", "overwrite", "ignore", "append"],
                   help="what to do if OUTPUT exists (default: errorifexists)")
    d.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: all CPUs)")
    d.add_argument("--executor", default=None, choices=["inline", "process", "ray"], help="where tasks run")
    d.add_argument("--superfs", default=None, metavar="ADDRESS",
                   help="place one worker beside each data server of this SuperFS cluster ('local' for the "
                   "cluster 'superfs up' started)")
    d.add_argument("--shuffle-partitions", type=int, default=None, help="band-key shuffle partitions")
    d.add_argument("--progress", default="auto", choices=["auto", "console", "log", "off"])
    d.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    s = sub.add_parser("support", help="what chukonu supports of the PySpark API (the README's list)",
                       description="Print the list of supported and unsupported PySpark functions, DataFrame "
                       "methods and SQL features, as read from the code; --write rewrites the README's section.")
    s.add_argument("--write", metavar="README", default=None, help="rewrite this file's generated section")
    s.add_argument("--check", metavar="README", default=None,
                   help="exit 1 if this file's generated section is not current")
    return parser


def run_dedup(args: argparse.Namespace) -> dict[str, object]:
    from chukonu.dedup import minhash_dedup
    from chukonu.sql import SparkSession

    builder = SparkSession.builder.master(f"local[{args.workers}]").config("chukonu.progress", args.progress)
    if args.executor:
        builder = builder.config("chukonu.executor", args.executor)
    if args.superfs:
        builder = builder.config("chukonu.superfs.address", args.superfs)
    spark = builder.getOrCreate()
    try:
        started = time.perf_counter()
        fmt = args.format or _detect_format(args.input)
        df = spark.read.format(fmt).load(args.input)
        kept, stats = minhash_dedup(df, column=args.column, threshold=args.threshold, num_perm=args.num_perm,
                                    ngram=args.ngram, seed=args.seed, bands=args.bands, rows=args.rows,
                                    verify=args.verify, num_partitions=args.shuffle_partitions, return_stats=True,
                                    tokenizer=args.tokenizer)
        kept.write.mode(args.mode).format(args.output_format or fmt).save(args.output)
        jobs = spark.jobs
        return {"input": args.input, "output": args.output, "candidate_pairs": stats.candidate_pairs,
                "verified_pairs": stats.verified_pairs, "dropped": stats.dropped,
                "seconds": round(time.perf_counter() - started, 3),
                "bytes_read_local": sum(j.bytes_local for j in jobs),
                "bytes_read_remote": sum(j.bytes_remote for j in jobs)}
    finally:
        spark.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "dedup":
        try:
            result = run_dedup(args)
        except MissingExtra as e:  # pip install superfs without [chukonu]
            return exit_status("chukonu dedup", e)
        except (FileNotFoundError, ValueError) as e:
            print(f"chukonu dedup: {e}", file=sys.stderr)
            return 2
        except Exception as e:  # noqa: BLE001 - a clean message, not a traceback
            print(f"chukonu dedup: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(json.dumps(result))
    elif args.command == "support":
        return run_support(args)
    return 0


def run_support(args: argparse.Namespace) -> int:
    from chukonu import support
    if args.write:
        try:
            changed = support.write_readme(args.write)
        except (OSError, ValueError) as e:
            print(f"chukonu support: {e}", file=sys.stderr)
            return 2
        print(json.dumps({**support.summary(), "file": args.write, "changed": changed}))
        return 0
    if args.check:
        try:
            with open(args.check, encoding="utf-8") as f:
                current = support.current_section(f.read())
        except OSError as e:
            print(f"chukonu support: {e}", file=sys.stderr)
            return 2
        if current != support.render_markdown():
            print(f"chukonu support: {args.check} is not current; run python -m chukonu support --write "
                  f"{args.check}", file=sys.stderr)
            return 1
        return 0
    print(support.render_markdown())
    return 0
