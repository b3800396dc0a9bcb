"""Clusters spread over Linux network namespaces, one per daemon, as separate hosts would be.

Every daemon runs in its own network namespace with its own address,
joined to the test's namespace (the client host) by a veth pair on one
bridge. Taking a daemon's veth down drops its packets (a cut link, not a
refusal). Used by tests/test_t5_netns.py (network cuts) and
tests/test_t6_netns.py (a multi-host style deployment with TLS and tokens).

The addresses come from a documentation range (RFC 5737), never from a
private range a real network may use: a /27 of 198.51.100.0/24 that nothing
on this host routes to, holds or names, and two runs at once take different
/27s (a lock, and each run's bridge holding its own). The other two
documentation ranges are not used: on these machines 192.0.2.0/24 is the
uplink and the package proxy answers at 203.0.113.80 (found through DNS, so
no local check would see it), and a bridge there would capture that traffic.
"""
from __future__ import annotations

import fcntl
import ipaddress
import os
import re
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


# 192.0.2.0/24 and 203.0.113.0/24 carry this machine's own traffic (see above)
DOC_RANGES = [ipaddress.IPv4Network("198.51.100.0/24")]
SUBNET_PREFIX = 27  # 30 addresses: the bridge and up to 29 hosts
LOCK = "/run/lock/superfs-netns.lock" if os.path.isdir("/run/lock") else "/tmp/superfs-netns.lock"
_IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d{1,2}))?(?![\d.])")


def _networks(text: str, default_prefix: int = 32) -> list[ipaddress.IPv4Network]:
    out = []
    for addr, prefix in _IPV4.findall(text):
        try:
            out.append(ipaddress.IPv4Network(f"{addr}/{prefix or default_prefix}", strict=False))
        except ValueError:
            continue
    return out


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return "\n".join(line.split("#", 1)[0] for line in f)
    except OSError:
        return ""


def free_subnet() -> ipaddress.IPv4Network:
    """A /27 of a documentation range that this host neither routes to, holds, nor names (call under LOCK)."""
    links = _networks(ip("-4", "-o", "route", "show", "table", "all").stdout.replace("default", "")) + \
        _networks(ip("-4", "-o", "addr", "show").stdout)
    named = _networks(_read("/etc/hosts") + _read("/etc/resolv.conf"))
    for rng in DOC_RANGES:
        # a name or a route broader than our subnets inside the range: something here uses it
        if any(n.overlaps(rng) for n in named) or any(n.overlaps(rng) and n.prefixlen < SUBNET_PREFIX
                                                       for n in links if n.prefixlen < 32):
            continue
        for sub in rng.subnets(new_prefix=SUBNET_PREFIX):
            if not any(n.overlaps(sub) for n in links):
                return sub
    raise RuntimeError(f"no free /{SUBNET_PREFIX} in {', '.join(map(str, DOC_RANGES))} on this host")


class NamespacedCluster(LocalCluster):
    """A LocalCluster whose daemons each live in a network namespace on a shared bridge.

    ``prefix`` names the bridge, namespaces and veths (so two test modules
    never collide). The bridge is made here, on a free documentation subnet
    (:func:`free_subnet`), so its addresses are known before the daemons'
    certificates are; :meth:`teardown` removes it.
    """

    def __init__(self, state_dir: str, prefix: str) -> None:
        super().__init__(state_dir)
        self.tag = os.getpid() % 100000
        self.prefix = prefix
        self.bridge = f"{prefix}b{self.tag}"
        self.index: dict[str, int] = {}
        with open(LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # held from choosing the subnet until the bridge holds it
            self.subnet = free_subnet()
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.subnet[1]}/{self.subnet.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def host_addresses(self, count: int) -> list[str]:
        """The addresses the first ``count`` daemons given to :meth:`make_network` get."""
        return [str(self.subnet[2 + i]) for i in range(count)]

    def ns(self, name: str) -> str:
        return f"{self.prefix}n{self.tag}-{name}"

    def veth(self, name: str, side: str) -> str:
        return f"{self.prefix}v{self.tag}{side}{self.index[name]}"

    def host(self, name: str) -> str:
        return str(self.subnet[2 + self.index[name]])

    def make_network(self, names: list[str]) -> None:
        assert len(names) <= self.subnet.num_addresses - 3, names
        self.index = {n: i for i, n in enumerate(names)}
        for n in names:
            ns, outside, inside = self.ns(n), self.veth(n, "h"), self.veth(n, "n")
            ip("netns", "add", ns)
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", ns)
            ip("link", "set", outside, "master", self.bridge, "up")
            ip("-n", ns, "addr", "add", f"{self.host(n)}/{self.subnet.prefixlen}", "dev", inside)
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
