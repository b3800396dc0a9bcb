"""``python -m chukonu``: see chukonu.cli."""
from __future__ import annotations

import sys

from chukonu.cli import main

if __name__ == "__main__":
    sys.exit(main())
