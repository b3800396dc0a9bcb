"""deploy/docker-compose.yml, run for real, as an operator would.

The images come from deploy/build-images.sh (no registry: a debootstrap'ed
Debian base, then deploy/Dockerfile; cached between runs). ``docker compose
up -d --wait`` brings up the dir server, three shards and three data servers,
healthy once each serves (``superfs check-ready`` on its ready file), and a
client container that mounts the cluster at /mnt/superfs. Then, through that
mount only: a tree goes in (tar, inline and chunked files), ``docker kill``
takes down a data server and a shard, the shard's files answer EIO while the
rest reads back intact (the other replica serves the killed data server's
chunks), ``docker compose start`` brings both back, everything reads back,
``superfs fsck`` finds the cluster clean, and ``docker compose down -v``
leaves no container, volume or network behind, and the host's network
settings as they were.

Needs root, a Docker engine (started here with deploy's flags if none
answers), debootstrap and the compose plugin; skipped with the reason where
the machine lacks them. The services use the host's network on fixed
127.0.0.1 ports (deploy/docker/cluster.toml).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from typing import Iterator

import pytest
from docker_support import DEPLOY, IMAGE, ROOT, Engine, build_images, leftovers, network_state, run, why_not

from superfs import config_file

pytestmark = [pytest.mark.skipif(why_not(compose=True) is not None, reason=str(why_not(compose=True))),
              pytest.mark.timeout(2400)]

PROJECT = "superfs-t6"  # not the file's own name, so an operator's 'superfs' project is never touched
COMPOSE_FILE = os.path.join(DEPLOY, "docker-compose.yml")
CLUSTER = config_file.load(os.path.join(DEPLOY, "docker", "cluster.toml"))
DAEMONS = ["dir"] + [f"shard-{n.id}" for n in CLUSTER.shards] + [f"data-{n.id}" for n in CLUSTER.data_servers]
MOUNT = "/mnt/superfs"
HEALTHY_S = 300.0
KILLED_SHARD, KILLED_DATA = "shard-1", "data-1"

# run inside the client container: each path's sha256, or the errno name reading it failed with
READER = """
import errno, hashlib, json, sys
out = {}
for p in sys.argv[1:]:
    try:
        with open(p, "rb") as f:
            out[p] = hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        out[p] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
"""
# run inside the client container: the shard holding each path's inode, from the cluster map
SHARD_OF = """
import asyncio, json, os, sys
from superfs.client import resolve
from superfs.client.admin import AdminClient
from superfs.rpc.security import security_scope
address, security, _ = resolve(config="/etc/superfs/cluster.toml")
async def main():
    admin = await AdminClient.connect(address)
    try:
        await admin.cluster_map()
        return {p: admin.shard_of_ino(os.stat(p).st_ino) for p in sys.argv[1:]}
    finally:
        await admin.close()
with security_scope(security):
    print(json.dumps(asyncio.run(main())))
"""


COMPOSE = ["docker", "compose", "-f", COMPOSE_FILE, "-p", PROJECT]


def compose(*args: str, timeout: float = 300.0, check: bool = True, stdin: bytes | None = None) -> str:
    if stdin is None:
        return run(*COMPOSE, *args, timeout=timeout, check=check).stdout
    r = subprocess.run([*COMPOSE, *args], input=stdin, capture_output=True, timeout=timeout)
    assert r.returncode == 0, f"compose {' '.join(args)}: {r.stderr.decode(errors='replace')[-3000:]}"
    return r.stdout.decode()


def states() -> dict[str, tuple[str, str, int]]:
    """service -> (state, health, exit code) of every container of the project."""
    out = {}
    for line in compose("ps", "-a", "--format", "json").splitlines():
        if not line.strip():
            continue
        rows = json.loads(line)
        for c in rows if isinstance(rows, list) else [rows]:
            out[c["Service"]] = (c["State"], c.get("Health", ""), int(c.get("ExitCode", 0)))
    return out


def wait_healthy(services: list[str]) -> None:
    deadline = time.monotonic() + HEALTHY_S
    while True:
        now = states()
        if all(now.get(s, ("", ""))[1] == "healthy" for s in services):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not healthy within {HEALTHY_S:.0f} s: {now}\n{compose('logs', '--tail', '30')}")
        time.sleep(1)


def ports_in_use() -> list[int]:
    ports = []
    for node in (CLUSTER.dir_server, *CLUSTER.shards, *CLUSTER.data_servers):
        assert node is not None
        for port in (int(node.address.rpartition(":")[2]), node.session_port, node.metrics_port):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    ports.append(port)
    return ports


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    before = network_state()
    e = Engine()
    e.start()
    yield e
    e.stop()
    assert network_state() == before, "the Docker engine changed the host's network settings"


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    took = build_images()
    print(f"deploy/build-images.sh: {took:.0f} s")
    return IMAGE


@pytest.fixture(scope="module")
def cluster(image: str) -> Iterator[dict[str, object]]:
    compose("down", "-v", "--remove-orphans", check=False)  # a run killed half-way left it up
    busy = ports_in_use()
    if busy:
        pytest.skip(f"127.0.0.1 ports {busy} are taken: the compose cluster (deploy/docker/cluster.toml) needs them")
    before = network_state()
    try:
        compose("up", "-d", "--wait", timeout=HEALTHY_S + 120)
        yield {"network": before}
    finally:
        compose("down", "-v", "--remove-orphans", check=False, timeout=300)


def test_up_brings_every_daemon_and_the_mount_up_healthy(cluster):
    now = states()
    assert now["secrets"] == ("exited", "", 0), now  # the one-shot secrets service ran, and succeeded
    for service in DAEMONS + ["client"]:
        assert now[service][:2] == ("running", "healthy"), (service, now)
    # health comes from the daemon's own readiness: its ready file, process and port
    out = compose("exec", "-T", "shard-0", "superfs", "check-ready", "/run/superfs/ready")
    assert out.startswith("ready: pid ") and "serving on 127.0.0.1:" in out, out
    # every daemon's metrics, and the cluster as the dir server sees it
    with urllib.request.urlopen(f"http://127.0.0.1:{CLUSTER.dir_server.metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert 'superfs_cluster_servers{kind="shard"} 3.0' in text and 'superfs_cluster_servers{kind="data"} 3.0' in text
    status = compose("exec", "-T", "client", "superfs", "status", "--config", "/etc/superfs/cluster.toml")
    assert "shards 3   data servers 3" in status and "do not answer" not in status, status


SOURCES = """
import hashlib, os, sys
root = sys.argv[1]
h = hashlib.sha256()
for top, dirs, files in sorted(os.walk(root)):
    dirs.sort()
    for name in sorted(files):
        if name.endswith((".py", ".pyi")):
            path = os.path.join(top, name)
            h.update(os.path.relpath(path, root).encode() + b"\\0")
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
print(h.hexdigest())
"""


def test_the_image_holds_this_checkout_and_a_rebuild_comes_from_cache(image):
    image_id = run("docker", "image", "inspect", "-f", "{{.Id}}", IMAGE).stdout.strip()
    build_images()  # nothing changed since the fixture built it: every step cached, the same image
    assert run("docker", "image", "inspect", "-f", "{{.Id}}", IMAGE).stdout.strip() == image_id
    installed = run("docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", IMAGE, "-c",
                    "cd /tmp && python3 -c \"$0\" \"$(python3 -c 'import os, superfs; "
                    "print(os.path.dirname(superfs.__file__))')\"", SOURCES).stdout.strip()
    here = run(sys.executable, "-c", SOURCES, os.path.join(ROOT, "superfs")).stdout.strip()
    assert installed == here  # what pip installed in the image is this checkout's superfs/


# what needs an extra, in the image (pip install superfs, no extras) -> the extra it must name
WITHOUT_EXTRAS = [
    ("echo '{\"text\": \"a b\"}' > /tmp/in.jsonl && exec chukonu dedup /tmp/in.jsonl /tmp/out", "chukonu", 2),
    ("exec kvserve serve --attention-kernel numba --ready-file /tmp/ready", "kvserve", 2),
    ("exec python3 -c 'import ckpt.dcp'", "torch", 1),
    ("exec python3 -c 'import superfs.fsspec_fs'", "fsspec", 1),
]


@pytest.mark.parametrize("script, extra, status", WITHOUT_EXTRAS)
def test_an_install_without_extras_names_the_one_to_install(image, script, extra, status):
    r = run("docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", f"cd /tmp && {script}",
            check=False, timeout=300)
    assert r.returncode == status, (r.returncode, r.stderr)
    last = r.stderr.strip().splitlines()[-1]
    assert f"pip install 'superfs[{extra}]'" in last, r.stderr
    if status == 2:  # a command: that one line only
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def make_tree() -> dict[str, bytes]:
    """Small files (inline in their shard record) and chunked ones (past 64 KiB, some past a 4 MiB chunk)."""
    rnd = hashlib.sha256(b"superfs-compose")
    files: dict[str, bytes] = {}
    sizes = [0, 17, 4096, 60_000, 200_000, 5_000_000]
    for d in range(4):
        for i in range(8):
            size = sizes[(d + i) % len(sizes)]
            blob = bytearray()
            while len(blob) < size:
                rnd.update(blob[-32:] or b"x")
                blob += rnd.digest() * 64
            files[f"tree/d{d}/sub{i % 2}/f{i}.bin"] = bytes(blob[:size])
    return files


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def read_all(paths: list[str]) -> dict[str, str]:
    return json.loads(compose("exec", "-T", "client", "python3", "-c", READER, *paths, timeout=600))  # type: ignore


def test_operator_kills_a_data_server_and_a_shard_and_starts_them_again(cluster):
    files = make_tree()
    compose("exec", "-T", "client", "tar", "-x", "-C", MOUNT, stdin=tar_of(files), timeout=600)
    paths = [f"{MOUNT}/{p}" for p in sorted(files)]
    want = {f"{MOUNT}/{p}": hashlib.sha256(d).hexdigest() for p, d in files.items()}
    assert read_all(paths) == want
    shard_of = json.loads(compose("exec", "-T", "client", "python3", "-c", SHARD_OF, *paths))
    on_killed = {p for p, s in shard_of.items() if f"shard-{s}" == KILLED_SHARD}
    chunked_elsewhere = {p for p in paths if p not in on_killed and len(files[p[len(MOUNT) + 1:]]) > 65536}
    assert on_killed and chunked_elsewhere, shard_of  # the tree is big enough to have both kinds

    run("docker", "kill", compose("ps", "-q", KILLED_DATA).strip(), compose("ps", "-q", KILLED_SHARD).strip())
    now = states()
    assert now[KILLED_SHARD][0] == now[KILLED_DATA][0] == "exited", now  # restart: unless-stopped leaves a kill be
    got = read_all(paths)
    for p in paths:
        if p in on_killed:
            assert got[p] == "EIO", (p, got[p])  # its shard is down: an error, never wrong bytes
        else:
            assert got[p] == want[p], (p, got[p])  # chunked ones too: the other replica serves them

    compose("start", timeout=HEALTHY_S)
    wait_healthy(DAEMONS + ["client"])
    assert read_all(paths) == want
    fsck = run(*COMPOSE, "exec", "-T", "client", "superfs", "fsck", "--config", "/etc/superfs/cluster.toml",
               timeout=600, check=False)
    assert fsck.returncode == 0 and "clean: no inconsistencies" in fsck.stdout, fsck.stdout + fsck.stderr


def test_down_v_leaves_nothing_behind(cluster):
    compose("down", "-v", "--remove-orphans", timeout=300)
    assert leftovers(PROJECT) == {"containers": [], "volumes": [], "networks": []}
    assert not ports_in_use()
    assert network_state() == cluster["network"]
