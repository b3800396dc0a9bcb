"""A truncate never cuts bytes another client wrote after the shard answered it (issue 13).

The shard cuts the chunks past a new, smaller size before it answers the
truncate, in order with every other operation on the file. Before this was
fixed the client library then looked the file up once more and deleted
chunks itself: a write by another client that landed in between was
acknowledged, read back, and then zeroed. Here the truncating client is a
separate process stopped at that very point (``client.truncate.after_setattr``,
see superfs/faults.py) while this process writes, reads back and closes;
then the truncating client goes on and exits, and the write must still be
there.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from conftest import SMALL_CHUNK
from superfs import faults
from superfs.client import connect

TRUNCATE = textwrap.dedent("""
    import sys
    from superfs.client import connect
    with connect(sys.argv[1]) as fs:
        fs.truncate(sys.argv[2], int(sys.argv[3]))
    print("truncated")
""")


def _wait_for(path: str, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError(f"the truncating client exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, "the truncating client never reached its pause point"
        time.sleep(0.02)


def _truncate_paused(address: str, path: str, size: int, pause_dir: str) -> subprocess.Popen[str]:
    env = dict(os.environ, **{faults.PAUSE_ENV: "client.truncate.after_setattr", faults.PAUSE_DIR_ENV: pause_dir})
    return subprocess.Popen([sys.executable, "-c", TRUNCATE, address, path, str(size)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_write_acknowledged_after_the_shard_cut_survives_the_truncating_client(cluster_factory, tmp_path):
    cluster = cluster_factory()
    address = str(cluster.config["dir_server"])
    with connect(address) as fs:
        fs.write_bytes("/f", b"a" * (3 * SMALL_CHUNK))
        proc = _truncate_paused(address, "/f", 0, str(tmp_path))
        try:
            _wait_for(str(tmp_path / "client.truncate.after_setattr.paused"), proc)
            assert fs.stat("/f").st_size == 0  # the shard answered: cut and shrunk
            new = b"B" * (2 * SMALL_CHUNK + 100)
            with fs.open("/f", "r+b") as f:   # another client writes into the old window
                f.write(new)
            assert fs.read_bytes("/f") == new  # acknowledged and visible
            (tmp_path / "client.truncate.after_setattr.resume").touch()
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0 and "truncated" in out, err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert fs.read_bytes("/f") == new      # the truncating client did not cut it afterwards


def test_a_chunked_file_shrunk_then_extended_reads_zeros_past_the_old_cut(cluster_factory):
    """What the client's own trim used to guarantee, now by the shard's ordered cut alone."""
    cluster = cluster_factory()
    with connect(str(cluster.config["dir_server"])) as fs:
        data = os.urandom(3 * SMALL_CHUNK + 77)
        fs.write_bytes("/g", data)
        for cut in (2 * SMALL_CHUNK, SMALL_CHUNK + 5, 3):
            fs.truncate("/g", cut)
            fs.truncate("/g", 3 * SMALL_CHUNK + 77)
            data = data[:cut] + bytes(len(data) - cut)
            assert fs.read_bytes("/g") == data
