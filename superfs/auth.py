"""Who may talk to the daemons, and as which uids and gids.

Every request carries a credential: a bearer token in the ``authorization``
metadata (``Bearer <token>``), or, under mutual TLS, the client certificate
the TLS layer verified. Daemons look it up in the *tokens file*, which says
what each credential may do::

    # credential                         uids        gids        role
    3f9a0c...e1                          any         any         daemon   # daemons: anything
    77ab2d...90                          any         any                  # a FUSE mount host: acts for every user
    c0de11...42                          1000        1000,100             # alice's notebooks
    cert:worker-7                        2000-2999   2000-2999            # mutual TLS, by certificate CN

Every request whose message has a ``creds`` field is checked against the
credential: its uid, gid and every supplementary group must be in the
credential's sets, so a client cannot claim root (or anyone else) unless its
credential says it may. The servers then enforce POSIX permissions for that
uid as before (DESIGN invariant 4). Daemon-to-daemon RPCs (registration,
directory-entry reservations, seals, remote links, listing and cutting
chunks, fsck's scans) need the ``daemon`` role.

Refusals: no or an unknown credential -> UNAUTHENTICATED with errno EACCES;
creds the credential may not use, or a daemon RPC without the role ->
PERMISSION_DENIED with errno EPERM. Nothing is executed in either case.

With mutual TLS and no tokens file, a certificate signed by the cluster CA is
itself the credential, for any uid; the daemon role goes only to the
certificate names listed in ``tls.daemon_names``. With neither configured,
nothing is checked (as before authentication existed).

The tokens file, a token file and the cluster secret are refused when users
other than their owner can read them or anyone else can change them
(:mod:`superfs.private_files`).

Clients present the first token of their ``auth.token_file``, or
``SUPERFS_TOKEN`` from the environment, which wins. Never a flag.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterable

import grpc

from superfs import private_files
from superfs.config import AuthConfig, SecurityConfig
from superfs.errors import ERRNO_KEY, FsError
from superfs.interception import Behaviour, drain_requests, is_generator
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

TOKEN_ENV = "SUPERFS_TOKEN"
METADATA_KEY = "authorization"
MIN_TOKEN_LEN = 16

# RPCs only daemons send each other; a client credential without the daemon
# role could otherwise seal directories or forge link counts.
DAEMON_ONLY = frozenset({
    "RegisterServer", "ReserveDirEntry", "ReleaseDirEntry", "SealDir", "UnsealDir", "RemoteLink", "AdjustNlink",
    # cluster administration (superfs fsck / repair): they list every name and inode regardless of
    # permissions, remove names without a capability and flip a data server's degraded flag
    "ListAllDirs", "ListDirIntents", "SettleDirIntents", "RecountDir", "ScanEntries", "ScanInodes",
    "ListPending", "RunMaintenance", "RemoveEntry", "SetDegraded", "FenceWriters",
    # data servers: enumerating every user's chunks, and cutting them, is for the shards' reclaim
    # (and its ordered cut after a shrink), repair and fsck; reading and writing bytes needs a chunk
    # capability instead (superfs/capability.py)
    "ListChunks", "DeleteChunks", "TruncateChunk",
    # the dir server fences a directory whose lease it took from a silent holder
    "SetDirFence",
    # shard to shard: forgetting idempotency records, asking which removed directories are still targeted
    "ForgetApplied", "DirsTargeted",
    # moving partitions between shards (dirserver/moves.py): driven by the dir server, asked for by
    # the operator's superfs admin (which runs with the cluster's daemon token)
    "MovePartition", "RemoveShard", "AdoptClusterMap", "ExportPartition", "ImportPartition",
    "DropPartition", "DigestPartition",
    # RENAME_EXCHANGE steps of the dir server (they re-point names without a capability)
    "RepointEntry",
    # the mover (superfs/rebalance): data server states, layout switches, write fences
    "SetServerState", "SwitchLayout", "FenceWrites", "MoverLease",
})


class AuthError(ValueError):
    """A token or tokens file is unreadable or malformed; the message says which line."""


@dataclass(frozen=True)
class IdSet:
    """A set of uids or gids: ``any``, or ranges such as ``1000,2000-2999``."""

    any: bool = False
    ranges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> "IdSet":
        if spec == "any":
            return cls(any=True)
        ranges = []
        for part in spec.split(","):
            lo, sep, hi = part.partition("-")
            if not lo.isdigit() or (sep and not hi.isdigit()):
                raise ValueError(f"{spec!r} is not 'any' or ids like 1000,2000-2999")
            a, b = int(lo), int(hi) if sep else int(lo)
            if a > b or b >= 2**32:
                raise ValueError(f"bad id range {part!r}")
            ranges.append((a, b))
        return cls(ranges=tuple(ranges))

    def __contains__(self, n: object) -> bool:
        return self.any or any(a <= n <= b for a, b in self.ranges)  # type: ignore[operator]

    def __str__(self) -> str:
        if self.any:
            return "any"
        return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in self.ranges)


ANY = IdSet(any=True)


@dataclass(frozen=True)
class Grant:
    """What one credential may do."""

    label: str          # for logs and errors: "token on line 3 of /etc/superfs/tokens"
    uids: IdSet = ANY
    gids: IdSet = ANY
    daemon: bool = False


def ca_signed(cn: str, daemon_names: tuple[str, ...]) -> Grant:
    """Mutual TLS without a tokens file: any uid; the daemon role only for the names the cluster file lists."""
    return Grant(f"certificate CN={cn} signed by the cluster CA", daemon=bool(cn) and cn in daemon_names)


@dataclass(frozen=True)
class TokensFile:
    tokens: dict[bytes, Grant]   # sha256(token) -> grant: lookups never compare secrets byte by byte
    certs: dict[str, Grant]      # certificate common name -> grant


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _check_private(path: str, what: str) -> None:
    try:
        private_files.check(path, f"auth.{what}")
    except private_files.LooseFileError as e:
        raise AuthError(str(e)) from None


def _lines(path: str, what: str) -> list[tuple[int, list[str]]]:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise AuthError(f"auth.{what}: cannot read {path} ({e.strerror})") from None
    except UnicodeDecodeError:
        raise AuthError(f"auth.{what}: {path} is not text") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if fields:
            out.append((n, fields))
    return out


def _check_token(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_LEN or not token.isprintable():
        raise AuthError(f"{where}: a token must be at least {MIN_TOKEN_LEN} printable characters")
    return token


def load_tokens_file(path: str) -> TokensFile:
    """Parse ``credential uids gids [daemon]`` lines (refused if others can read or change the file)."""
    _check_private(path, "tokens_file")
    tokens: dict[bytes, Grant] = {}
    certs: dict[str, Grant] = {}
    for n, fields in _lines(path, "tokens_file"):
        where = f"auth.tokens_file: {path} line {n}"
        if len(fields) not in (3, 4) or (len(fields) == 4 and fields[3] != "daemon"):
            raise AuthError(f"{where}: want 'TOKEN UIDS GIDS [daemon]' or 'cert:NAME UIDS GIDS [daemon]'")
        cred, uids, gids = fields[:3]
        try:
            uset, gset = IdSet.parse(uids), IdSet.parse(gids)
        except ValueError as e:
            raise AuthError(f"{where}: {e}") from None
        daemon = len(fields) == 4
        if cred.startswith("cert:"):
            cn = cred[5:]
            if not cn:
                raise AuthError(f"{where}: empty certificate name after 'cert:'")
            certs[cn] = Grant(f"certificate CN={cn}", uset, gset, daemon)
        else:
            tokens[_digest(_check_token(cred, where))] = Grant(f"token on line {n} of {path}", uset, gset, daemon)
    if not tokens and not certs:
        raise AuthError(f"auth.tokens_file: {path} lists no credential")
    return TokensFile(tokens, certs)


def read_token(path: str) -> str:
    """The first token of a token file (a tokens file works too: its first credential)."""
    _check_private(path, "token_file")
    for n, fields in _lines(path, "token_file"):
        if not fields[0].startswith("cert:"):
            return _check_token(fields[0], f"auth.token_file: {path} line {n}")
    raise AuthError(f"auth.token_file: {path} holds no token")


def presented_token(auth: AuthConfig) -> str | None:
    """The token a client or daemon presents: ``SUPERFS_TOKEN``, else its token file, else none."""
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return _check_token(env, TOKEN_ENV)
    return read_token(auth.token_file) if auth.token_file else None


def token_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return ((METADATA_KEY, f"Bearer {token}"),)


# ------------------------------------------------------------------- server

class Refused(FsError):
    """A request the credential does not allow; ``code`` is the gRPC status to send."""

    def __init__(self, code: grpc.StatusCode, err: int, message: str) -> None:
        super().__init__(err, message)
        self.code = code


class Authenticator:
    """Decides, per request, whether the caller is who it needs to be."""

    def __init__(self, tokens: TokensFile | None, *, mutual_tls: bool, daemon_names: tuple[str, ...] = ()) -> None:
        self.tokens = tokens
        self.mutual_tls = mutual_tls
        self.daemon_names = daemon_names

    @classmethod
    def from_config(cls, security: SecurityConfig) -> "Authenticator | None":
        """None when nothing is to be checked (no tokens file, no mutual TLS)."""
        mutual = bool(security.tls and security.tls.require_client_cert)
        tokens = load_tokens_file(security.auth.tokens_file) if security.auth.tokens_file else None
        if tokens is None and not mutual:
            return None
        return cls(tokens, mutual_tls=mutual, daemon_names=security.tls.daemon_names if security.tls else ())

    def identify(self, metadata: Iterable[tuple[str, Any]],
                 auth_context: Callable[[], dict[str, list[bytes]]]) -> Grant:
        """The caller's grant from its token, else its verified certificate (``auth_context``: read lazily)."""
        token = None
        for key, value in metadata or ():
            if key == METADATA_KEY:
                v = value.decode() if isinstance(value, bytes) else str(value)
                token = v[7:].strip() if v[:7].lower() == "bearer " else v.strip()
        if token is not None and self.tokens is not None:
            grant = self.tokens.tokens.get(_digest(token))
            if grant is None:
                raise Refused(grpc.StatusCode.UNAUTHENTICATED, errno.EACCES,
                              "the token presented is not accepted by this cluster")
            return grant
        peer = auth_context() or {}
        cn = next(iter(peer.get("x509_common_name", ())), b"").decode(errors="replace")
        if self.tokens is None:  # mutual TLS alone: the TLS layer already verified the CA signature
            if cn or peer.get("x509_pem_cert"):
                return ca_signed(cn, self.daemon_names)
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, errno.EACCES,
                          "this cluster requires a client certificate signed by its CA (tls.cert_file)")
        if cn and cn in self.tokens.certs:
            return self.tokens.certs[cn]
        if cn:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, errno.EACCES,
                          f"certificate CN={cn} is not in the cluster's tokens file")
        raise Refused(grpc.StatusCode.UNAUTHENTICATED, errno.EACCES,
                      f"no credential: this cluster requires a token (auth.token_file or ${TOKEN_ENV})")

    @staticmethod
    def check_method(grant: Grant, method: str) -> None:
        if method in DAEMON_ONLY and not grant.daemon:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, errno.EPERM,
                          f"{method} is for daemons only; the {grant.label} lacks the daemon role")

    @staticmethod
    def check_creds(grant: Grant, request: Any) -> None:
        """The uid, gid and groups a request claims must be ones its credential may use."""
        if grant.uids.any and grant.gids.any:
            return
        fields = type(request).DESCRIPTOR.fields_by_name
        if "ops" in fields and isinstance(request, pb.BatchRequest):
            for op in request.ops:  # each change made ahead claims creds of its own
                which = op.WhichOneof("op")
                if which is not None:
                    Authenticator.check_creds(grant, getattr(op, which))
            return
        if "creds" not in fields:
            return
        c = request.creds
        if c.uid not in grant.uids:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, errno.EPERM,
                          f"the {grant.label} may not act as uid {c.uid} (allowed: {grant.uids})")
        for g in (c.gid, *c.groups):
            if g not in grant.gids:
                raise Refused(grpc.StatusCode.PERMISSION_DENIED, errno.EPERM,
                              f"the {grant.label} may not act as gid {g} (allowed: {grant.gids})")


def peer_certificate(ssl_object: Any) -> tuple[str, bool]:
    """(common name, whether a certificate was presented) of a TLS peer (``ssl.SSLObject``/``SSLSocket``)."""
    if ssl_object is None:
        return "", False
    cert = ssl_object.getpeercert()
    cn = ""
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
    return cn, bool(cert)


def identify_connection(authenticator: "Authenticator", token: str, ssl_object: Any) -> Grant:
    """The grant of a connection that presented ``token`` (may be "") over TLS ``ssl_object`` (or None).

    What a gRPC call's metadata and auth context say, for connections that
    are not gRPC (sessions, the byte path): the same rules, the same refusals.
    """
    metadata = [(METADATA_KEY, f"Bearer {token}")] if token else []
    cn, has_cert = peer_certificate(ssl_object)

    def auth_context() -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {}
        if cn:
            out["x509_common_name"] = [cn.encode()]
        if has_cert:
            out["x509_pem_cert"] = [b"present"]
        return out

    return authenticator.identify(metadata, auth_context)


async def _abort(context: grpc.aio.ServicerContext, method: str, r: Refused) -> None:
    log.info("refused %s from %s: %s", method, context.peer(), r.message)
    context.set_trailing_metadata(((ERRNO_KEY, errno.errorcode[r.errno]),))
    await context.abort(r.code, r.message)


class AuthCheck:
    """Wraps every servicer method: the credential, and the creds inside each decoded request.

    ``wrapper_for`` goes to :func:`superfs.interception.intercepting` (see there).
    """

    def __init__(self, authenticator: Authenticator) -> None:
        self.auth = authenticator

    def wrapper_for(self, method: str) -> Callable[[Behaviour, str], Behaviour]:
        return lambda behaviour, kind: self._guard(behaviour, kind, method)

    def _guard(self, behaviour: Behaviour, kind: str, method: str) -> Behaviour:
        auth = self.auth

        async def admit(context: grpc.aio.ServicerContext, request: Any = None,
                        requests: AsyncIterator[Any] | None = None) -> Grant | None:
            """The caller's grant, or None once the call is aborted (after ``requests`` are drained)."""
            try:
                grant = auth.identify(context.invocation_metadata() or (), context.auth_context)
                auth.check_method(grant, method)
                if request is not None:
                    auth.check_creds(grant, request)
                return grant
            except Refused as r:
                if requests is not None:
                    await drain_requests(requests)
                await _abort(context, method, r)
                return None

        def checked(grant: Grant, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async def gen() -> AsyncIterator[Any]:
                async for req in requests:
                    auth.check_creds(grant, req)  # Refused is an FsError: the servicer reports it
                    yield req
            return gen()

        if kind.startswith("unary_"):
            if is_generator(behaviour):
                async def unary_gen(request: Any, context: grpc.aio.ServicerContext) -> Any:
                    if await admit(context, request) is not None:
                        async for item in behaviour(request, context):
                            yield item
                return unary_gen

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if await admit(context, request) is not None:
                    return await behaviour(request, context)
                return None
            return unary

        if is_generator(behaviour):
            async def stream_gen(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
                grant = await admit(context, requests=requests)
                if grant is not None:
                    async for item in behaviour(checked(grant, requests), context):
                        yield item
            return stream_gen

        async def stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            grant = await admit(context, requests=requests)
            if grant is not None:
                return await behaviour(checked(grant, requests), context)
            return None
        return stream
