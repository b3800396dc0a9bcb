"""A worker process: ``python -m chukonu.engine.backends.worker ADDRESS WORKER_ID DATA_SERVER SPILL_DIR``.

Started as a fresh interpreter (not forked, not via multiprocessing's
spawn), so a driver script without an ``if __name__ == "__main__"`` guard
is never re-run in the workers, as it would be with multiprocessing. The
worker connects back to the driver's listener (the authentication key
comes on stdin) and then loops: receive a task, run it, send the outcome.
"""
from __future__ import annotations

import logging
import pickle
import signal
import sys
from typing import Any

log = logging.getLogger(__name__)


def serve(conn: Any, worker_id: str, data_server: int | None, spill_dir: str) -> None:
    import cloudpickle

    from chukonu.engine.task import TaskError, TaskOutcome, reset_peak_rss, run_task

    while True:
        try:
            op, key, payload = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if op == "stop":
            return
        if op == "reset":
            reset_peak_rss()
            continue
        task = None
        try:
            task = cloudpickle.loads(payload)
            outcome = run_task(task, worker_id, data_server, spill_dir)
        except Exception as e:  # noqa: BLE001 - a task that cannot even be loaded still gets an answer
            outcome = TaskOutcome(False, error=TaskError(-1, -1, type(e).__name__, f"cannot load task: {e}", ""))
        try:
            data = pickle.dumps((key, outcome), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # noqa: BLE001
            bad = TaskOutcome(False, error=TaskError(getattr(task, "stage", -1), getattr(task, "partition", -1),
                                                     type(e).__name__,
                                                     f"the task's result cannot be sent to the driver: {e}", ""),
                              metrics=outcome.metrics)
            data = pickle.dumps((key, bad), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            conn.send_bytes(data)
        except (BrokenPipeError, OSError):
            return


def main(argv: list[str]) -> int:
    from multiprocessing.connection import Client

    address, worker_id, ds, spill_dir, level = argv
    logging.basicConfig(level=int(level), format=f"%(asctime)s {worker_id} %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the driver decides when workers stop
    authkey = bytes.fromhex(sys.stdin.readline().strip())
    conn = Client(address, family="AF_UNIX", authkey=authkey)
    conn.send_bytes(pickle.dumps(("hello", worker_id, None)))
    # import the heavy modules before the first task arrives
    import chukonu.engine.aggregate  # noqa: F401
    import chukonu.engine.kernels  # noqa: F401
    import chukonu.engine.ops  # noqa: F401
    serve(conn, worker_id, None if ds == "-" else int(ds), spill_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
