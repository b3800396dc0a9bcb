"""Authentication and TLS against real daemon processes started by ``superfs up``.

A client with no credential, a wrong one, or creds its credential does not
cover (a forged uid or group) is refused with a clear error and nothing
changes; daemon-to-daemon RPCs need the daemon role; TLS (and mutual TLS,
with identities by certificate name) carries all traffic; a TLS mistake is
one clear line at daemon start-up. Certificates are made here with the
``cryptography`` package.
"""
from __future__ import annotations

import datetime
import errno
import ipaddress
import os
import subprocess
import sys
import textwrap
from typing import Iterator

import pytest

from superfs import auth
from superfs.cli.launcher import LocalCluster, free_port
from superfs.client import Creds, connect
from superfs.rpc.channels import Channels
from superfs.rpc.security import ClientSecurity
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

CLI = [sys.executable, "-m", "superfs.cli.main"]
TIMEOUT = 120
ROOT = Creds(0, 0, ())
ALICE = Creds(1000, 1000, (100,))

TOKENS = {"daemon": "d" * 40, "mount": "m" * 40, "alice": "a" * 40, "wrong": "w" * 40}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=TIMEOUT, env=env)


def write(path: object, text: str, mode: int = 0o600) -> str:
    with open(str(path), "w") as f:
        f.write(textwrap.dedent(text))
    os.chmod(str(path), mode)
    return str(path)


def client_config(d: object, name: str, address: str, **tables: dict[str, object]) -> str:
    lines = [f'[dir_server]\naddress = "{address}"\n']
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines += [f'{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}' for k, v in values.items()]
    return write(os.path.join(str(d), f"{name}.toml"), "\n".join(lines).replace("'", '"') + "\n", 0o644)


def up(state: str, base: str) -> LocalCluster:
    r = run_cli("up", "--state-dir", state, "--config", base, "--shards", "1", "--data-servers", "1",
                "--durability", "async")
    assert r.returncode == 0, r.stdout + r.stderr
    return LocalCluster(state)


# ------------------------------------------------------------ certificates

def make_pki(d: str, names: list[str], ips: tuple[str, ...] = ("127.0.0.1",)) -> dict[str, str]:
    """A CA, and for each name a key + certificate (CN=name, SAN localhost and ``ips``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    out: dict[str, str] = {}

    def save(name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        out[f"{name}.key"] = write(os.path.join(d, f"{name}.key"), key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())
        out[f"{name}.crt"] = write(os.path.join(d, f"{name}.crt"),
                                   cert.public_bytes(serialization.Encoding.PEM).decode(), 0o644)

    def ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    ca_key, ca_cert = ca("superfs test CA")
    save("ca", ca_key, ca_cert)
    other_key, other_cert = ca("some other CA")
    save("other-ca", other_key, other_cert)
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName("localhost")] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]),
                    critical=False)
                .sign(ca_key, hashes.SHA256()))
        save(name, key, cert)
    return out


# ------------------------------------------------------------------ tokens

@pytest.fixture(scope="module")
def token_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, str]]:
    d = str(tmp_path_factory.mktemp("auth"))
    write(os.path.join(d, "tokens"), f"""
        # credential  uids  gids  role
        {TOKENS['daemon']}  any   any   daemon
        {TOKENS['mount']}   any   any
        {TOKENS['alice']}   1000  1000,100
    """)
    for name, tok in TOKENS.items():
        write(os.path.join(d, f"{name}.token"), tok + "\n")
    base = write(os.path.join(d, "base.toml"), f"""
        [auth]
        tokens_file = "{d}/tokens"
        token_file = "{d}/daemon.token"
    """, 0o644)
    cluster = up(os.path.join(d, "state"), base)
    address = str(cluster.config["dir_server"])
    for name in TOKENS:
        client_config(d, name, address, auth={"token_file": f"{d}/{name}.token"})
    client_config(d, "nobody", address)
    with connect(config=os.path.join(d, "mount.toml"), creds=ROOT) as admin:
        admin.makedirs("/home/alice")
        admin.chown("/home/alice", 1000, 1000)
        admin.write_bytes("/rootfile", b"root's")
        admin.chmod("/rootfile", 0o644)
    yield cluster, d
    cluster.stop()


def test_no_credential_is_refused_clearly_and_changes_nothing(token_cluster):
    cluster, d = token_cluster
    with pytest.raises(PermissionError) as e:
        connect(config=os.path.join(d, "nobody.toml"))
    assert e.value.errno == errno.EACCES and "requires a token" in str(e.value)

    async def mkdir_without_token() -> None:
        channels = Channels(5.0, security=ClientSecurity())
        try:
            stub = channels.dir(str(cluster.config["dir_server"]))
            with pytest.raises(FsError) as err:
                await stub.mkdir(pb.MkdirRequest(parent_ino=1, name="sneaky", mode=0o777, creds=pb.Creds()), 5)
            assert err.value.errno == errno.EACCES
        finally:
            await channels.close()

    import asyncio
    asyncio.run(mkdir_without_token())
    with connect(config=os.path.join(d, "mount.toml"), creds=ROOT) as admin:
        assert not admin.exists("/sneaky")


def test_wrong_token_is_refused_and_the_environment_wins_over_the_file(token_cluster, monkeypatch):
    _, d = token_cluster
    with pytest.raises(PermissionError) as e:
        connect(config=os.path.join(d, "wrong.toml"))
    assert e.value.errno == errno.EACCES and "not accepted" in str(e.value)
    monkeypatch.setenv(auth.TOKEN_ENV, TOKENS["wrong"])
    with pytest.raises(PermissionError):
        connect(config=os.path.join(d, "mount.toml"))  # its file has a good token, the env a bad one
    monkeypatch.setenv(auth.TOKEN_ENV, TOKENS["alice"])
    with connect(config=os.path.join(d, "nobody.toml"), creds=ALICE) as c:  # no file: the env's token
        assert c.listdir("/home/alice") == []


def test_forged_uid_or_group_is_refused_and_changes_nothing(token_cluster):
    _, d = token_cluster
    alice_cfg = os.path.join(d, "alice.toml")
    with connect(config=alice_cfg, creds=ROOT) as fake_root:  # connecting reads only the cluster map
        with pytest.raises(PermissionError) as e:
            fake_root.mkdir("/owned-by-root")
        assert e.value.errno == errno.EPERM and "may not act as uid 0" in str(e.value)
        with pytest.raises(PermissionError):
            fake_root.chmod("/rootfile", 0o666)
        with pytest.raises(PermissionError):
            fake_root.write_bytes("/rootfile", b"overwritten")
    with connect(config=alice_cfg, creds=Creds(1000, 0, ())) as wrong_group:
        with pytest.raises(PermissionError) as e:
            wrong_group.mkdir("/home/alice/g0")
        assert "may not act as gid 0" in str(e.value)
    with connect(config=alice_cfg, creds=Creds(1000, 1000, (0,))) as extra_group:
        with pytest.raises(PermissionError):
            extra_group.listdir("/home/alice")
    with connect(config=os.path.join(d, "mount.toml"), creds=ROOT) as admin:
        assert not admin.exists("/owned-by-root") and not admin.exists("/home/alice/g0")
        assert admin.read_bytes("/rootfile") == b"root's"
        assert admin.stat("/rootfile").st_mode & 0o777 == 0o644


def test_an_honest_client_gets_posix_permissions_of_its_uid(token_cluster):
    _, d = token_cluster
    with connect(config=os.path.join(d, "alice.toml"), creds=ALICE) as alice:
        alice.write_bytes("/home/alice/notes", b"mine")
        assert alice.read_bytes("/home/alice/notes") == b"mine"
        assert alice.read_bytes("/rootfile") == b"root's"  # 0644: readable
        with pytest.raises(PermissionError) as e:
            alice.mkdir("/not-in-root")                    # / is root's 0755
        assert e.value.errno == errno.EACCES
        with pytest.raises(PermissionError) as e:
            alice.chmod("/rootfile", 0o600)                # not the owner
        assert e.value.errno == errno.EPERM
    with connect(config=os.path.join(d, "mount.toml"), creds=Creds(1000, 1000, ())) as mount_as_alice:
        assert mount_as_alice.read_bytes("/home/alice/notes") == b"mine"  # a mount acts for any uid


def test_daemon_rpcs_need_the_daemon_role(token_cluster):
    cluster, d = token_cluster
    shard = str(cluster.config["shards"][0])

    async def seal(token: str | None) -> int | None:
        channels = Channels(5.0, security=ClientSecurity(token=token))
        try:
            await channels.shard(shard).unseal_dir(pb.SealRequest(dir_ino=1 << 30), 5)
            return None
        except FsError as e:
            return e.errno
        finally:
            await channels.close()

    import asyncio
    assert asyncio.run(seal(TOKENS["alice"])) == errno.EPERM
    assert asyncio.run(seal(TOKENS["mount"])) == errno.EPERM
    assert asyncio.run(seal(None)) == errno.EACCES
    assert asyncio.run(seal(TOKENS["daemon"])) is None  # unsealing a directory never sealed: a no-op


def test_tokens_file_mistakes_are_named_with_their_line(tmp_path):
    path = write(tmp_path / "tokens", f"{'x' * 40} any any\n{'y' * 40} 10-5 any\n")
    with pytest.raises(auth.AuthError, match="line 2"):
        auth.load_tokens_file(path)
    with pytest.raises(auth.AuthError, match="at least 16"):
        auth.load_tokens_file(write(tmp_path / "t2", "short any any\n"))
    with pytest.raises(auth.AuthError, match="daemon"):
        auth.load_tokens_file(write(tmp_path / "t3", f"{'x' * 40} any any root\n"))
    ids = auth.IdSet.parse("0,1000,2000-2999")
    assert 0 in ids and 2500 in ids and 1001 not in ids and str(ids) == "0,1000,2000-2999"


# --------------------------------------------------------------------- TLS

@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, str, dict[str, str]]]:
    d = str(tmp_path_factory.mktemp("tls"))
    pki = make_pki(d, ["node", "alice", "mallory"])
    write(os.path.join(d, "tokens"), """
        cert:node   any   any   daemon
        cert:alice  1000  1000,100
    """)
    base = write(os.path.join(d, "base.toml"), f"""
        [tls]
        ca_file = "{pki['ca.crt']}"
        cert_file = "{pki['node.crt']}"
        key_file = "{pki['node.key']}"
        require_client_cert = true
        [auth]
        tokens_file = "{d}/tokens"
    """, 0o644)
    cluster = up(os.path.join(d, "state"), base)
    yield cluster, d, pki
    cluster.stop()


def test_mutual_tls_carries_traffic_and_binds_uids_to_the_certificate(tls_cluster):
    cluster, d, pki = tls_cluster
    address = str(cluster.config["dir_server"])
    admin = client_config(d, "admin", address, tls={"ca_file": pki["ca.crt"], "cert_file": pki["node.crt"],
                                                    "key_file": pki["node.key"]})
    alice = client_config(d, "alice", address, tls={"ca_file": pki["ca.crt"], "cert_file": pki["alice.crt"],
                                                    "key_file": pki["alice.key"]})
    with connect(config=admin, creds=ROOT) as c:
        c.makedirs("/home/alice", exist_ok=True)
        c.chown("/home/alice", 1000, 1000)
        big = os.urandom(300 * 1024)  # chunked: through the data server, over TLS too
        c.write_bytes("/big", big)
        assert c.read_bytes("/big") == big
    with connect(config=alice, creds=ALICE) as c:
        c.write_bytes("/home/alice/x", b"tls")
        assert c.read_bytes("/home/alice/x") == b"tls"
    with connect(config=alice, creds=ROOT) as c:
        with pytest.raises(PermissionError) as e:
            c.mkdir("/forged")
        assert e.value.errno == errno.EPERM and "CN=alice" in str(e.value)
    mallory = client_config(d, "mallory", address, tls={"ca_file": pki["ca.crt"], "cert_file": pki["mallory.crt"],
                                                        "key_file": pki["mallory.key"]})
    with pytest.raises(PermissionError) as e:  # signed by the CA, but not in the tokens file
        connect(config=mallory)
    assert "CN=mallory" in str(e.value)


def test_without_a_client_certificate_or_without_tls_nothing_gets_through(tls_cluster):
    cluster, d, pki = tls_cluster
    address = str(cluster.config["dir_server"])
    for cfg in (client_config(d, "nocert", address, tls={"ca_file": pki["ca.crt"]}),
                client_config(d, "plain", address),
                client_config(d, "othertrust", address, tls={"ca_file": pki["other-ca.crt"],
                                                             "cert_file": pki["alice.crt"],
                                                             "key_file": pki["alice.key"]})):
        with pytest.raises(OSError) as e:
            connect(config=cfg, timeout_s=3.0)
        assert e.value.errno in (errno.EIO, errno.EACCES), e.value  # refused at the TLS handshake
        assert "[tls]" in str(e.value)  # and the message says where to look


def test_tls_mistakes_are_one_clear_line_at_daemon_start(tmp_path):
    pki = make_pki(str(tmp_path), ["node", "other"])
    secret = write(tmp_path / "secret", "0123456789abcdef0123456789abcdef")
    not_pem = write(tmp_path / "garbage.crt", "hello\n")
    cases = [
        ({"cert_file": pki["node.crt"], "key_file": pki["other.key"]}, "tls.key_file"),   # key of another cert
        ({"ca_file": not_pem}, "tls.ca_file"),
        ({"cert_file": str(tmp_path / "absent.crt")}, "tls.cert_file"),
        ({"cert_file": None, "key_file": None}, "tls.cert_file: missing"),
    ]
    for change, key in cases:
        tls = {"ca_file": pki["ca.crt"], "cert_file": pki["node.crt"], "key_file": pki["node.key"], **change}
        lines = "\n".join(f'{k} = "{v}"' for k, v in tls.items() if v is not None)
        cfg = write(tmp_path / "c.toml", f"""
            [cluster]
            secret_file = "{secret}"
            [dir_server]
            address = "127.0.0.1:{free_port()}"
            data_dir = "{tmp_path}/dir"
        """ + "[tls]\n" + lines + "\n", 0o644)
        r = run_cli("dir-server", "--config", cfg)
        assert r.returncode == 2, (change, r.stderr)
        assert key in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# ---------------------------------------------- in process: streamed RPCs

async def test_streamed_chunk_rpcs_need_a_token_and_a_chunk_capability(tmp_path):
    """The auth wrapper keeps streaming handlers' shape (request streams, response streams).

    A token only gets the caller through the door: a uid-limited credential
    moves the bytes of an inode only with a chunk capability for it, which the
    inode's shard signs after its own permission check (issue 13).
    """
    import asyncio
    import signal

    from superfs import capability, daemon
    from superfs.client import streams
    from superfs.config import AuthConfig, SecurityConfig
    from superfs.dataserver.chunk_store import ChunkStore
    from superfs.dataserver.service import DataServicer

    secret = b"t6-cluster-secret-0123456789"
    tokens = write(tmp_path / "tokens", f"{TOKENS['alice']} 1000 1000\n")
    chunks = ChunkStore.open(str(tmp_path / "chunks"), durable=False)
    ready = str(tmp_path / "ready")
    task = asyncio.create_task(daemon.serve(
        "data-t6", "127.0.0.1:0", DataServicer(chunks, secret).add_to, ready_file=ready,
        security=SecurityConfig(auth=AuthConfig(tokens_file=tokens)), metrics_listen="127.0.0.1:0"))
    try:
        while daemon.read_ready_file(ready) is None:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.02)
        address = str(daemon.read_ready_file(ready)["address"])  # type: ignore[index]
        ino = (3 << 40) | 1
        key = pb.ChunkKey(ino=ino, index=0)
        cap = capability.sign_chunk(secret, ino=ino, rights=6)
        data = os.urandom(3 * (1 << 20) + 5)  # several pieces each way
        anonymous, alice = Channels(10.0, security=ClientSecurity()), \
            Channels(10.0, security=ClientSecurity(token=TOKENS["alice"]))
        nobody, mine = anonymous.data_streams(address), alice.data_streams(address)
        try:
            for attempt, err in (
                (lambda: streams.write_chunk(nobody, key, 0, memoryview(data), 10.0, cap),
                 errno.EACCES),
                (lambda: streams.read_chunk(nobody, key, 0, len(data), 10.0, cap), errno.EACCES),
                (lambda: streams.write_chunk(mine, key, 0, memoryview(data), 10.0), errno.EACCES),
                (lambda: streams.read_chunk(mine, key, 0, len(data), 10.0), errno.EACCES),
            ):
                with pytest.raises(FsError) as e:
                    await attempt()
                assert e.value.errno == err
            assert await streams.read_chunk(mine, key, 0, 10, 10.0, cap) == (b"", False)
            assert await streams.write_chunk(mine, key, 0, memoryview(data), 10.0, cap) == len(data)
            assert await streams.read_chunk(mine, key, 0, len(data), 10.0, cap) == (data, True)
        finally:
            await anonymous.close()
            await alice.close()
    finally:
        if not task.done():
            os.kill(os.getpid(), signal.SIGTERM)  # serve() stops on SIGTERM (its loop's handler)
        await task
        chunks.close()
