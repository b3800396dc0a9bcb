"""``superfs mount --config FILE``: what the systemd mount unit and compose run."""
from __future__ import annotations

import os
import subprocess
import sys

from superfs.cli.launcher import LocalCluster

CLI = [sys.executable, "-m", "superfs.cli.main"]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=120, env=env)


def test_mount_from_the_cluster_file_and_bad_files(tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    state = tmp_path / "xdg" / "superfs"
    assert run("up", env=env).returncode == 0
    mp = tmp_path / "mnt"
    try:
        r = run("mount", str(mp), "--config", str(state / "cluster.toml"), env=env)
        assert r.returncode == 0, r.stderr
        (mp / "hello").write_text("via config")
        assert (mp / "hello").read_text() == "via config"
        assert run("umount", str(mp), env=env).returncode == 0
        assert not os.path.ismount(mp)
        bad = tmp_path / "bad.toml"
        bad.write_text("bogus = 1\n")
        for cfg, words in ((bad, "bogus"), (tmp_path / "none.toml", "no such file")):
            r = run("mount", str(mp), "--config", str(cfg), env=env)
            assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
    finally:
        if os.path.ismount(mp):
            subprocess.run(["fusermount3", "-u", "-z", str(mp)])
        run("down", env=env)
        LocalCluster(str(state)).stop()
