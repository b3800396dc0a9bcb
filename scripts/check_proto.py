"""Fail if the committed generated code in superfs/v1/ is not what the proto produces.

Regenerate with (for superfs, and the same for kvserve):
    python -m grpc_tools.protoc -I proto --python_out=. \
    --grpc_python_out=. --pyi_out=. proto/superfs/v1/superfs.proto
"""
from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (package, proto name): generated code lives in PACKAGE/v1/, the proto in proto/PACKAGE/v1/
PROTOS = [("superfs", "superfs"), ("superfs", "session"), ("superfs", "bytes"), ("kvserve", "kvserve")]


def main() -> int:
    stale = []
    with tempfile.TemporaryDirectory() as out:
        for package, name in PROTOS:
            subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(ROOT, "proto"),
                            f"--python_out={out}", f"--grpc_python_out={out}", f"--pyi_out={out}",
                            os.path.join(ROOT, "proto", package, "v1", f"{name}.proto")], check=True)
            for f in (f"{name}_pb2.py", f"{name}_pb2_grpc.py", f"{name}_pb2.pyi"):
                if not filecmp.cmp(os.path.join(out, package, "v1", f), os.path.join(ROOT, package, "v1", f),
                                   shallow=False):
                    stale.append(f"{package}/v1/{f}")
    if subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_rpc.py"), "--check"]).returncode:
        stale.append("superfs/rpc/stubs.py (python scripts/gen_rpc.py)")
    if stale:
        print("generated code is out of date: " + ", ".join(stale) + "\n" + __doc__, file=sys.stderr)
        return 1
    print("generated protobuf code is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
