"""Sequential and random IO through the library (and a mount) against a local disk.

A script wrapper of ``superfs bench io``; the logic is in superfs/bench/io.py.

    python bench/io.py [--size-mib 1024] [--local-dir /var/tmp] [--mount DIR|auto]
"""
from __future__ import annotations

import argparse
import sys

from superfs.bench import io

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=io.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    io.add_arguments(ap)
    sys.exit(io.main(ap.parse_args()))
