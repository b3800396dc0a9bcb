"""Buffers for bytes about to be read into them, left unzeroed.

``bytearray(n)`` writes n zeros first: for a 4 MiB read-ahead window that is
a pass over memory as costly as the read's own copy, on the thread that asks
(the mount's event loop, a reader's thread). numpy allocates without
zeroing. A caller must write every byte it keeps: the read paths do (a hole
or a short chunk is zero-filled explicitly in data.py). Tests read holes
through such windows after other bytes passed through the same memory
(test_t3_client_holes.py for the library, test_t4_fuse_readahead.py for the
mount).
"""
from __future__ import annotations


def unzeroed(n: int) -> memoryview:
    """A writable buffer of ``n`` bytes whose content is whatever the memory held."""
    import numpy  # here, not at import: a CLI command that never reads should not pay for numpy

    return numpy.empty(n, numpy.uint8).data
