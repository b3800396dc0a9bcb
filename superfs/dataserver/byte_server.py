"""ByteServer: a data server's byte path (proto/superfs/v1/bytes.proto), beside its gRPC port.

Listens on TCP (the host of the gRPC address, ``bytes_port``) and on an
abstract Unix socket (``superfs-bytes-<random>``: it lives in this network
namespace only, so a client that finds it is on this host), both wrapped in
TLS when the cluster uses TLS. One thread per connection, blocking sockets:
a payload moves in large ``recv_into``/``sendmsg`` calls and ``pwrite`` to a
slot file, all of which release the GIL, and the event loop of the daemon
(gRPC, sessions) never waits for bulk bytes.

Authorisation is the chunk capability in every request (verified with the
cluster secret, as the gRPC calls do); the connection itself is
authenticated as a session is (HELLO's token, or the TLS client
certificate, by the same :class:`superfs.auth.Authenticator`).

A chained WRITE is forwarded, piece by piece as it arrives, to the next
server of its chain before this server writes the piece itself, so every
replica receives the bytes once and at the same time; its answer waits for
this server's durable commit and the next server's answer, so a success
means every replica has the bytes. If the next server fails or cannot be
reached, the write fails (EIO naming it): never acknowledged with a replica
missing. A server killed in the middle leaves its downstream with half a
payload, which it drops (nothing is committed from a partial payload).

A READ verifies every block it touches; a corrupt block is fetched from one
of the request's ``peers`` (the chunk's other replicas), checked against
this server's own sum for it, written back, and the read answered.

A LOCATE, on the Unix socket only, tells a client on this host where a
chunk's bytes are in a slot file and what their block sums are; the client
reads them itself, straight from the page cache into its buffer (no socket,
one copy instead of three), and verifies them. Opening the file takes the
operating system's permission (slot files are 0600, the data server's
user's), so this lets nobody read what they could not read already.

Bounds: a connection must send its HELLO, and any message once begun, in
``frame_timeout_s`` (a payload gets more time with its size, at
``MIN_RATE`` bytes/s); an idle one is closed after ``idle_timeout_s``;
garbage (an oversized or undecodable header) closes it at once. At most
``max_connections`` are served; others are closed on arrival.
"""
from __future__ import annotations

import errno
import logging
import mmap
import os
import socket
import ssl
import threading
import time
from typing import Any

from superfs import capability
from superfs.auth import Authenticator, Grant, Refused, identify_connection
from superfs.dataserver.blocks import BLOCK
from superfs.dataserver.chunk_format import MAX_CHUNK
from superfs.dataserver.chunk_store import ChunkStore, CorruptBlocks
from superfs.errors import FsError
from superfs.faults import crash_point
from superfs.dataserver.write_fences import WriteFences
from superfs.perms import R_OK, W_OK
from superfs.rpc import byteframes as bf
from superfs.rpc.bytepath import BytePool, ByteTarget, raise_for
from superfs.v1 import bytes_pb2 as bpb

log = logging.getLogger(__name__)

PIECE = 1 << 20             # a chained write is received, forwarded and written in pieces this big
FRAME_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 300.0
MIN_RATE = 1 << 20          # bytes/s a payload must at least arrive at
MAX_CONNECTIONS = 256
SCRATCH_MAX = 8 << 20       # a connection keeps a read buffer up to this size
REPAIR_TIMEOUT_S = 5.0


class _Drop(Exception):
    """End this connection (after logging why)."""


class ByteServer:
    """Serves one ChunkStore's bytes; ``forward`` reaches the other data servers (chains, repairs)."""

    def __init__(self, chunks: ChunkStore, secret: bytes, forward: BytePool, *, name: str = "data",
                 authenticator: Authenticator | None = None, ssl_context: ssl.SSLContext | None = None,
                 max_connections: int = MAX_CONNECTIONS, frame_timeout_s: float = FRAME_TIMEOUT_S,
                 idle_timeout_s: float = IDLE_TIMEOUT_S, piece: int = PIECE,
                 fences: WriteFences | None = None) -> None:
        self.chunks = chunks
        self.fences = fences or WriteFences()   # the gRPC servicer's: the mover fences a file once
        self.secret = secret
        self.forward = forward
        self.name = name
        self.authenticator = authenticator
        self.ssl_context = ssl_context
        self.max_connections = max_connections
        self.frame_timeout_s = frame_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.piece = piece
        self._listeners: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.address = ""
        self.local = ""
        # figures (metrics, tests)
        self.reads = self.writes = self.forwarded = self.repaired_blocks = self.dropped = 0
        self.located = 0   # LOCATEs answered: chunks a client on this host read itself

    # ------------------------------------------------------------- lifecycle

    def start(self, host: str, port: int = 0, *, local: bool | str = True) -> tuple[str, str]:
        """Listen; returns (host:port, local socket name or "").

        ``local``: the abstract Unix socket's name (stable across restarts, so
        clients find a restarted server where they knew it), True for a random
        one, False for none. A name already taken on this host gets a random one.
        """
        tcp = socket.create_server((host.strip("[]") or "0.0.0.0", port), reuse_port=False, backlog=128,
                                   family=socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
        self._listen(tcp)
        bound = tcp.getsockname()[1]
        self.address = f"{host}:{bound}"
        if local:
            name = local if isinstance(local, str) else f"superfs-bytes-{os.urandom(8).hex()}"
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                u.bind("\0" + name)
            except OSError:
                name = f"superfs-bytes-{os.urandom(8).hex()}"
                u.bind("\0" + name)
            u.listen(128)
            self._listen(u)
            self.local = name
        return self.address, self.local

    def _listen(self, sock: socket.socket) -> None:
        self._listeners.append(sock)
        t = threading.Thread(target=self._accept_loop, args=(sock,), name=f"bytes-accept:{self.name}", daemon=True)
        t.start()
        self._threads.append(t)

    def close(self, timeout_s: float = 2.0) -> None:
        with self._lock:
            self._closed = True
            conns = list(self._conns)
        for s in self._listeners:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout_s
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, peer = listener.accept()
            except OSError:
                if self._closed:
                    return
                continue
            with self._lock:
                if self._closed or len(self._conns) >= self.max_connections:
                    full = not self._closed
                    sock.close()
                    if full:
                        self.dropped += 1
                        log.warning("%s byte path: %d connections already, refusing one from %s",
                                    self.name, self.max_connections, peer or "a local process")
                    continue
                self._conns.add(sock)
            t = threading.Thread(target=self._serve, args=(sock, str(peer or "local")), daemon=True,
                                 name=f"bytes:{self.name}")
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            t.start()

    # ------------------------------------------------------------ connection

    def _serve(self, raw: socket.socket, peer: str) -> None:
        sock = raw
        try:
            bf.tune(raw)
            if self.ssl_context is not None:
                raw.settimeout(self.frame_timeout_s)
                sock = self.ssl_context.wrap_socket(raw, server_side=True)
            wire = bf.Wire(sock)
            grant = self._hello(wire, peer)
            scratch = mmap.mmap(-1, BLOCK)
            buf = mmap.mmap(-1, self.piece)  # page-aligned: pieces go to disk around the page cache
            while not self._closed:
                req = wire.read_message(bpb.ByteRequest, time.monotonic() + self.idle_timeout_s,
                                        rest_s=self.frame_timeout_s)
                if req.op == bf.READ:
                    scratch = self._read(wire, req, scratch)
                elif req.op == bf.WRITE:
                    self._write(wire, req, buf, grant)
                elif req.op == bf.LOCATE:
                    self._locate(wire, req, raw.family == socket.AF_UNIX)
                else:
                    raise _Drop(f"unexpected request {req.op}")
        except bf.PeerClosed as e:
            if not e.at_start:
                self._drop(peer, f"closed in the middle of a message ({e})")
        except (bf.ByteTimeout, socket.timeout):
            self._drop(peer, "stalled (nothing arrived in time)")
        except bf.FrameError as e:
            self._drop(peer, f"sent garbage ({e})")
        except _Drop as e:
            self._drop(peer, str(e))
        except ssl.SSLError as e:
            self._drop(peer, f"TLS failed ({e.reason})")
        except OSError as e:
            if not self._closed:
                log.debug("%s byte connection from %s: %s", self.name, peer, e)
        except Exception:  # noqa: BLE001 - one connection's bug must not take the server down
            log.exception("%s byte connection from %s failed", self.name, peer)
        finally:
            with self._lock:
                self._conns.discard(raw)
            try:
                sock.close()
            except OSError:
                pass

    def _drop(self, peer: str, why: str) -> None:
        self.dropped += 1
        log.info("%s byte path: dropped the connection from %s: %s", self.name, peer, why)

    def _hello(self, wire: bf.Wire, peer: str) -> Grant:
        hello = wire.read_message(bpb.ByteRequest, time.monotonic() + self.frame_timeout_s)
        sock = wire.sock
        if hello.op != bf.HELLO:
            raise _Drop("the first message was not HELLO")
        grant = Grant("no authentication configured")
        if self.authenticator is not None:
            try:
                grant = identify_connection(self.authenticator, hello.token,
                                            sock if isinstance(sock, ssl.SSLSocket) else None)
            except Refused as r:
                log.info("%s byte path: refused %s: %s", self.name, peer, r.message)
                wire.send(bf.errno_reply(hello.id, r.errno, r.message), self._send_deadline())
                raise _Drop("refused") from None
        wire.send(bpb.ByteReply(id=hello.id, version=bf.VERSION), self._send_deadline())
        return grant

    def _send_deadline(self, nbytes: int = 0) -> float:
        return time.monotonic() + self.frame_timeout_s + nbytes / MIN_RATE

    # ------------------------------------------------------------------ reads

    def _read(self, wire: bf.Wire, req: bpb.ByteRequest, scratch: mmap.mmap) -> mmap.mmap:
        key = req.key
        repaired: list[int] = []
        try:
            capability.verify_chunk(self.secret, req.cap, ino=key.ino, want=R_OK)
            if req.length > MAX_CHUNK:
                raise FsError(errno.EINVAL, f"read of {req.length} bytes is larger than a chunk")
            if len(scratch) < min(req.length + BLOCK, SCRATCH_MAX):
                scratch = mmap.mmap(-1, min(req.length + BLOCK, SCRATCH_MAX))  # page-aligned
            try:
                view = self.chunks.read_view(key.ino, key.index, req.offset, req.length, scratch)
            except CorruptBlocks as c:
                repaired = self._repair(req, c)
                view = self.chunks.read_view(key.ino, key.index, req.offset, req.length, scratch)
            if view is None:
                if self.chunks.degraded:
                    raise FsError(errno.EIO, f"chunk {key.ino}:{key.index} is not here: this server lost its "
                                             "chunks and `superfs repair` has not re-created them yet")
                wire.send(bpb.ByteReply(id=req.id, exists=False), self._send_deadline())
                return scratch
        except FsError as e:
            wire.send(bf.errno_reply(req.id, e.errno, e.message), self._send_deadline())
            return scratch
        self.reads += 1
        wire.send(bpb.ByteReply(id=req.id, exists=True, length=len(view), repaired=repaired),
                  self._send_deadline(len(view)), view)
        return scratch

    def _locate(self, wire: bf.Wire, req: bpb.ByteRequest, same_host: bool) -> None:
        """Where the chunk lies on this host's disk, for a client that reads it itself (LOCATE)."""
        key = req.key
        try:
            if not same_host:
                raise FsError(errno.EOPNOTSUPP, "LOCATE is answered on the local socket only")
            capability.verify_chunk(self.secret, req.cap, ino=key.ino, want=R_OK)
            where = self.chunks.locate(key.ino, key.index)
        except FsError as e:
            wire.send(bf.errno_reply(req.id, e.errno, e.message), self._send_deadline())
            return
        if where is None and self.chunks.degraded:
            wire.send(bf.errno_reply(req.id, errno.EIO, f"chunk {key.ino}:{key.index} is not here: this server "
                                     "lost its chunks and `superfs repair` has not re-created them yet"),
                      self._send_deadline())
            return
        if where is None:
            wire.send(bpb.ByteReply(id=req.id, exists=False), self._send_deadline())
            return
        self.located += 1
        wire.send(bpb.ByteReply(id=req.id, exists=True, length=where.length, path=where.path, file_dev=where.dev,
                                file_ino=where.file_ino, file_offset=where.file_offset,
                                block_log2=where.block_log2, sums=where.sums), self._send_deadline())

    def _repair(self, req: bpb.ByteRequest, corrupt: CorruptBlocks) -> list[int]:
        """Fetch the corrupt blocks from a peer, write them back; the blocks repaired (or EIO)."""
        head = corrupt.head
        key = req.key
        for hop in req.peers:
            target = ByteTarget.of(hop)
            fixed: dict[int, bytes] = {}
            try:
                for blk in corrupt.blocks:
                    off = blk * head.block
                    n = min(head.block, head.length - off)
                    buf = bytearray(n)
                    exists, got, _ = self.forward.read_into(
                        target, bpb.ByteRequest(key=key, offset=off, length=n, cap=req.cap), memoryview(buf),
                        REPAIR_TIMEOUT_S)
                    if exists and got == n:
                        fixed[blk] = bytes(buf)
            except FsError as e:
                log.warning("chunk %d:%d: cannot fetch corrupt block(s) from %s: %s", key.ino, key.index,
                            target.address, e)
                continue
            if fixed and self.chunks.repair_blocks(key.ino, key.index, head, fixed) == len(corrupt.blocks):
                self.repaired_blocks += len(corrupt.blocks)
                return list(corrupt.blocks)
        raise corrupt

    # ----------------------------------------------------------------- writes

    def _write(self, wire: bf.Wire, req: bpb.ByteRequest, buf: mmap.mmap, grant: Grant) -> None:
        key = req.key
        n = req.length
        if n > MAX_CHUNK:
            wire.send(bf.errno_reply(req.id, errno.EINVAL, f"write of {n} bytes is larger than a chunk"),
                      self._send_deadline())
            raise _Drop(f"announced a payload of {n} bytes")
        deadline = self._send_deadline(n)
        if req.timeout_ms:
            deadline = max(deadline, time.monotonic() + req.timeout_ms / 1000)
        # a forward from the previous server of a chain skips the budget its first server applied
        trusted_forward = req.forwarded and (self.authenticator is None or grant.daemon)
        try:
            capability.verify_chunk(self.secret, req.cap, ino=key.ino, want=W_OK)
            self.fences.check(req.cap, key.ino)   # the file's chunks are moving: ESTALE, ask again
            plan = self.chunks.begin_write(key.ino, key.index, req.offset, n, req.truncate, req.chunk_size,
                                           budget=not trusted_forward)
        except FsError as e:
            self._drain(wire, n, buf, deadline)
            wire.send(bf.errno_reply(req.id, e.errno, e.message), self._send_deadline())
            return
        down, down_err, hop = self._open_downstream(req, deadline)
        view = memoryview(buf)
        got = 0
        local_err: FsError | None = None
        try:
            while got < n:
                k = min(len(view), n - got)
                piece = view[:k]
                wire.read_payload(piece, deadline)
                if down is not None:
                    try:
                        down.send_piece(piece, deadline)
                    except (OSError, bf.ByteTimeout) as e:
                        down_err = FsError(errno.EIO, f"lost the connection to the next replica: {e}")
                        down.close()
                        down = None
                if local_err is None:
                    try:
                        plan.feed(piece, aligned=True)
                    except OSError as e:  # the disk refused (ENOSPC, EIO): take the rest, then say so
                        local_err = FsError(e.errno or errno.EIO, f"cannot write the chunk here: {e}")
                        plan.abort()
                got += k
                if got >= n // 2:
                    crash_point("data.chain_write.mid_payload")
        except BaseException:
            plan.abort()  # half a payload: nothing is committed, the next replica sees the cut too
            if down is not None:
                down.close()
            raise
        length = 0
        try:
            if local_err is None:
                length = plan.commit()
        except FsError as e:
            local_err = e
        except OSError as e:
            local_err = FsError(e.errno or errno.EIO, f"cannot make the chunk durable here: {e}")
        crash_point("data.chain_write.after_commit")
        if down is not None:
            down_err = self._finish_downstream(down, deadline)
        self.writes += 1
        if local_err is not None:
            reply = bf.errno_reply(req.id, local_err.errno, local_err.message)
        elif down_err is not None:
            reply = bf.errno_reply(req.id, errno.EIO if down_err.errno != errno.ETIMEDOUT else errno.ETIMEDOUT,
                                   f"replica {hop} did not take the write: {down_err.message}")
        else:
            reply = bpb.ByteReply(id=req.id, length=length)
        wire.send(reply, self._send_deadline())

    def _open_downstream(self, req: bpb.ByteRequest, deadline: float) -> tuple[Any, FsError | None, str]:
        if not req.chain:
            return None, None, ""
        target = ByteTarget.of(req.chain[0])
        fwd = bpb.ByteRequest(op=bf.WRITE, key=req.key, offset=req.offset, length=req.length,
                              truncate=req.truncate, cap=req.cap, chunk_size=req.chunk_size, chain=req.chain[1:],
                              timeout_ms=req.timeout_ms, forwarded=True)
        for attempt in (0, 1):
            try:
                conn, pooled = self.forward.acquire(target, deadline)
            except FsError as e:
                return None, e, target.address
            try:
                conn.start(fwd, deadline)
            except (OSError, bf.ByteTimeout) as e:
                conn.close()
                if pooled and attempt == 0:
                    continue  # closed while idle (the next server restarted): once more, afresh
                return None, FsError(errno.EIO, f"cannot send to it: {e}"), target.address
            self.forwarded += 1
            return conn, None, target.address
        raise AssertionError("unreachable")

    def _finish_downstream(self, down: Any, deadline: float) -> FsError | None:
        try:
            reply = down.finish(deadline)
            raise_for(reply, down.target)
            return None
        except FsError as e:
            return e
        except (bf.ByteTimeout, socket.timeout):
            return FsError(errno.ETIMEDOUT, "no answer in time")
        except (OSError, bf.FrameError) as e:
            return FsError(errno.EIO, f"connection lost ({e})")
        finally:
            self.forward.release(down)

    def _drain(self, wire: bf.Wire, n: int, buf: mmap.mmap, deadline: float) -> None:
        """Read and drop a refused write's payload, so the connection stays usable."""
        view = memoryview(buf)
        while n > 0:
            k = min(n, len(view))
            wire.read_payload(view[:k], deadline)
            n -= k
