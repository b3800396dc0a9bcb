"""Create phases on 1, 2 and 4 shards: a script wrapper of ``superfs bench scaling``.

    python bench/scaling.py [--shards 1,2,4] [--files N] [--procs P]
"""
from __future__ import annotations

import argparse
import sys

from superfs.bench import scaling

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=scaling.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scaling.add_arguments(ap)
    sys.exit(scaling.main(ap.parse_args()))
