"""ckpt.async_save: copy the state to host memory now, persist it in the background.

The copy is what makes it safe for training to go on changing its arrays
at once. Saves from one process run one at a time in a single background
thread (a second async_save queues behind the first), which keeps the
one-save-per-root rule the commit protocol relies on.
"""
from __future__ import annotations

import concurrent.futures
import logging
import threading
from typing import Any

import numpy as np

from ckpt.dtypes import is_tensor
from ckpt.save import SaveResult, save
from ckpt.state import Shard

log = logging.getLogger(__name__)

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _background() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ckpt-async-save")
        return _executor


def host_copy(obj: Any) -> Any:
    """A deep copy of a state whose arrays live in fresh, C-contiguous host memory."""
    if isinstance(obj, dict):
        return {k: host_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [host_copy(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(host_copy(v) for v in obj)
    if isinstance(obj, Shard):
        return Shard(host_copy(obj.local), obj.global_shape, obj.offsets)
    if isinstance(obj, (np.ndarray, np.generic)):
        return np.array(obj, copy=True, order="C")
    if is_tensor(obj):
        return obj.detach().to("cpu", copy=True).contiguous()
    return obj


class SaveHandle:
    """A save running in the background; ``wait()`` returns its result or raises its error."""

    def __init__(self, future: "concurrent.futures.Future[SaveResult]") -> None:
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def wait(self, timeout: float | None = None) -> SaveResult:
        return self._future.result(timeout)

    def exception(self) -> BaseException | None:
        return self._future.exception() if self._future.done() else None


def async_save(state: dict[str, Any], path: Any, **kwargs: Any) -> SaveHandle:
    """Like :func:`ckpt.save`, but returns as soon as the state is copied to host memory."""
    staged = host_copy(state)
    return SaveHandle(_background().submit(save, staged, path, **kwargs))
