"""Finding the local cluster that ``superfs up`` started: its state directory."""
from __future__ import annotations

import json
import os

CLUSTER_FILE = "cluster.json"


def default_state_dir() -> str:
    """$XDG_DATA_HOME/superfs, else ~/.local/share/superfs."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "superfs")


def read_cluster_file(state_dir: str | None = None) -> dict[str, object]:
    path = os.path.join(state_dir or default_state_dir(), CLUSTER_FILE)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(
            2, f"no local cluster at {os.path.dirname(path)} (start one with 'superfs up')", path) from None


def local_dir_address(state_dir: str | None = None) -> str:
    return str(read_cluster_file(state_dir)["dir_server"])
