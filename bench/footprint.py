"""Metadata bytes per empty file: a script wrapper of ``superfs bench footprint``.

    python bench/footprint.py [--files 1000000] [--procs P] [--shards 2] [--time-limit S]
"""
from __future__ import annotations

import argparse
import sys

from superfs.bench import footprint

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=footprint.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    footprint.add_arguments(ap)
    sys.exit(footprint.main(ap.parse_args()))
