"""What a process presents to daemons (a bearer token and/or TLS), and which one applies.

Which credentials a :class:`superfs.rpc.channels.Channels` uses, in order:
the ``security`` it was given; the one installed for the current context by
:func:`security_scope` (how ``superfs.connect(config=...)`` reaches the
Channels its AsyncFs creates); the process default
(:func:`set_default_security`: daemons set it from their config); else
whatever the Channels' ``security_lookup`` callback finds for the first
address it dials (the client library's: the local cluster of that address,
superfs/client/local.py), else only ``SUPERFS_TOKEN`` from the environment.
"""
from __future__ import annotations

import contextlib
import contextvars
import errno
from dataclasses import dataclass
from typing import Iterator

from superfs import auth, tls
from superfs.config import SecurityConfig, TlsConfig
from superfs.errors import FsError
from superfs.rpc.bytepath import ByteSecurity


@dataclass(frozen=True)
class ClientSecurity:
    """What a process presents to daemons: a token and/or TLS."""

    token: str | None = None
    tls: TlsConfig | None = None

    @classmethod
    def from_config(cls, security: SecurityConfig) -> "ClientSecurity":
        """Read the token (``SUPERFS_TOKEN`` wins over ``auth.token_file``) and check the TLS files.

        Raises FsError(EACCES) naming the file when a credential cannot be read.
        """
        try:
            token = auth.presented_token(security.auth)
            if security.tls is not None:
                tls.check(security.tls, server=False)
        except (auth.AuthError, tls.TlsError) as e:
            raise FsError(errno.EACCES, str(e)) from None
        return cls(token=token, tls=security.tls)

    @classmethod
    def from_environment(cls) -> "ClientSecurity":
        return cls.from_config(SecurityConfig())

    @property
    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        return auth.token_metadata(self.token) if self.token else None

    def byte_security(self) -> ByteSecurity:
        """The same credentials for the byte path (superfs/rpc/bytepath.py)."""
        ctx = tls.client_ssl_context(self.tls) if self.tls is not None else None
        return ByteSecurity(token=self.token, ssl_context=ctx,
                            server_name=self.tls.server_name if self.tls is not None else None)


_scoped: contextvars.ContextVar[ClientSecurity | None] = contextvars.ContextVar("superfs_security", default=None)
_default: ClientSecurity | None = None


def set_default_security(security: ClientSecurity | None) -> None:
    """Credentials for every Channels created later in this process without its own."""
    global _default
    _default = security


@contextlib.contextmanager
def security_scope(security: ClientSecurity | None) -> Iterator[None]:
    """Channels created inside the block (in this thread or task) use ``security``."""
    token = _scoped.set(security)
    try:
        yield
    finally:
        _scoped.reset(token)


def current_security() -> ClientSecurity | None:
    """The scoped credentials, else the process default (None: neither is set)."""
    return _scoped.get() or _default
