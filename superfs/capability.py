"""Directory capabilities: the dir server signs, shards verify.

Shards do not hold directory metadata, yet they must refuse a create or an
unlink in a directory the caller may not write. The dir server, which checked
the directory's mode, hands the client a short-lived capability signed with
the cluster secret; the shard checks the signature, the expiry, the
directory and the uid, all locally. A client cannot forge one without the
secret, which only daemons hold.
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import struct
import time

from superfs.errors import FsError
from superfs.perms import W_OK, X_OK
from superfs.v1 import superfs_pb2 as pb

CAP_TTL_NS = 30_000_000_000


def _payload(cap: pb.DirCap) -> bytes:
    return struct.pack(
        ">QII?Iq?I", cap.dir_ino, cap.uid, cap.rights, cap.sticky, cap.owner_uid, cap.expires_ns,
        cap.setgid, cap.gid,
    )


def sign(secret: bytes, *, dir_ino: int, uid: int, rights: int, sticky: bool, owner_uid: int,
         ttl_ns: int = CAP_TTL_NS, setgid: bool = False, gid: int = 0) -> pb.DirCap:
    cap = pb.DirCap(dir_ino=dir_ino, uid=uid, rights=rights, sticky=sticky, owner_uid=owner_uid,
                    expires_ns=time.time_ns() + ttl_ns, setgid=setgid, gid=gid if setgid else 0)
    cap.mac = hmac.new(secret, _payload(cap), hashlib.sha256).digest()
    return cap


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
