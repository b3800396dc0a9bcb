"""The client side of the byte path: connections to data servers, pooled, blocking, one call at a time.

Used from threads (the client library's byte workers, a data server
forwarding a chained write or fetching a block to repair): each call takes
an idle connection to its target (or opens one), sends a request and its
payload, reads the reply and its payload straight into the caller's buffer,
and puts the connection back.

Which socket: a target that advertises an abstract Unix socket name is
tried there first (it exists only on the same host, in the same network
namespace, so finding it means being local); otherwise, or when it does not
answer, TCP. Under TLS both are wrapped, with the cluster's CA and this
process's certificate. The first message is HELLO with the token.

A connection taken from the pool may have been closed by the server while
idle (its idle limit, a restart): a call that finds it closed before any
reply byte is sent again once on a fresh connection. Reads and writes of a
chunk range are idempotent, so that is safe.
"""
from __future__ import annotations

import errno
import logging
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from superfs.errors import FsError
from superfs.rpc import byteframes as bf
from superfs.rpc.local_reads import MIN_READ as MIN_LOCAL_READ
from superfs.rpc.local_reads import LocalFiles
from superfs.v1 import bytes_pb2 as bpb

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
MAX_IDLE_PER_TARGET = 64   # as many as a process has byte workers: no reconnecting under load


@dataclass(frozen=True)
class ByteTarget:
    """Where a data server's byte path is: TCP host:port, and its local socket name."""

    address: str
    local: str = ""

    def hop(self) -> bpb.ByteHop:
        return bpb.ByteHop(address=self.address, local=self.local)

    @classmethod
    def of(cls, hop: bpb.ByteHop) -> "ByteTarget":
        return cls(hop.address, hop.local)


@dataclass(frozen=True)
class ByteSecurity:
    """What this process presents on the byte path."""

    token: str | None = None
    ssl_context: ssl.SSLContext | None = None
    server_name: str | None = None   # the name expected in server certificates (default: the host)


def raise_for(reply: bpb.ByteReply, target: ByteTarget) -> None:
    if reply.errno_name:
        raise FsError(getattr(errno, reply.errno_name, errno.EIO), reply.message or reply.errno_name)


class ByteConnection:
    """One connection to a data server's byte path."""

    def __init__(self, sock: socket.socket, target: ByteTarget, local: bool) -> None:
        self.sock = sock
        self.wire = bf.Wire(sock)
        self.target = target
        self.local = local
        self.broken = False
        self._next_id = 1
        self._pending = 0

    def call(self, req: bpb.ByteRequest, deadline: float,
             payload: bytes | bytearray | memoryview | None = None) -> bpb.ByteReply:
        """Send ``req`` (and its payload); the reply header (its payload, if any, is still to be read)."""
        req.id = self._next_id
        self._next_id += 1
        self.broken = True  # until the reply header is in: a failure midway leaves it unusable
        self.wire.send(req, deadline, payload)
        reply = self.wire.read_message(bpb.ByteReply, deadline)
        if reply.id != req.id:
            raise bf.FrameError(f"reply {reply.id} to request {req.id}")
        self.broken = False
        return reply

    def start(self, req: bpb.ByteRequest, deadline: float) -> None:
        """Send a WRITE's header; its payload follows with :meth:`send_piece`, then :meth:`finish`."""
        req.id = self._next_id
        self._next_id += 1
        self.broken = True
        self._pending = req.id
        self.wire.send(req, deadline)

    def send_piece(self, piece: memoryview, deadline: float) -> None:
        self.wire.send_parts([piece], deadline)

    def finish(self, deadline: float) -> bpb.ByteReply:
        reply = self.wire.read_message(bpb.ByteReply, deadline)
        if reply.id != self._pending:
            raise bf.FrameError(f"reply {reply.id} to request {self._pending}")
        self.broken = False
        return reply

    def recv_into(self, view: memoryview, deadline: float) -> None:
        self.broken = True
        self.wire.read_payload(view, deadline)
        self.broken = False

    def alive(self) -> bool:
        """Still open at the other end, as far as can be told without waiting (an idle connection)."""
        if isinstance(self.sock, ssl.SSLSocket) or self.wire.buffered:
            return True  # TLS may have records pending (session tickets): a call finds out, and is retried
        poller = select.poll()
        poller.register(self.sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        # readable while idle: EOF (closed by the server), or bytes nobody asked for; either way unusable
        return not poller.poll(0)

    def abort(self) -> None:
        """Make a call in progress on another thread fail at once (the connection is dropped)."""
        self.broken = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.broken = True
        try:
            self.sock.close()
        except OSError:
            pass


def _open_socket(target: ByteTarget, use_local: bool, deadline: float) -> tuple[socket.socket, bool]:
    if use_local and target.local:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bf.tune(s)
        s.settimeout(max(0.001, min(CONNECT_TIMEOUT_S, deadline - time.monotonic())))
        try:
            s.connect("\0" + target.local)
            return s, True
        except OSError:
            s.close()  # not on this host (or not up): TCP
    host, _, port = target.address.rpartition(":")
    s = socket.create_connection((host.strip("[]"), int(port)),
                                 timeout=max(0.001, min(CONNECT_TIMEOUT_S, deadline - time.monotonic())))
    bf.tune(s)
    return s, False


def connect(target: ByteTarget, security: ByteSecurity, deadline: float, *, use_local: bool = True) -> ByteConnection:
    """A connection that has been welcomed (FsError: EIO unreachable, EACCES refused, ETIMEDOUT)."""
    what = f"data server {target.address} (byte path)"
    try:
        sock, local = _open_socket(target, use_local, deadline)
    except socket.timeout:
        raise FsError(errno.ETIMEDOUT, f"{what}: no connection in time") from None
    except OSError as e:
        raise FsError(errno.EIO, f"{what} is unreachable: {e.strerror or e}") from None
    try:
        if security.ssl_context is not None:
            host = target.address.rpartition(":")[0].strip("[]")
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock = security.ssl_context.wrap_socket(sock, server_hostname=security.server_name or host)
        conn = ByteConnection(sock, target, local)
        reply = conn.call(bpb.ByteRequest(op=bf.HELLO, version=bf.VERSION, token=security.token or ""), deadline)
    except ssl.SSLError as e:
        sock.close()
        raise FsError(errno.EACCES, f"{what}: TLS handshake failed ({e.reason}); check that client and cluster "
                                    "agree on [tls] in the cluster file") from None
    except (bf.ByteTimeout, socket.timeout):
        sock.close()
        raise FsError(errno.ETIMEDOUT, f"{what} did not answer HELLO in time") from None
    except (OSError, bf.FrameError) as e:
        sock.close()
        raise FsError(errno.EIO, f"{what} dropped the connection: {e}") from None
    if reply.errno_name:
        conn.close()
        raise_for(reply, target)
    return conn


class BytePool:
    """Idle connections by target, shared by the threads of one process (or one daemon)."""

    def __init__(self, security: ByteSecurity, *, max_idle: int = MAX_IDLE_PER_TARGET) -> None:
        self.security = security
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: dict[ByteTarget, list[ByteConnection]] = {}
        self._no_local: set[ByteTarget] = set()
        self._closed = False
        self.opened = 0          # connections opened (tests and benchmarks look)
        self.local_opened = 0
        self.local_files = LocalFiles()   # short-circuit reads (read_into's ``local_ok``)

    def acquire(self, target: ByteTarget, deadline: float) -> tuple[ByteConnection, bool]:
        """(a connection, whether it came from the pool)."""
        conn: ByteConnection | None
        with self._lock:
            if self._closed:
                raise FsError(errno.EIO, "byte path closed")
            idle = self._idle.get(target)
            stale = []
            while idle:
                conn = idle.pop()
                if conn.alive():
                    break
                stale.append(conn)
            else:
                conn = None
            use_local = target not in self._no_local
        for c in stale:
            c.close()
        if conn is not None:
            return conn, True
        conn = connect(target, self.security, deadline, use_local=use_local)
        with self._lock:
            self.opened += 1
            if conn.local:
                self.local_opened += 1
            elif target.local:
                self._no_local.add(target)  # its local socket is elsewhere: stop trying it
        return conn, False

    def release(self, conn: ByteConnection) -> None:
        if conn.broken:
            conn.close()
            return
        with self._lock:
            idle = self._idle.setdefault(conn.target, [])
            if self._closed or len(idle) >= self.max_idle:
                conn.close()
            else:
                idle.append(conn)

    def may_be_local(self, target: ByteTarget) -> bool:
        """Whether ``target`` has a local socket not yet found missing (it is on this host)."""
        with self._lock:
            return bool(target.local) and target not in self._no_local

    def forget(self, target: ByteTarget) -> None:
        """Drop the idle connections to ``target`` (it restarted, or moved)."""
        with self._lock:
            idle = self._idle.pop(target, [])
            self._no_local.discard(target)
        for c in idle:
            c.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [c for conns in self._idle.values() for c in conns]
            self._idle.clear()
        for c in idle:
            c.close()
        self.local_files.files.close()

    # ------------------------------------------------------------------ calls

    def read_into(self, target: ByteTarget, req: bpb.ByteRequest, view: memoryview, timeout_s: float,
                  on_conn: "ConnHolder | None" = None, *, local_ok: bool = False) -> tuple[bool, int, list[int]]:
        """READ ``req`` into ``view``: (exists, bytes read, blocks the server repaired).

        ``local_ok``: a large read from a server on this host may be read from its slot file here
        (local_reads.py), when the server says where and this process may open it.
        """
        deadline = time.monotonic() + timeout_s
        req.timeout_ms = int(timeout_s * 1000)
        if local_ok and target.local and len(view) >= MIN_LOCAL_READ and target not in self._no_local:
            done = self._read_local(target, req, view, deadline)
            if done is not None:
                return done
        req.op = bf.READ
        for attempt in (0, 1):
            conn, pooled = self.acquire(target, deadline)
            if on_conn is not None:
                on_conn.set(conn)
            try:
                reply = conn.call(req, deadline)
                raise_for(reply, target)
                if not reply.exists:
                    return False, 0, []
                n = reply.length
                if n > len(view):
                    conn.broken = True
                    raise FsError(errno.EIO, f"data server {target.address} sent {n} bytes for a read of "
                                             f"{len(view)}")
                conn.recv_into(view[:n], deadline)
                return True, n, list(reply.repaired)
            except bf.PeerClosed as e:
                if attempt == 0 and pooled and e.at_start:
                    continue  # closed while idle: once more on a fresh connection
                raise self._failure(target, e) from None
            except (OSError, bf.FrameError, bf.ByteTimeout) as e:
                raise self._failure(target, e) from None
            finally:
                if on_conn is not None:
                    on_conn.set(None)
                self.release(conn)
        raise AssertionError("unreachable")

    def _read_local(self, target: ByteTarget, req: bpb.ByteRequest, view: memoryview,
                    deadline: float) -> tuple[bool, int, list[int]] | None:
        """LOCATE, then the bytes from the slot file; None: READ them (not local, not readable here,
        or a block failed its sum)."""
        where = bpb.ByteRequest(op=bf.LOCATE, key=req.key, cap=req.cap, timeout_ms=req.timeout_ms)
        conn, _ = self.acquire(target, deadline)
        try:
            if not conn.local:
                return None
            reply = conn.call(where, deadline)
        except (OSError, bf.FrameError, bf.ByteTimeout):
            return None   # READ will open its own connection, and report what fails
        finally:
            self.release(conn)
        if reply.errno_name and getattr(errno, reply.errno_name, 0) == errno.EOPNOTSUPP:   # not asked locally
            return None
        raise_for(reply, target)
        if not reply.exists:
            return False, 0, []
        n = self.local_files.read(reply, req.offset, view)
        return None if n is None else (True, n, [])

    def write(self, target: ByteTarget, req: bpb.ByteRequest, payload: bytes | bytearray | memoryview,
              timeout_s: float, on_conn: "ConnHolder | None" = None) -> int:
        """WRITE ``payload`` as ``req`` says; the chunk's length afterwards."""
        req.op = bf.WRITE
        req.length = len(payload)
        deadline = time.monotonic() + timeout_s
        req.timeout_ms = int(timeout_s * 1000)
        for attempt in (0, 1):
            conn, pooled = self.acquire(target, deadline)
            if on_conn is not None:
                on_conn.set(conn)
            try:
                reply = conn.call(req, deadline, payload)
                raise_for(reply, target)
                return int(reply.length)
            except bf.PeerClosed as e:
                if attempt == 0 and pooled and e.at_start:
                    continue
                raise self._failure(target, e) from None
            except (OSError, bf.FrameError, bf.ByteTimeout) as e:
                raise self._failure(target, e) from None
            finally:
                if on_conn is not None:
                    on_conn.set(None)
                self.release(conn)
        raise AssertionError("unreachable")

    @staticmethod
    def _failure(target: ByteTarget, e: BaseException) -> FsError:
        if isinstance(e, (bf.ByteTimeout, socket.timeout)):
            return FsError(errno.ETIMEDOUT, f"data server {target.address} (byte path): no answer in time")
        return FsError(errno.EIO, f"data server {target.address} (byte path): connection lost ({e})")


class ConnHolder:
    """The connection a call is using right now, so another thread can abort it (a cancelled caller)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: ByteConnection | None = None
        self.cancelled = False

    def set(self, conn: ByteConnection | None) -> None:
        with self._lock:
            self._conn = conn
            if conn is not None and self.cancelled:
                conn.abort()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._conn is not None:
                self._conn.abort()
