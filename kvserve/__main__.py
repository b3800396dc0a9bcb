"""``python -m kvserve``: see kvserve/cli.py."""
from __future__ import annotations

import sys

from kvserve.cli import main

sys.exit(main())
