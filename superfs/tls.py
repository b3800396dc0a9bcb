"""TLS for every SuperFS connection: checked files in, gRPC credentials out.

One CA signs every daemon's certificate (and, under mutual TLS, every
client's). The files are read and checked when a daemon starts or a client
connects, with the standard library's ``ssl`` (unreadable file, not PEM, a
key that does not belong to its certificate), so a mistake is a one-line
:class:`TlsError` at start-up instead of a failed handshake later.
"""
from __future__ import annotations

import ssl

import grpc

from superfs.config import TlsConfig


class TlsError(ValueError):
    """The TLS files are missing or wrong; the message names the key and the file."""


def _read(path: str, key: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TlsError(f"tls.{key}: cannot read {path} ({e.strerror})") from None
    if b"-----BEGIN" not in data:
        raise TlsError(f"tls.{key}: {path} is not a PEM file")
    return data


def check(tls: TlsConfig, *, server: bool) -> None:
    """Raise TlsError unless the files make a usable server (or client) identity."""
    if server and not tls.cert_file:
        raise TlsError("tls.cert_file: missing (a daemon needs its certificate and key under TLS)")
    _read(tls.ca_file, "ca_file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cafile=tls.ca_file)
    except ssl.SSLError as e:
        raise TlsError(f"tls.ca_file: {tls.ca_file} holds no usable CA certificate ({e.reason})") from None
    if tls.cert_file and tls.key_file:
        _read(tls.cert_file, "cert_file")
        _read(tls.key_file, "key_file")
        try:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
        except ssl.SSLError as e:
            if e.reason == "KEY_VALUES_MISMATCH":
                raise TlsError(f"tls.key_file: {tls.key_file} is not the key of {tls.cert_file}") from None
            raise TlsError(f"tls.cert_file: cannot use {tls.cert_file} with {tls.key_file} "
                           f"({e.reason or e})") from None


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """Credentials for ``server.add_secure_port``; verifies client certificates under mutual TLS."""
    check(tls, server=True)
    assert tls.cert_file and tls.key_file
    pair = (_read(tls.key_file, "key_file"), _read(tls.cert_file, "cert_file"))
    return grpc.ssl_server_credentials([pair], root_certificates=_read(tls.ca_file, "ca_file"),
                                       require_client_auth=tls.require_client_cert)


def channel_credentials(tls: TlsConfig) -> grpc.ChannelCredentials:
    """Credentials for a secure channel: the CA, and this host's certificate when it has one."""
    check(tls, server=False)
    key = _read(tls.key_file, "key_file") if tls.key_file else None
    cert = _read(tls.cert_file, "cert_file") if tls.cert_file else None
    return grpc.ssl_channel_credentials(root_certificates=_read(tls.ca_file, "ca_file"),
                                        private_key=key, certificate_chain=cert)


def channel_options(tls: TlsConfig) -> list[tuple[str, object]]:
    """Extra channel options: the name expected in server certificates, if configured."""
    return [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []


def server_ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """The same identity for a daemon's session endpoint (superfs/rpc/server.py) as for its gRPC port."""
    check(tls, server=True)
    assert tls.cert_file and tls.key_file
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=tls.ca_file)
    return ctx


def client_ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """A session client's TLS: trusts the cluster CA, presents this host's certificate when it has one."""
    check(tls, server=False)
    ctx = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file and tls.key_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx
