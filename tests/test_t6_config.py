"""The cluster file: parsing, errors that name the key, flags over the file, what ``superfs up`` writes.

Bad settings must be one line naming the key and exit status 2 from every
command that reads them (never a traceback); the file ``superfs up`` writes
must itself be a valid cluster file that daemons and clients use.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from superfs import config_file
from superfs.cli.config_cmds import EXAMPLE
from superfs.cli.launcher import LocalCluster, free_port
from superfs.client import connect
from superfs.config_file import ConfigError

CLI = [sys.executable, "-m", "superfs.cli.main"]
TIMEOUT = 120


def run_cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=TIMEOUT, **kw)  # type: ignore[call-overload]


def write(path: object, text: str) -> str:
    with open(str(path), "w") as f:
        f.write(textwrap.dedent(text))
    return str(path)


def example() -> str:
    lines = EXAMPLE.strip("\n").splitlines()
    indent = min(len(x) - len(x.lstrip()) for x in lines if x.strip())
    return "\n".join(x[indent:] for x in lines) + "\n"


# ---------------------------------------------------------------- parsing

def test_the_documented_example_parses_and_round_trips(tmp_path):
    path = write(tmp_path / "c.toml", example())
    cf = config_file.load(path)
    assert cf.name == "prod" and cf.replicas == 2 and len(cf.data_servers) == 2
    assert cf.dir_server is not None and cf.dir_server.listen == "0.0.0.0:7000"
    assert cf.tls is not None and cf.tls.require_client_cert
    again = write(tmp_path / "again.toml", config_file.dumps(config_file.to_dict(cf)))
    assert config_file.to_dict(config_file.load(again)) == config_file.to_dict(cf)


def test_relative_paths_are_relative_to_the_file(tmp_path):
    path = write(tmp_path / "c.toml", """
        [cluster]
        secret_file = "secrets/secret"
        [auth]
        tokens_file = "secrets/tokens"
    """)
    cf = config_file.load(path)
    assert cf.secret_file == str(tmp_path / "secrets" / "secret")
    assert cf.auth.tokens_file == str(tmp_path / "secrets" / "tokens")


@pytest.mark.parametrize("text, key", [
    ("[cluster]\nreplica = 2\n", "cluster.replica"),
    ("[clusters]\nname = 'x'\n", "clusters"),
    ("[dir_server]\naddress = 'h:1'\nport = 7\n", "dir_server.port"),
    ("[[shards]]\nid = 0\naddress = 'h:1'\ndatadir = '/x'\n", "shards[0].datadir"),
    ("[tls]\nca_file = 'ca'\nverify = false\n", "tls.verify"),
    ("[auth]\ntoken = 'secret-on-the-command-line'\n", "auth.token"),
])
def test_unknown_keys_are_errors_naming_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as e:
        config_file.load(write(tmp_path / "c.toml", text))
    assert f"{key}: unknown key" in str(e.value)


@pytest.mark.parametrize("text, key", [
    ("[cluster]\nreplicas = 0\n", "cluster.replicas"),
    ("[cluster]\nreplicas = 'two'\n", "cluster.replicas"),
    ("[cluster]\ndurability = 'fast'\n", "cluster.durability"),
    ("[cluster]\ninline_threshold = 100\n", "cluster.inline_threshold"),
    ("[cluster]\nchunk_size = 1073741824\n", "cluster.chunk_size"),
    ("[cluster]\nrpc_timeout_s = 0\n", "cluster.rpc_timeout_s"),
    ("[cache]\ndir_lease_s = -1\n", "cache.dir_lease_s"),
    ("[dir_server]\naddress = 'nohost'\n", "dir_server.address"),
    ("[dir_server]\naddress = 'h:70000'\n", "dir_server.address"),
    ("[dir_server]\ndata_dir = '/x'\n", "dir_server.address"),
    ("[dir_server]\naddress = 'h:1'\nmetrics_port = -1\n", "dir_server.metrics_port"),
    ("[[shards]]\naddress = 'h:1'\n", "shards[0].id"),
    ("[[shards]]\nid = 0\naddress = 'h:1'\n[[shards]]\nid = 0\naddress = 'h:2'\n", "shards[1].id"),
    ("[[shards]]\nid = 0\naddress = 'h:1'\n[[shards]]\nid = 2\naddress = 'h:2'\n", "shards"),
    ("[cluster]\nreplicas = 3\n[[data_servers]]\nid = 0\naddress = 'h:1'\n", "cluster.replicas"),
    ("[tls]\ncert_file = 'c'\nkey_file = 'k'\n", "tls.ca_file"),
    ("[tls]\nca_file = 'ca'\ncert_file = 'c'\n", "tls.key_file"),
    ("[tls]\nca_file = 'ca'\nrequire_client_cert = 'yes'\n", "tls.require_client_cert"),
    ("shards = 3\n", "shards"),
])
def test_invalid_values_are_errors_naming_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as e:
        config_file.load(write(tmp_path / "c.toml", text))
    assert str(e.value).startswith(f"{tmp_path / 'c.toml'}: {key}"), str(e.value)


def test_not_toml_and_missing_file_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        config_file.load(write(tmp_path / "c.toml", "[cluster\n"))
    with pytest.raises(ConfigError, match="no such file"):
        config_file.load(str(tmp_path / "absent.toml"))


def test_overrides_are_validated_like_the_file():
    cf = config_file.ClusterFile()
    assert config_file.with_overrides(cf, replicas=3, durability=None).replicas == 3
    with pytest.raises(ConfigError, match="cluster.durability"):
        config_file.with_overrides(cf, durability="sometimes")
    with pytest.raises(ConfigError, match="cluster.chunk_size"):
        config_file.with_overrides(cf, chunk_size=0)


def test_daemon_configs_take_the_file_and_flags_win(tmp_path):
    cf = config_file.load(write(tmp_path / "c.toml", """
        [cluster]
        durability = "async"
        replicas = 1
        secret_file = "/s"
        [dir_server]
        address = "198.51.100.1:7000"
        listen = "0.0.0.0:7000"
        data_dir = "/d"
        metrics_port = 9400
        [[shards]]
        id = 0
        address = "198.51.100.2:7100"
        data_dir = "/s0"
        metrics_port = 9401
        [[data_servers]]
        id = 0
        address = "198.51.100.3:7200"
        data_dir = "/d0"
    """))
    d = config_file.dir_server_config(cf)
    assert (d.listen, d.data_dir, d.durability, d.shards, d.metrics_listen) == \
        ("0.0.0.0:7000", "/d", "async", 1, "0.0.0.0:9400")
    d = config_file.dir_server_config(cf, listen="127.0.0.1:1", metrics_port=0, shards=4)
    assert (d.listen, d.metrics_listen, d.shards) == ("127.0.0.1:1", None, 4)
    s = config_file.shard_config(cf, 0)
    assert (s.dir_server, s.listen, s.advertise, s.data_dir, s.metrics_listen) == \
        ("198.51.100.1:7000", "198.51.100.2:7100", "198.51.100.2:7100", "/s0", "198.51.100.2:9401")
    assert config_file.shard_config(cf, 0, dir_server="h:9", advertise="h:8").advertise == "h:8"
    ds = config_file.data_server_config(cf, 0, data_dir="/elsewhere")
    assert (ds.data_dir, ds.dir_server, ds.metrics_listen) == ("/elsewhere", "198.51.100.1:7000", None)
    with pytest.raises(ConfigError, match=r"shards: no entry with id = 5"):
        config_file.shard_config(cf, 5)
    with pytest.raises(ConfigError, match="dir_server.data_dir: missing"):
        config_file.dir_server_config(config_file.ClusterFile(secret_file="/s"))


# -------------------------------------------------------------------- CLI

def test_config_check_says_ok_or_names_the_key_with_exit_2(tmp_path):
    good = write(tmp_path / "good.toml", example())
    r = run_cli("config", "check", good)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
    bad = write(tmp_path / "bad.toml", "[cluster]\nreplicas = -1\n")
    r = run_cli("config", "check", bad)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "cluster.replicas" in r.stderr
    assert "Traceback" not in r.stderr
    # --files opens what the file names: here a secret file that does not exist
    r = run_cli("config", "check", "--files", write(tmp_path / "f.toml", "[cluster]\nsecret_file = 'nope'\n"))
    assert r.returncode == 2 and "cluster.secret_file" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("argv, key", [
    (["dir-server", "--config", "@bad"], "cluster.replicas"),
    (["shard", "--config", "@good", "--id", "7"], "shards"),
    (["data-server", "--config", "@good", "--id", "0", "--listen", "nohost"], "data_servers[id=0].listen"),
    (["dir-server", "--config", "@good"], "cluster.secret_file"),  # names a file that is not there
    (["dir-server", "--data-dir", "@tmp"], "cluster.secret_file: missing"),
])
def test_daemons_refuse_bad_settings_with_one_line_and_exit_2(tmp_path, argv, key):
    bad = write(tmp_path / "bad.toml", "[cluster]\nreplicas = 0\n")
    good = write(tmp_path / "good.toml", f"""
        [cluster]
        secret_file = "{tmp_path}/missing-secret"
        [dir_server]
        address = "127.0.0.1:1"
        data_dir = "{tmp_path}/dir"
        [[shards]]
        id = 0
        address = "127.0.0.1:2"
        data_dir = "{tmp_path}/s0"
        [[data_servers]]
        id = 0
        address = "127.0.0.1:3"
        data_dir = "{tmp_path}/d0"
        [[data_servers]]
        id = 1
        address = "127.0.0.1:4"
        data_dir = "{tmp_path}/d1"
    """)
    subst = {"@bad": bad, "@good": good, "@tmp": str(tmp_path)}
    r = run_cli(*[subst.get(a, a) for a in argv])
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert key in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_flag_overrides_the_file_for_a_running_daemon(tmp_path):
    """The file says one port, --listen another: the daemon serves on the flag's."""
    secret = tmp_path / "secret"
    secret.write_text("0123456789abcdef0123456789abcdef")
    secret.chmod(0o600)  # secrets others can read are refused
    file_port, flag_port = free_port(), free_port()
    cfg = write(tmp_path / "c.toml", f"""
        [cluster]
        secret_file = "{secret}"
        [dir_server]
        address = "127.0.0.1:{file_port}"
        data_dir = "{tmp_path}/dir"
    """)
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(CLI + ["dir-server", "--config", cfg, "--listen", f"127.0.0.1:{flag_port}",
                                   "--ready-file", str(ready)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert json.loads(ready.read_text())["address"] == f"127.0.0.1:{flag_port}"
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)


# ------------------------------------------------------- what up writes

def test_up_writes_a_valid_cluster_file_that_clients_and_daemons_use(tmp_path):
    state = str(tmp_path / "state")
    r = run_cli("up", "--state-dir", state, "--shards", "1", "--data-servers", "1", "--durability", "async")
    try:
        assert r.returncode == 0, r.stderr
        toml_path = os.path.join(state, "cluster.toml")
        assert run_cli("config", "check", "--files", toml_path).returncode == 0
        cf = config_file.load(toml_path)
        assert cf.durability == "async" and len(cf.shards) == 1 and len(cf.data_servers) == 1
        assert cf.auth.tokens_file and stat.S_IMODE(os.stat(cf.auth.tokens_file).st_mode) == 0o600
        assert all(n.metrics_port for n in (cf.dir_server, *cf.shards, *cf.data_servers))  # type: ignore[union-attr]
        # the daemons were started from it
        cmdlines = []
        for name in ("dir", "shard-0", "data-0"):
            pid = LocalCluster(state).running_pid(name)
            assert pid is not None
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdlines.append(f.read().split(b"\0"))
        assert all(b"--config" in c and toml_path.encode() in c for c in cmdlines)
        # clients: by the file, by the state dir, by address (the per-user index finds the token)
        with connect(config=toml_path) as c:
            c.write_bytes("/hello", b"from the cluster file")
        with connect(state_dir=state) as c:
            assert c.read_bytes("/hello") == b"from the cluster file"
        with connect(json.load(open(os.path.join(state, "cluster.json")))["dir_server"]) as c:
            assert c.listdir("/") == ["hello"]
    finally:
        run_cli("down", "--state-dir", state)


def test_up_takes_settings_from_a_config_and_flags_win(tmp_path):
    base = write(tmp_path / "base.toml", """
        [cluster]
        name = "from-file"
        replicas = 1
        chunk_size = 65536
        durability = "async"
        [[shards]]
        id = 0
        address = "h:1"
        [[shards]]
        id = 1
        address = "h:2"
        [[shards]]
        id = 2
        address = "h:3"
    """)
    state = tmp_path / "state"
    cluster = LocalCluster(str(state))
    r = run_cli("up", "--state-dir", str(state), "--config", base, "--durability", "durable",
                "--data-servers", "1", "--no-metrics")
    try:
        assert r.returncode == 0, r.stderr
        cf = cluster.cluster_file()
        assert (cf.name, cf.chunk_size, cf.durability, len(cf.shards), len(cf.data_servers)) == \
            ("from-file", 65536, "durable", 3, 1)
        assert cf.dir_server is not None and cf.dir_server.metrics_port == 0
    finally:
        run_cli("down", "--state-dir", str(state))
    r = run_cli("up", "--state-dir", str(tmp_path / "s2"), "--config", write(tmp_path / "b.toml", "[x]\n"))
    assert r.returncode == 2 and "x: unknown key" in r.stderr and "Traceback" not in r.stderr


def test_a_state_dir_from_before_cluster_toml_gets_one_with_its_ports(tmp_path):
    state = tmp_path / "old"
    state.mkdir()
    old = {"dir_server": "127.0.0.1:41001", "shards": ["127.0.0.1:41002"], "data_servers": ["127.0.0.1:41003"],
           "replicas": 1, "inline_threshold": 4096, "chunk_size": 65536, "durability": "durable"}
    (state / "cluster.json").write_text(json.dumps(old))
    cluster = LocalCluster(str(state))
    assert [(s.name, s.port) for s in cluster.specs()] == [("dir", 41001), ("shard-0", 41002), ("data-0", 41003)]
    cf = config_file.load(str(state / "cluster.toml"))
    assert (cf.inline_threshold, cf.chunk_size, cf.replicas) == (4096, 65536, 1)
    assert cf.secret_file == str(state / "secret") and cf.auth.tokens_file == str(state / "tokens")
    assert json.loads((state / "cluster.json").read_text())["dir_server"] == "127.0.0.1:41001"
    assert cluster.stop() == []  # nothing ran; and its address leaves the per-user index


def test_a_cluster_that_cannot_start_leaves_no_daemon_behind(tmp_path):
    """A daemon that fails to start (its port taken) fails the start, and the ones started with it stop."""
    import socket

    from superfs.cli.launcher import LaunchError
    from superfs.procs import pid_alive

    c = LocalCluster(str(tmp_path / "c"))
    c.init(shards=2, data_servers=1, replicas=1, inline_threshold=4096, chunk_size=65536, durability="async",
           metrics=False)
    host, port = str(c.config["shards"][1]).rsplit(":", 1)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        squatter.bind((host, int(port)))
        squatter.listen()
        with pytest.raises(LaunchError, match="shard-1"):
            c.start()
    pids = [p.pid for p in c.procs.values()]
    assert pids and not any(pid_alive(pid) for pid in pids)
    assert all(c.running_pid(s.name) is None for s in c.specs())
