"""Secrets at rest and the daemon role under mutual TLS, against real daemon processes.

A cluster secret, tokens file or token file that others can read, or that
anyone but its owner can change, stops a daemon (or a client) with one line
naming the file and its mode. Under mutual TLS without a tokens file, a
certificate the CA signed is a client for any uid, and only the names the
cluster file lists in ``tls.daemon_names`` may call daemon-only RPCs.
"""
from __future__ import annotations

import asyncio
import errno
import os
from typing import Iterator

import pytest

from superfs.cli.launcher import LocalCluster, free_port
from superfs.client import connect
from superfs.rpc.channels import Channels
from superfs.rpc.security import ClientSecurity
from superfs.config import TlsConfig
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb
from test_t6_auth import ROOT, TOKENS, client_config, make_pki, run_cli, write

SECRET = "0123456789abcdef0123456789abcdef"


def dir_server_config(tmp_path: object, secret: str, tokens: str | None = None, name: str = "c") -> str:
    auth = f'[auth]\ntokens_file = "{tokens}"\n' if tokens else ""
    return write(os.path.join(str(tmp_path), f"{name}.toml"), f"""
        [cluster]
        secret_file = "{secret}"
        [dir_server]
        address = "127.0.0.1:{free_port()}"
        data_dir = "{tmp_path}/dir"
    """ + auth, 0o644)


@pytest.mark.parametrize("mode,says", [(0o644, "read by others"), (0o620, "changed by its group"),
                                       (0o602, "changed by others")])
def test_a_loose_tokens_file_or_secret_stops_the_daemon_with_one_line(tmp_path, mode, says):
    good_secret = write(tmp_path / "secret", SECRET)
    loose_tokens = write(tmp_path / "tokens", f"{TOKENS['daemon']} any any daemon\n", mode)
    loose_secret = write(tmp_path / "loose-secret", SECRET, mode)
    for cfg, name in ((dir_server_config(tmp_path, good_secret, loose_tokens), loose_tokens),
                      (dir_server_config(tmp_path, loose_secret, name="c2"), loose_secret)):
        r = run_cli("dir-server", "--config", cfg)
        assert r.returncode == 2, r.stderr
        err = r.stderr.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert name in err and f"{mode:04o}" in err and says in err, err
        r = run_cli("config", "check", "--files", cfg)
        assert r.returncode != 0 and name in r.stdout + r.stderr


def test_group_read_is_allowed_for_a_service_account(tmp_path):
    """root:superfs 0640: daemons running as the group's user read it without owning it."""
    secret = write(tmp_path / "secret", SECRET, 0o640)
    tokens = write(tmp_path / "tokens", f"{TOKENS['daemon']} any any daemon\n", 0o640)
    r = run_cli("config", "check", "--files", dir_server_config(tmp_path, secret, tokens))
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_client_refuses_a_token_file_others_can_read(tmp_path):
    token = write(tmp_path / "alice.token", TOKENS["alice"] + "\n", 0o644)
    cfg = client_config(tmp_path, "alice", f"127.0.0.1:{free_port()}", auth={"token_file": token})
    with pytest.raises(PermissionError) as e:
        connect(config=cfg, timeout_s=3.0)
    assert e.value.errno == errno.EACCES and token in str(e.value) and "0644" in str(e.value)


# ------------------------------------------------- mutual TLS, no tokens file

@pytest.fixture(scope="module")
def mtls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, dict[str, str]]]:
    d = str(tmp_path_factory.mktemp("mtls"))
    pki = make_pki(d, ["node", "alice"])
    base = write(os.path.join(d, "base.toml"), f"""
        [tls]
        ca_file = "{pki['ca.crt']}"
        cert_file = "{pki['node.crt']}"
        key_file = "{pki['node.key']}"
        require_client_cert = true
        daemon_names = ["node"]
    """, 0o644)
    state = os.path.join(d, "state")
    r = run_cli("up", "--state-dir", state, "--config", base, "--shards", "1", "--data-servers", "1",
                "--durability", "async", "--no-auth")  # no tokens file: certificates are the credentials
    assert r.returncode == 0, r.stdout + r.stderr
    cluster = LocalCluster(state)
    yield cluster, pki
    cluster.stop()


def test_mutual_tls_gives_the_daemon_role_only_to_listed_names(mtls_cluster):
    cluster, pki = mtls_cluster
    shard = str(cluster.config["shards"][0])

    async def unseal(name: str) -> int | None:
        sec = ClientSecurity(tls=TlsConfig(ca_file=pki["ca.crt"], cert_file=pki[f"{name}.crt"],
                                           key_file=pki[f"{name}.key"]))
        channels = Channels(5.0, security=sec)
        try:
            await channels.shard(shard).unseal_dir(pb.SealRequest(dir_ino=1 << 30), 5)
            return None
        except FsError as e:
            return e.errno
        finally:
            await channels.close()

    assert asyncio.run(unseal("alice")) == errno.EPERM   # signed by the CA, but not a daemon
    assert asyncio.run(unseal("node")) is None            # listed: unsealing a dir never sealed is a no-op
    # alice is still a client of the file system, for any uid (no tokens file binds her uids)
    d = os.path.dirname(pki["ca.crt"])
    alice = client_config(d, "alice", str(cluster.config["dir_server"]),
                          tls={"ca_file": pki["ca.crt"], "cert_file": pki["alice.crt"], "key_file": pki["alice.key"]})
    with connect(config=alice, creds=ROOT) as c:
        c.write_bytes("/from-alice", b"ok")
        assert c.read_bytes("/from-alice") == b"ok"
