"""The SuperFS tier's file format: one serialized ObjectFile per object.

A file holds a header (format version, namespace, key, size, xxh3_64
checksum) and the payload, as one protobuf message. A reader checks every
header field against what it asked for and the checksum against the
payload: a torn write, a bit flip or a file renamed by hand is a miss,
never wrong bytes.
"""
from __future__ import annotations

import logging

import xxhash
from google.protobuf.message import DecodeError

from kvserve.v1 import kvserve_pb2 as pb

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def encode_object(namespace: str, key: bytes, data: bytes | memoryview, checksum: int) -> bytes:
    header = pb.ObjectHeader(version=FORMAT_VERSION, namespace=namespace, key=key, size=len(data),
                             checksum=checksum)
    return pb.ObjectFile(header=header, payload=bytes(data)).SerializeToString()


def decode_object(blob: bytes, namespace: str, key: bytes) -> tuple[bytes, int] | None:
    """(payload, checksum) if ``blob`` is a sound file for (namespace, key), else None."""
    msg = pb.ObjectFile()
    try:
        msg.ParseFromString(blob)
    except DecodeError:
        log.warning("object %s/%s on SuperFS does not parse", namespace, key.hex())
        return None
    h = msg.header
    if h.version != FORMAT_VERSION or h.namespace != namespace or h.key != key:
        log.warning("object %s/%s on SuperFS has a foreign header", namespace, key.hex())
        return None
    payload = msg.payload
    if len(payload) != h.size or xxhash.xxh3_64_intdigest(payload) != h.checksum:
        log.warning("object %s/%s on SuperFS fails its checksum", namespace, key.hex())
        return None
    return payload, h.checksum
