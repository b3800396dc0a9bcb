"""Fail if the committed generated code in superfs/v1/ is not what the proto produces.

Regenerate with:  python -m grpc_tools.protoc -I proto --python_out=. \
    --grpc_python_out=. --pyi_out=. proto/superfs/v1/superfs.proto
"""
from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["superfs_pb2.py", "superfs_pb2_grpc.py", "superfs_pb2.pyi"]


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(ROOT, "proto"),
                        f"--python_out={out}", f"--grpc_python_out={out}", f"--pyi_out={out}",
                        os.path.join(ROOT, "proto", "superfs", "v1", "superfs.proto")], check=True)
        stale = [f for f in FILES if not filecmp.cmp(os.path.join(out, "superfs", "v1", f),
                                                      os.path.join(ROOT, "superfs", "v1", f), shallow=False)]
    if stale:
        print("generated code is out of date: " + ", ".join(stale) + "\n" + __doc__, file=sys.stderr)
        return 1
    print("generated protobuf code is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
