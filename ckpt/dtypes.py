"""Element types: one name per dtype in the manifest, and numpy byte views of arrays and tensors.

The manifest names numpy types by ``dtype.str`` ('<f4', '|b1', ...), which
fixes byte order, and types numpy lacks by torch's name ('bfloat16',
'float8_e4m3fn', ...). Data always travels as a numpy view of the source
memory, so saving never needs torch to be imported unless the state holds
tensors. Loading a torch-only type without torch gives the raw bits as an
unsigned integer array of the same width, rather than failing.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

import numpy as np

from ckpt.errors import CheckpointError

log = logging.getLogger(__name__)

# torch-only dtypes: name -> item size in bytes
TORCH_ONLY_SIZES = {
    "bfloat16": 2, "complex32": 4,
    "float8_e4m3fn": 1, "float8_e5m2": 1, "float8_e4m3fnuz": 1, "float8_e5m2fnuz": 1,
    "float8_e8m0fnu": 1,
}
_RAW_BY_SIZE: dict[int, np.dtype] = {1: np.dtype("|u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4")}
_warned: set[str] = set()


def torch_module() -> Any | None:
    """torch if the program already imported it (a tensor cannot exist otherwise)."""
    return sys.modules.get("torch")


def is_tensor(obj: Any) -> bool:
    torch = torch_module()
    return torch is not None and isinstance(obj, torch.Tensor)


def is_array(obj: Any) -> bool:
    return isinstance(obj, (np.ndarray, np.generic)) or is_tensor(obj)


def numpy_dtype_name(dtype: np.dtype) -> str:
    if dtype.kind not in "biufcmM" or dtype.fields is not None or dtype.subdtype is not None:
        raise CheckpointError(f"dtype {dtype} is not supported (plain numeric, bool and datetime types are)")
    return dtype.str


def itemsize(name: str) -> int:
    if name in TORCH_ONLY_SIZES:
        return TORCH_ONLY_SIZES[name]
    return np.dtype(name).itemsize


def numpy_dtype(name: str, *, warn: bool = False) -> np.dtype:
    """The numpy dtype data of type ``name`` is viewed as (raw bits for torch-only types)."""
    if name in TORCH_ONLY_SIZES:
        if warn and name not in _warned:
            _warned.add(name)
            log.warning("dtype %s has no numpy equivalent: loading its raw bits as %s", name,
                        _RAW_BY_SIZE[TORCH_ONLY_SIZES[name]])
        return _RAW_BY_SIZE[TORCH_ONLY_SIZES[name]]
    return np.dtype(name)


def _torch_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def as_numpy(obj: Any) -> tuple[np.ndarray, str]:
    """(numpy view of ``obj``'s memory, manifest dtype name); copies only off-CPU tensors."""
    if isinstance(obj, np.generic):
        obj = np.asarray(obj)
    if isinstance(obj, np.ndarray):
        return obj, numpy_dtype_name(obj.dtype)
    torch = torch_module()
    assert torch is not None and isinstance(obj, torch.Tensor)
    t = obj.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    name = _torch_name(t.dtype)
    if name in TORCH_ONLY_SIZES:
        raw = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[TORCH_ONLY_SIZES[name]]
        return t.view(raw).numpy().view(_RAW_BY_SIZE[TORCH_ONLY_SIZES[name]]), name
    arr = t.numpy()
    return arr, numpy_dtype_name(arr.dtype)


def writable_view(obj: Any) -> tuple[np.ndarray, str, Any]:
    """(numpy array to fill, dtype name, commit) for a load target.

    ``commit()`` must be called after filling: for a tensor off the CPU it
    copies the host buffer to the device; otherwise the view shares memory
    with the target and commit does nothing.
    """
    if isinstance(obj, np.ndarray):
        if not obj.flags.writeable:
            raise CheckpointError("load target array is read-only")
        return obj, numpy_dtype_name(obj.dtype), lambda: None
    torch = torch_module()
    if torch is None or not isinstance(obj, torch.Tensor):
        raise CheckpointError(f"cannot load into {type(obj).__name__}")
    if obj.device.type == "cpu":
        arr, name = as_numpy(obj)
        return arr, name, lambda: None
    host = torch.empty(obj.shape, dtype=obj.dtype)
    arr, name = as_numpy(host)
    return arr, name, lambda: obj.copy_(host)
