"""Entry point for ``python -m ckpt`` (see ckpt/cli.py)."""
import sys

from ckpt.cli import main

sys.exit(main())
