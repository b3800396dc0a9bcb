"""deploy/systemd's units under a real systemd, as an operator installs and runs them.

systemd runs as PID 1 in a container of superfs-systemd:local (deploy/
build-images.sh --systemd: the SuperFS image plus systemd, with the units
that would touch the host's kernel masked). In it, the README's steps: a
``superfs`` system user, the units installed, ``superfs config make-secrets``
with the files ``root:superfs`` 0640, then ``systemctl start superfs-dir
superfs-shard@0 superfs-data@0``, which returns only once each daemon said
READY=1 (Type=notify; its STATUS= line shows in ``systemctl show``). Each
daemon runs as ``superfs`` with no capabilities, no new privileges and a
read-only system outside its state directory. The mount unit mounts, files
go in and come back; ``kill -9`` of a daemon brings it back through
Restart=; ``systemctl stop`` ends every unit cleanly and unmounts.

The container has no network but its own loopback, and every capability
the engine has: ``--privileged`` asks for all of them, and fails where the
engine lacks one (here CAP_SYS_RESOURCE). Needs root and a Docker engine;
skipped with the reason where the machine lacks them.
"""
from __future__ import annotations

import os
import textwrap
import time
from typing import Callable, Iterator

import pytest
from docker_support import DEPLOY, SYSTEMD_IMAGE, Engine, build_images, network_state, run, why_not

pytestmark = [pytest.mark.skipif(why_not() is not None, reason=str(why_not())), pytest.mark.timeout(2400)]

# all the engine can give, minus what it lacks; no seccomp/AppArmor; /dev/fuse; cgroups for systemd
CONTAINER_FLAGS = ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
                   "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
                   "--device", "/dev/fuse", "--network", "none", "--tmpfs", "/run", "--tmpfs", "/run/lock",
                   "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"]
DAEMONS = ["superfs-dir.service", "superfs-shard@0.service", "superfs-data@0.service"]
MOUNTPOINT = "/mnt/superfs"
WAIT_S = 120.0
CLUSTER = textwrap.dedent("""\
    [cluster]
    name = "units"
    replicas = 1
    secret_file = "/etc/superfs/secrets/secret"

    [dir_server]
    address = "127.0.0.1:7000"
    session_port = 7001
    data_dir = "/var/lib/superfs/dir"
    metrics_port = 9400

    [[shards]]
    id = 0
    address = "127.0.0.1:7100"
    session_port = 7101
    data_dir = "/var/lib/superfs/shard-0"
    metrics_port = 9401

    [[data_servers]]
    id = 0
    address = "127.0.0.1:7200"
    session_port = 7201
    data_dir = "/var/lib/superfs/data-0"
    metrics_port = 9402

    [auth]
    token_file = "/etc/superfs/secrets/tokens"
    tokens_file = "/etc/superfs/secrets/tokens"
    """)
# the README's steps (deploy/README.md, systemd)
INSTALL = """
set -e
useradd --system --home /var/lib/superfs --shell /usr/sbin/nologin superfs
install -m 644 /tmp/units/*.service /etc/systemd/system/
superfs config make-secrets /etc/superfs/secrets
chown -R root:superfs /etc/superfs/secrets
chmod 750 /etc/superfs/secrets && chmod 640 /etc/superfs/secrets/*
systemctl daemon-reload
"""


class Box:
    """The systemd container."""

    def __init__(self, name: str) -> None:
        self.name = name

    def sh(self, script: str, *, check: bool = True, timeout: float = 300.0) -> str:
        return run("docker", "exec", self.name, "sh", "-c", script, check=check, timeout=timeout).stdout

    def ok(self, script: str) -> bool:
        return run("docker", "exec", self.name, "sh", "-c", script, check=False, timeout=60).returncode == 0

    def show(self, unit: str) -> dict[str, str]:
        out = self.sh(f"systemctl show {unit} -p ActiveState,SubState,Result,MainPID,NRestarts,StatusText,"
                      "ExecMainStatus,Type,User")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_for(self, what: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {WAIT_S:.0f} s\n"
                                     + self.sh("journalctl --no-pager -n 60 -u 'superfs*'", check=False))
            time.sleep(0.5)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    before = network_state()
    engine = Engine()
    engine.start()
    try:
        took = build_images(systemd=True)
        print(f"deploy/build-images.sh --systemd: {took:.0f} s")
        b = Box(f"superfs-t6-systemd-{os.getpid()}")
        run("docker", "run", "-d", "--name", b.name, *CONTAINER_FLAGS, SYSTEMD_IMAGE)
        try:
            # until PID 1 answers on its socket, systemctl cannot even ask
            b.wait_for("systemd up", lambda: b.sh("systemctl is-system-running --wait", check=False,
                                                    timeout=WAIT_S).strip() not in ("", "offline", "starting"))
            state = b.sh("systemctl is-system-running", check=False).strip()
            assert state == "running", state + "\n" + b.sh("systemctl --failed --no-pager", check=False)
            d = tmp_path_factory.mktemp("units")
            with open(d / "cluster.toml", "w") as f:
                f.write(CLUSTER)
            run("docker", "cp", os.path.join(DEPLOY, "systemd") + "/.", f"{b.name}:/tmp/units/")
            run("docker", "cp", str(d / "cluster.toml"), f"{b.name}:/etc/superfs/cluster.toml")
            b.sh(INSTALL)
            yield b
        finally:
            run("docker", "rm", "-f", "-v", b.name, check=False)
    finally:
        engine.stop()
    assert network_state() == before


def test_units_start_run_hardened_restart_mount_and_stop(box: Box):
    # Type=notify: start returns once each daemon sent READY=1, its STATUS= shows
    box.sh(f"systemctl start {' '.join(DAEMONS)}", timeout=WAIT_S * 3)
    pids = {}
    for unit in DAEMONS:
        s = box.show(unit)
        assert (s["Type"], s["ActiveState"], s["SubState"]) == ("notify", "active", "running"), (unit, s)
        assert s["StatusText"].startswith("serving on 127.0.0.1:"), (unit, s)  # sent by sd_notify
        pids[unit] = int(s["MainPID"])
        # User=superfs and the hardening, as the kernel sees the process
        assert box.sh(f"ps -o user= -p {pids[unit]}").strip() == "superfs"
        status = box.sh(f"cat /proc/{pids[unit]}/status")
        assert "NoNewPrivs:\t1" in status and "CapEff:\t0000000000000000" in status, status
        mounts = {line.split()[4]: line.split()[5] for line in box.sh(f"cat /proc/{pids[unit]}/mountinfo").splitlines()}
        assert mounts["/"].startswith("ro") and mounts["/var/lib/superfs"].startswith("rw"), mounts  # ProtectSystem
        assert box.sh(f"readlink /proc/{pids[unit]}/ns/mnt") != box.sh("readlink /proc/1/ns/mnt")

    # the mount unit
    unit = box.sh(f"systemd-escape --path --template superfs-mount@.service {MOUNTPOINT}").strip()
    box.sh(f"mkdir -p {MOUNTPOINT} && systemctl start {unit}")
    box.wait_for("mounted", lambda: box.ok(f"grep -q ' {MOUNTPOINT} fuse.superfs ' /proc/mounts"))
    box.sh(f"mkdir {MOUNTPOINT}/d && echo hello > {MOUNTPOINT}/d/small && "
           f"head -c 300000 /dev/urandom > /tmp/big && cp /tmp/big {MOUNTPOINT}/d/big")
    want = box.sh("sha256sum < /tmp/big")
    assert box.sh(f"cat {MOUNTPOINT}/d/small") == "hello\n" and box.sh(f"sha256sum < {MOUNTPOINT}/d/big") == want

    # kill -9: Restart=on-failure brings the shard back, and the mount reads through it again
    shard = "superfs-shard@0.service"
    box.sh(f"kill -9 {pids[shard]}")

    def restarted() -> bool:
        s = box.show(shard)
        return s["NRestarts"] == "1" and s["ActiveState"] == "active" and int(s["MainPID"]) not in (0, pids[shard]) \
            and s["StatusText"].startswith("serving on")
    box.wait_for("shard restarted", restarted)
    box.wait_for("mount reads again", lambda: box.sh(f"cat {MOUNTPOINT}/d/small", check=False) == "hello\n")
    assert box.sh(f"sha256sum < {MOUNTPOINT}/d/big") == want

    # systemctl stop: every unit ends cleanly, the mount goes, no process is left
    assert box.ok("pgrep -x superfs")  # (they run until then)
    box.sh(f"systemctl stop {unit} {' '.join(reversed(DAEMONS))}", timeout=WAIT_S * 2)
    for u in [unit, *DAEMONS]:
        s = box.show(u)
        assert (s["ActiveState"], s["Result"], s["ExecMainStatus"]) == ("inactive", "success", "0"), (u, s)
    assert not box.ok(f"grep -q ' {MOUNTPOINT} ' /proc/mounts")
    assert not box.ok("pgrep -x superfs"), box.sh("ps -ef")  # daemons and the mount: their comm is superfs
    logs = box.sh("journalctl --no-pager -u 'superfs*'")
    assert "superfs-shard@0.service: Main process exited, code=killed, status=9/KILL" in logs, logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]
