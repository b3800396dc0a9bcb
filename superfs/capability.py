"""Capabilities: one daemon checks POSIX permissions and signs, another verifies locally.

Directory capabilities (``DirCap``): shards do not hold directory metadata,
yet they must refuse a create or an unlink in a directory the caller may not
write, and a lookup or listing in one it may not search or read. The dir
server, which checked the directory's mode and that the caller can reach it
(search permission on every directory above), hands the client a short-lived
capability signed with the cluster secret; the shard checks the signature,
the expiry, the directory and the uid, all locally.

Chunk capabilities (``ChunkCap``): data servers hold no metadata at all. The
shard that owns an inode checks the caller's creds against the inode's mode
and signs the rights it found (read, write) into every reply that describes
the file; data servers verify it before they read or write a byte of the
inode's chunks. A data-server call carries no creds, so a chunk capability
is a bearer token for one inode: the shard hands it only to the credential
that asked.

A client cannot forge either without the secret, which only daemons hold.
Verification is one HMAC-SHA256 and a constant-time compare (about 2 us).
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import struct
import time

from superfs.errors import FsError
from superfs.perms import R_OK, W_OK, X_OK
from superfs.v1 import superfs_pb2 as pb

CAP_TTL_NS = 30_000_000_000
# the epoch of capabilities daemons sign for their own calls: past every fence
DAEMON_EPOCH = (1 << 63) - 1
# A chunk capability lives as long as a client may keep using a FileInfo
# without asking the shard again; an expired one costs one GetFile.
CHUNK_CAP_TTL_NS = 60_000_000_000
CHUNK_RIGHTS = R_OK | W_OK
_CHUNK_TAG = b"superfs-chunk-cap\0"  # a chunk MAC can never verify as a directory MAC


def _payload(cap: pb.DirCap) -> bytes:
    return struct.pack(
        ">QII?Iq?IQ", cap.dir_ino, cap.uid, cap.rights, cap.sticky, cap.owner_uid, cap.expires_ns,
        cap.setgid, cap.gid, cap.epoch,
    )


def sign(secret: bytes, *, dir_ino: int, uid: int, rights: int, sticky: bool, owner_uid: int,
         ttl_ns: int = CAP_TTL_NS, setgid: bool = False, gid: int = 0, epoch: int = 0) -> pb.DirCap:
    """``epoch``: the directory's lease epoch now (shards refuse a capability below their fence)."""
    cap = pb.DirCap(dir_ino=dir_ino, uid=uid, rights=rights, sticky=sticky, owner_uid=owner_uid,
                    expires_ns=time.time_ns() + ttl_ns, setgid=setgid, gid=gid if setgid else 0,
                    epoch=epoch)
    cap.mac = hmac.new(secret, _payload(cap), hashlib.sha256).digest()
    return cap


def resign(secret: bytes, cap: pb.DirCap, epoch: int) -> pb.DirCap:
    """``cap`` signed again with the directory's lease ``epoch`` (the dir server learns it after checking)."""
    new = pb.DirCap()
    new.CopyFrom(cap)
    new.epoch = epoch
    new.mac = hmac.new(secret, _payload(new), hashlib.sha256).digest()
    return new


def verify(secret: bytes, cap: pb.DirCap, *, dir_ino: int, uid: int, want: int = W_OK | X_OK) -> pb.DirCap:
    """Raise EACCES unless ``cap`` lets ``uid`` modify entries of ``dir_ino``."""
    if not cap.mac:
        raise FsError(errno.EACCES, "no directory capability")
    good = hmac.new(secret, _payload(cap), hashlib.sha256).digest()
    if not hmac.compare_digest(good, cap.mac):
        raise FsError(errno.EACCES, "directory capability has a bad signature")
    if cap.dir_ino != dir_ino or cap.uid != uid:
        raise FsError(errno.EACCES, "directory capability is for another directory or user")
    if cap.expires_ns < time.time_ns():
        # ESTALE tells the client to fetch a fresh capability and retry once
        raise FsError(errno.ESTALE, "directory capability expired")
    if cap.rights & want != want:
        raise FsError(errno.EACCES, "permission denied on parent directory")
    return cap


# ------------------------------------------------------------------ chunks

def _chunk_mac(secret: bytes, ino: int, rights: int, expires_ns: int) -> bytes:
    return hmac.digest(secret, _CHUNK_TAG + struct.pack(">QIq", ino, rights, expires_ns), "sha256")


def sign_chunk(secret: bytes, *, ino: int, rights: int, ttl_ns: int = CHUNK_CAP_TTL_NS) -> pb.ChunkCap:
    """A capability for the chunks of ``ino`` with ``rights`` (R_OK|W_OK), valid for ``ttl_ns``."""
    rights &= CHUNK_RIGHTS
    expires = time.time_ns() + ttl_ns
    return pb.ChunkCap(ino=ino, rights=rights, expires_ns=expires, mac=_chunk_mac(secret, ino, rights, expires))


def verify_chunk(secret: bytes, cap: pb.ChunkCap, *, ino: int, want: int) -> None:
    """Raise EACCES unless ``cap`` allows ``want`` on the chunks of ``ino``; ESTALE once expired."""
    if not cap.mac:
        raise FsError(errno.EACCES, f"no chunk capability for inode {ino} (get one from the file's shard)")
    if not hmac.compare_digest(_chunk_mac(secret, cap.ino, cap.rights, cap.expires_ns), cap.mac):
        raise FsError(errno.EACCES, "chunk capability has a bad signature")
    if cap.ino != ino:
        raise FsError(errno.EACCES, f"chunk capability is for inode {cap.ino}, not {ino}")
    if cap.expires_ns < time.time_ns():
        # before the rights: a fresh capability may carry more (the file was chmod'ed)
        raise FsError(errno.ESTALE, "chunk capability expired")
    if cap.rights & want != want:
        raise FsError(errno.EACCES, f"permission denied: the chunk capability of inode {ino} does not allow "
                                    + ("writing" if want & W_OK else "reading"))
