"""The writer's side of a contract fsck relies on: pushed bytes are sized within a deadline.

A write to a chunked file is two steps: the chunks go to the data servers,
then the file's size on its shard grows (SetSize) at close, fsync, or flush.
Between the two, the pushed bytes sit past the file's end, exactly like the
garbage a failed write leaves, which ``fsck --repair`` cuts. So a writer
holding pushed-but-unsized bytes commits the size at least every
``COMMIT_EVERY_S`` seconds (FUSE handles: fuse/handles.py; the library's
file objects: client/fileobj.py), and fsck leaves alone bytes younger than
``UNSIZED_DEADLINE_S`` plus its own margin (by the data server's clock), or
written after its first scan.

``UNSIZED_DEADLINE_S`` is the promise: the period, plus a commit that may
take a few RPC timeouts. A writer frozen for longer (SIGSTOP, a suspended
VM) can lose the bytes it pushed before the freeze to an ``fsck --repair``
run meanwhile; but fsck fences the file's writers before it cuts
(FenceWriters), so that writer's next size commit, and with it its close or
fsync, fails with EIO: nothing it was told is stored is lost.
"""
from __future__ import annotations

COMMIT_EVERY_S = 2.0
UNSIZED_DEADLINE_S = 10.0
