"""Input and output: file systems (local, SuperFS), splits, format readers and writers."""
from __future__ import annotations

import chukonu.extra_check  # noqa: F401 - first: without the extra, one line naming it
