"""kvserve tier 3: a daemon stopping with demotions still on their way to SuperFS.

The kvserve daemon runs as a real process over a real SuperFS cluster whose
data servers are frozen (SIGSTOP) while objects are being demoted, so the
demotions are still pending when the daemon gets SIGTERM. It must either
finish them (the data servers are thawed while it drains) or, past its drain
time, drop them and count them; and say so before it says it stopped, so
that whoever stops the SuperFS cluster next loses nothing it was not told.
"""
from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path
from typing import Iterator

import pytest

from kvserve.client import KvClient
from kvserve.errors import Tier
from kvserve.launch import DaemonProcess
from superfs.cli.launcher import LocalCluster

sys.path.insert(0, os.path.dirname(__file__))
from test_kvserve_t3_superfs import NS, fill  # noqa: E402

LINE = re.compile(r"demotions to SuperFS at stop: (\d+) pending, (\d+) written, (\d+) dropped")


def daemon(tmp_path: Path, cluster: LocalCluster, root: str, drain_s: float) -> DaemonProcess:
    toml = tmp_path / "kv.toml"
    toml.write_text(f'dram_bytes = "4MiB"\nmax_object_bytes = "1MiB"\npolicy = "lru"\nprefault = false\n'
                    f'superfs = "{cluster.config["dir_server"]}"\nsuperfs_root = "{root}"\n'
                    f'demote_drain_s = {drain_s}\n')
    return DaemonProcess(str(tmp_path), "kv", ["--config", str(toml)]).start()


@pytest.fixture
def data_pids(cluster: LocalCluster) -> Iterator[list[int]]:
    pids = [p.pid for name, p in cluster.procs.items() if name.startswith("data-")]
    yield pids
    for pid in pids:  # never leave a frozen data server behind
        os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("thaw", [True, False], ids=["finished", "dropped"])
def test_pending_demotions_are_finished_or_counted_before_the_daemon_says_it_stopped(
        cluster: LocalCluster, tmp_path: Path, data_pids: list[int], thaw: bool) -> None:
    root = f"/kvserve-stop-{'thaw' if thaw else 'frozen'}"
    kv = daemon(tmp_path, cluster, root, drain_s=30.0 if thaw else 1.0)
    try:
        for pid in data_pids:
            os.kill(pid, signal.SIGSTOP)
        with KvClient(kv.address, NS) as c:
            keys, _ = fill(c, 12)  # 4 MiB of DRAM: 8 or more demotions, stuck on the frozen data servers
        assert kv.proc is not None
        kv.proc.send_signal(signal.SIGTERM)
        if thaw:
            for pid in data_pids:
                os.kill(pid, signal.SIGCONT)
        assert kv.proc.wait(90) == 0
    finally:
        for pid in data_pids:
            os.kill(pid, signal.SIGCONT)
        kv.stop()
    log = kv.log()
    found = LINE.search(log)
    assert found is not None, log[-2000:]
    assert found.start() < log.index(" stopped"), "the daemon said it stopped before accounting for demotions"
    pending, written, dropped = map(int, found.groups())
    assert pending >= 8 and written + dropped == pending
    if thaw:
        assert dropped == 0
        again = daemon(tmp_path, cluster, root, drain_s=1.0)  # the next run finds every one of them
        try:
            with KvClient(again.address, NS) as c:
                assert c.exists(keys[:8]) == [Tier.SUPERFS] * 8
        finally:
            again.stop()
    else:
        assert dropped == pending and written == 0
