"""Every process the CLI and the companions spawn is immune to the caller's working directory.

``python -m`` puts the working directory first on sys.path, so a directory
there named like a package (the README's mount at /tmp/superfs, run from
/tmp; a checkout) would be imported instead of the installed package, and
the child would die with an ImportError. Spawned interpreters run with
``-P`` (superfs.procs.python_module), whatever directory they start in.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from fuse_helpers import fuse_unavailable

from superfs.procs import python_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ["superfs", "chukonu", "ckpt", "kvserve"]


def shadowing_cwd(base: str) -> str:
    """A directory whose every package-named subdirectory fails to import, as a stale copy would."""
    cwd = os.path.join(base, "cwd")
    for name in PACKAGES:
        os.makedirs(os.path.join(cwd, name))
        with open(os.path.join(cwd, name, "__init__.py"), "w") as f:
            f.write(f"raise ImportError('the working directory\\'s {name} was imported')\n")
    return cwd


def test_python_module_leaves_the_working_directory_off_sys_path(tmp_path):
    cwd = shadowing_cwd(str(tmp_path))
    r = subprocess.run([*python_module("superfs.cli.main"), "--version"], cwd=cwd, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("superfs "), r.stderr
    r = subprocess.run([sys.executable, "-m", "superfs.cli.main", "--version"], cwd=cwd, capture_output=True,
                       text=True, timeout=120)
    assert "the working directory's superfs was imported" in r.stderr  # what -P prevents


def test_no_source_spawns_python_m_directly():
    bad = []
    for pkg in PACKAGES:
        for top, _, files in os.walk(os.path.join(ROOT, pkg)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(top, name)
                    with open(path) as f:
                        for n, line in enumerate(f, 1):
                            if re.search(r"sys\.executable,\s*\"-m\"", line):
                                bad.append(f"{os.path.relpath(path, ROOT)}:{n}")
    assert not bad, f"use superfs.procs.python_module(...): {bad}"


@pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))
def test_bench_io_with_its_own_mount_from_a_directory_holding_superfs(tmp_path):
    """The issue's case: 'superfs bench io --mount auto' from /tmp, where the mount is /tmp/superfs."""
    cwd = shadowing_cwd(str(tmp_path))
    r = subprocess.run([*python_module("superfs.cli.main"), "bench", "io", "--size-mib", "8", "--mount", "auto",
                        "--local-dir", str(tmp_path)], cwd=cwd, capture_output=True, text=True, timeout=600,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert '"mount"' in r.stdout or "mount" in r.stdout, r.stdout
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    same = [x for x in rows if x.get("name") == "seq_read_same_file"]
    assert {x["target"] for x in same} == {"superfs-library", "superfs-mount"}, same
    assert rows[-1]["mount_read/library_read_same_file_median@4MiB"]["ratio"] > 0, rows[-1]
