"""Session frames on a byte stream: a 4-byte big-endian length, then one ``Frame``.

Pure functions and one incremental parser, no I/O: both ends of a session
(superfs/rpc/client.py, superfs/rpc/server.py) feed what the socket gave
them to a :class:`FrameReader` and write what :func:`encode` returns. The
frame itself is protobuf (proto/superfs/v1/session.proto); only its length
is hand-packed, as gRPC's own 5-byte prefix is.
"""
from __future__ import annotations

import struct

from superfs.v1 import session_pb2 as spb

LENGTH = struct.Struct(">I")
VERSION = 1

Frame = spb.Frame
HELLO, WELCOME, CALL, REPLY, CANCEL, PING, PONG = (
    Frame.HELLO, Frame.WELCOME, Frame.CALL, Frame.REPLY, Frame.CANCEL, Frame.PING, Frame.PONG)


class FrameError(ValueError):
    """The peer sent something that is not a frame: the connection must be dropped."""


def encode(frame: spb.Frame) -> bytes:
    body = frame.SerializeToString()
    return LENGTH.pack(len(body)) + body


class FrameReader:
    """Turns the bytes of a connection, as they arrive, into frames.

    ``max_frame`` bounds what one frame may claim to be, so a peer cannot make
    this side buffer more than that before it is refused.
    """

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[spb.Frame]:
        """The frames completed by ``data`` (FrameError on garbage or an oversized frame)."""
        buf = self._buf
        buf += data
        out: list[spb.Frame] = []
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            (size,) = LENGTH.unpack_from(buf, pos)
            if size > self.max_frame:
                raise FrameError(f"frame of {size} bytes is larger than the limit of {self.max_frame}")
            end = pos + 4 + size
            if end > n:
                break
            frame = spb.Frame()
            try:
                frame.ParseFromString(memoryview(buf)[pos + 4:end])
            except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
                raise FrameError(f"undecodable frame: {e}") from None
            out.append(frame)
            pos = end
        if pos:
            del buf[:pos]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)
