"""Clusters spread over Linux network namespaces, one per daemon, as separate hosts would be.

Every daemon runs in its own network namespace with its own 10.x.y.z
address, joined to the test's namespace (the client host) by a veth pair on
one bridge. Taking a daemon's veth down drops its packets (a cut link, not
a refusal). Used by tests/test_t5_netns.py (network cuts) and
tests/test_t6_netns.py (a multi-host style deployment with TLS and tokens).
"""
from __future__ import annotations

import os
import shutil
import subprocess

from superfs.cli.launcher import DaemonSpec, LocalCluster


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def why_not() -> str | None:
    """Why network namespaces cannot be used here, or None if they can."""
    if shutil.which("ip") is None:
        return "no 'ip' command (install iproute2: scripts/install-deps.sh does)"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"sfsprobe{os.getpid() % 100000}"
    r = ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


class NamespacedCluster(LocalCluster):
    """A LocalCluster whose daemons each live in a network namespace on a shared bridge.

    ``prefix`` names the bridge, namespaces and veths (so two test modules
    never collide); ``second_octet`` and ``octets`` pick the module's part of
    10.0.0.0/8.
    """

    def __init__(self, state_dir: str, prefix: str, second_octet: int, octets: int) -> None:
        super().__init__(state_dir)
        self.tag = os.getpid() % 100000
        self.prefix = prefix
        self.bridge = f"{prefix}b{self.tag}"
        self.subnet = f"10.{second_octet + self.tag % octets}.{(self.tag // octets) % 250}"
        self.index: dict[str, int] = {}

    def ns(self, name: str) -> str:
        return f"{self.prefix}n{self.tag}-{name}"

    def veth(self, name: str, side: str) -> str:
        return f"{self.prefix}v{self.tag}{side}{self.index[name]}"

    def host(self, name: str) -> str:
        return f"{self.subnet}.{10 + self.index[name]}"

    def make_network(self, names: list[str]) -> None:
        self.index = {n: i for i, n in enumerate(names)}
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for n in names:
            ns, outside, inside = self.ns(n), self.veth(n, "h"), self.veth(n, "n")
            ip("netns", "add", ns)
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", ns)
            ip("link", "set", outside, "master", self.bridge, "up")
            ip("-n", ns, "addr", "add", f"{self.host(n)}/24", "dev", inside)
            ip("-n", ns, "link", "set", inside, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        os.makedirs(self.path("run"), exist_ok=True)
        os.makedirs(self.path("log"), exist_ok=True)

    def command(self, spec: DaemonSpec) -> list[str]:
        return ["ip", "netns", "exec", self.ns(spec.name), *super().command(spec)]

    def cut(self, name: str) -> None:
        ip("link", "set", self.veth(name, "h"), "down")

    def heal(self, name: str) -> None:
        ip("link", "set", self.veth(name, "h"), "up")

    def teardown(self) -> None:
        for n in self.index:
            if ip("link", "show", self.veth(n, "h"), check=False).returncode == 0:
                self.heal(n)
        self.stop()
        for n in self.index:
            ip("netns", "del", self.ns(n), check=False)
        ip("link", "del", self.bridge, check=False)
