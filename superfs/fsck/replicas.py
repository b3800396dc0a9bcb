"""Replica work: telling real divergence from stale tails, and re-creating replicas.

A chunk's replicas are compared by the checksum each data server stores in
the chunk's header; that checksum covers the whole stored chunk, so two
replicas that agree on every byte a reader can see (the bytes before the
file's end) but differ past it look different. :func:`resolve_differs`
reads the visible bytes of each replica before a difference is called an
inconsistency.

Repair copies a whole chunk from the replica readers see first (the first
healthy one in the chunk's placement order) onto the replica that lacks it,
fails its checksum or disagrees: one ``ReadChunk`` (verified by the source
server) and one ``WriteChunk`` replacing the target's chunk outright, which
a degraded server accepts (it refuses partial writes to chunks it lost).

A client writing the same chunk while it is copied can leave the replicas
disagreeing again (its write then failed on the degraded server, so it was
not acknowledged); a later fsck reports it and ``--repair`` fixes it.
"""
from __future__ import annotations

import errno
import logging

from superfs import routing
from superfs.client.admin import AdminClient
from superfs.errors import FsError
from superfs.fsck.findings import Finding, FindingStore
from superfs.fsck.snapshot import Snapshot

log = logging.getLogger(__name__)


def _padded(data: bytes | None, length: int) -> bytes:
    data = data or b""
    return data[:length] + bytes(max(0, length - len(data)))


async def resolve_differs(admin: AdminClient, findings: FindingStore) -> None:
    """Keep only the ``replica-differs`` candidates whose visible bytes really differ."""
    for f in findings:
        if f.kind != "replica-differs" or not f.fix.get("candidate"):
            continue
        ino, idx, visible, sources = f.fix["ino"], f.fix["index"], f.fix["visible"], f.fix["sources"]
        views: dict[int, bytes] = {}
        for sid in sources:
            try:
                views[sid] = _padded(await admin.read_chunk(sid, ino, idx, visible), visible)
            except FsError as e:
                log.debug("cannot read inode %d chunk %d from data server %d: %s", ino, idx, sid, e)
        if len(set(views.values())) > 1:
            first = views[sources[0]] if sources[0] in views else next(iter(views.values()))
            f.fix.update(candidate=False, targets=[s for s in sources if views.get(s) != first])
            findings.replace(f)
        else:
            findings.discard(f)


async def copy_chunk(admin: AdminClient, snap: Snapshot, ino: int, idx: int, sources: list[int],
                     targets: list[int]) -> str:
    """Copy chunk (ino, idx) from the first readable of ``sources`` onto ``targets``."""
    for src in sources:
        entry = snap.chunk(src, ino, idx)
        if entry is None:
            continue
        try:
            data = await admin.read_chunk(src, ino, idx, entry.length)
        except FsError as e:
            log.warning("inode %d chunk %d: data server %d unreadable (%s); trying another", ino, idx, src, e)
            continue
        if data is None:
            continue  # deleted meanwhile (the file was removed or shrunk)
        for dst in targets:
            if dst != src:
                await admin.put_chunk(dst, ino, idx, data)
        return f"copied from data server {src} to {','.join(map(str, targets))}"
    raise FsError(errno.EIO, "no healthy replica could be read")


async def repair_chunk(admin: AdminClient, snap: Snapshot, f: Finding) -> str:
    """Fix one replica-missing, replica-corrupt or replica-differs finding."""
    ino, idx = f.fix["ino"], f.fix["index"]
    if f.kind == "replica-differs":
        sources, targets = f.fix["sources"], f.fix.get("targets", [])
    else:
        target = f.fix["target"]
        targets = [target]
        sources = [s for s in f.fix.get("sources") or _healthy(snap, ino, idx) if s != target]
    return await copy_chunk(admin, snap, ino, idx, sources, targets)


def _healthy(snap: Snapshot, ino: int, idx: int) -> list[int]:
    """Servers holding a healthy copy of (ino, idx) (for a corrupt replica's finding)."""
    info = snap.file(ino)
    if info is None:
        return []
    reps = routing.chunk_replicas(ino, idx, list(info.layout), snap.replicas())
    return [s for s in reps if (c := snap.chunk(s, ino, idx)) is not None and not c.corrupt]
