"""A Docker engine and SuperFS's images, for the tests that run deploy/ for real.

These machines have no image registry and may carry test traffic only on
loopback, so the engine runs with no bridge, no iptables rules and no IP
forwarding (:data:`ENGINE_FLAGS`), every container uses the host's network
or none, and the images come from ``deploy/build-images.sh`` (debootstrap,
``docker import``, then ``deploy/Dockerfile``; cached between runs).

:func:`why_not` says why a machine cannot run them (the tests skip with that
reason); :class:`Engine` uses the engine that answers, or starts one and
stops it afterwards; :func:`network_state` is what the tests compare before
and after, so that none of it changes the machine's network settings.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(ROOT, "deploy")
BUILD_SCRIPT = os.path.join(DEPLOY, "build-images.sh")
IMAGE = "superfs:local"
SYSTEMD_IMAGE = "superfs-systemd:local"
# what a Docker engine here must be started with: no bridge, no rules, no forwarding
ENGINE_FLAGS = ["--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false"]
ENGINE_START_S = 120.0
BUILD_TIMEOUT_S = 1800.0
SYSCTLS = ["net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding", "net.ipv6.conf.all.forwarding",
           "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"]


def run(*args: str, timeout: float = 300.0, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    """A command whose failure shows its output (stdin closed: nothing waits for a terminal)."""
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {r.returncode}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


def why_not(*, compose: bool = False) -> str | None:
    """Why the deployment tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, a Docker engine, FUSE and systemd in containers)"
    for tool, package in (("docker", "docker.io"), ("debootstrap", "debootstrap")):
        if shutil.which(tool) is None:
            return f"no '{tool}' command (apt-get install {package}; scripts/install-deps.sh does)"
    if not engine_answers() and shutil.which("dockerd") is None:
        return "no Docker engine answers and there is no 'dockerd' to start (apt-get install docker.io)"
    if compose and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                  timeout=60).returncode != 0:
        return "no 'docker compose' (the Compose v2 CLI plugin; scripts/install-deps.sh installs one)"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse for the client containers' mounts"
    return None


class Engine:
    """The Docker engine the tests use: one that answers, else one started here with ENGINE_FLAGS."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = ""

    def start(self) -> None:
        if engine_answers():
            return
        fd, self.log_path = tempfile.mkstemp(prefix="superfs-dockerd-", suffix=".log")
        with os.fdopen(fd, "wb") as log:
            self.proc = subprocess.Popen(["dockerd", *ENGINE_FLAGS], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + ENGINE_START_S
        while not engine_answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dockerd did not start:\n{self.log()}")
            time.sleep(0.5)

    def log(self) -> str:
        if not self.log_path:
            return ""
        with open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]

    def stop(self) -> None:
        """Stop the engine if this process started it (its containers are gone by then)."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None
        os.unlink(self.log_path)


def build_images(*, systemd: bool = False) -> float:
    """deploy/build-images.sh (cached: seconds once built); returns how long it took."""
    t0 = time.monotonic()
    run("bash", BUILD_SCRIPT, *(["--systemd"] if systemd else []), timeout=BUILD_TIMEOUT_S)
    return time.monotonic() - t0


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def network_state() -> dict[str, Any]:
    """What a Docker engine could change in the host's network: forwarding sysctls, bridges, veths, rules."""
    state: dict[str, Any] = {k: _read("/proc/sys/" + k.replace(".", "/")) for k in SYSCTLS}
    state["links"] = sorted(n for n in os.listdir("/sys/class/net")
                            if n.startswith(("docker", "br-")) or re.fullmatch(r"veth[0-9a-f]{7}", n))
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool):
            for table in ("filter", "nat"):
                r = subprocess.run([tool, "-w", "5", "-t", table, "-S"], capture_output=True, text=True, timeout=30)
                state[f"{tool} {table}"] = r.stdout if r.returncode == 0 else f"unreadable: {r.stderr.strip()}"
    return state


def label_filter(project: str) -> list[str]:
    return ["--filter", f"label=com.docker.compose.project={project}"]


def leftovers(project: str) -> dict[str, list[str]]:
    """Containers, volumes and networks of a compose project still known to the engine."""
    out = {}
    for kind, cmd in (("containers", ["docker", "ps", "-a", "-q"]), ("volumes", ["docker", "volume", "ls", "-q"]),
                      ("networks", ["docker", "network", "ls", "-q"])):
        out[kind] = run(*cmd, *label_filter(project)).stdout.split()
    return out
