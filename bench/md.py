"""mdtest-style metadata benchmark (IO500 phases): a script wrapper of ``superfs bench md``.

    python bench/md.py TARGET [--files N] [--procs P] [--iterations K] [--stonewall S]

See superfs/bench/md.py for the phases and what each number means.
"""
from __future__ import annotations

import argparse
import sys

from superfs.bench import md

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=md.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    md.add_arguments(ap)
    sys.exit(md.main(ap.parse_args()))
