"""kvserve.conductor: cache-aware scheduling of a prefill/decode cluster over kvserve.

After Mooncake's Conductor: each request goes to the prefill instance with
the lowest estimated time to first token (queue, loading the prompt's
cached blocks from wherever they are, computing the rest), then to a decode
instance by load; hot blocks are replicated; requests that cannot meet the
TTFT/TBT objectives are rejected at arrival.

* ``costs.py``: the cost model (every constant explicit), objectives, cluster shape
* ``state.py``: instances, queues, where each block is
* ``schedulers.py``: the conductor and the baselines
* ``sim.py``: the discrete-event simulator (model backend)
* ``live.py``: the live backend: real blocks through ``kvserve serve`` daemons
* ``report.py``, ``experiment.py``: per-scheduler results, one run of them all

``python -m kvserve conduct TRACE.jsonl`` runs it; see ``--help``.
"""
from __future__ import annotations

from kvserve.conductor.costs import MODELS, ClusterShape, CostModel, Objectives
from kvserve.conductor.experiment import run, run_one
from kvserve.conductor.schedulers import BASELINES, SCHEDULERS, Conductor, make_scheduler

__all__ = ["BASELINES", "MODELS", "SCHEDULERS", "ClusterShape", "Conductor", "CostModel", "Objectives",
           "make_scheduler", "run", "run_one"]
