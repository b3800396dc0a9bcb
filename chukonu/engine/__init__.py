"""The execution engine: logical plans cut into stages of tasks, scheduled near their data.

``plan`` (what to compute) -> ``planner`` (stages: partitions + sinks,
shuffles between them) -> ``scheduler`` (which worker runs each task) ->
``backends`` (inline, a local process pool, Ray). ``expressions``,
``kernels``, ``ops``, ``aggregate``, ``join`` and ``sorting`` are the
vectorised operators the tasks run.
"""
from __future__ import annotations

import chukonu.extra_check  # noqa: F401 - first: without the extra, one line naming it
