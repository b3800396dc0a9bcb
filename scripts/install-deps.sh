#!/usr/bin/env bash
# Install what SuperFS needs on a fresh Debian/Ubuntu machine: FUSE 3 (and the
# tools the tests drive), then this package with its test extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v fusermount3 >/dev/null 2>&1 || need_apt+=(fuse3)
dpkg -s libfuse3-dev >/dev/null 2>&1 || need_apt+=(libfuse3-dev pkg-config)
for tool in git rsync sqlite3 setpriv; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
# 'ip' (network namespaces, veth, bridges) for the network-cut test (tests/test_t5_netns.py)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
# building pjdfstest (scripts/pjdfstest.sh) when CI has the suite beside the checkout
if [ -d ../shared/pjdfstest ]; then
  for tool in autoreconf automake make gcc prove; do
    command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
  done
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  # setpriv comes from util-linux; map the tool name to its package
  pkgs=("${need_apt[@]/setpriv/util-linux}")
  pkgs=("${pkgs[@]/autoreconf/autoconf}")
  pkgs=("${pkgs[@]/prove/perl}")
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[dev]'

# PyTorch (CPU) for ckpt's DCP adapters: exactly this version installs from a
# file shipped on these machines; any other spec would download GBs of CUDA
# packages. Without it, the torch tests skip and say why.
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check torch==2.13.0 \
  || echo "torch 2.13.0 is not installable here: ckpt's torch tests will be skipped"
