#!/usr/bin/env bash
# Build SuperFS's container images from local parts, with no image registry:
#
#   1. superfs-base:bookworm-HASH  a Debian root file system made by debootstrap
#                                   (Debian's packages only) and 'docker import'ed;
#   2. superfs:local               deploy/Dockerfile on top of it (pip installs SuperFS);
#   3. superfs-systemd:local       with --systemd: systemd as PID 1, for running the units
#                                   of deploy/systemd in a privileged container.
#
# Usage (root, a running Docker engine, from anywhere):
#   deploy/build-images.sh [--systemd]
#
# Caching: the base image is made once per recipe (HASH covers the suite, the
# package list, this host's extra CA certificates and this script's base
# recipe); Docker's build cache keeps the rest, so a rerun with nothing changed
# takes seconds, a change to pyproject.toml re-installs the dependencies, and a
# change to the project's code only re-installs SuperFS itself. The image is
# labelled with a hash of the files it was built from (org.superfs.source).
#
# With a registry, none of this is needed: 'docker compose ... up -d --build'
# builds deploy/Dockerfile on python:3.11-slim-bookworm.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SUITE="${SUPERFS_SUITE:-bookworm}"
MIRROR="${SUPERFS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3 (3.11 on bookworm) with venv, for the Dockerfile's pip install
PACKAGES="ca-certificates,python3,python3-venv"
IMAGE="${SUPERFS_IMAGE:-superfs:local}"
SYSTEMD_IMAGE="${SUPERFS_SYSTEMD_IMAGE:-superfs-systemd:local}"
WITH_SYSTEMD=0

for arg in "$@"; do
  case "$arg" in
    --systemd) WITH_SYSTEMD=1 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-images.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "build-images: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { say "'$1' is missing ($2)"; exit 1; }; }
need docker "apt-get install docker.io"
need debootstrap "apt-get install debootstrap"
[ "$(id -u)" -eq 0 ] || { say "debootstrap and docker need root"; exit 1; }
docker info >/dev/null 2>&1 || { say "no Docker engine answers (start dockerd)"; exit 1; }

# Certificates this host trusts beyond Debian's (a TLS-inspecting proxy in front of
# PyPI, say) go into the base, so pip inside the build trusts what pip here trusts.
extra_cas=()
if [ -d /usr/local/share/ca-certificates ]; then
  while IFS= read -r -d '' f; do extra_cas+=("$f"); done \
    < <(find /usr/local/share/ca-certificates -name '*.crt' -type f -print0 | sort -z)
fi

recipe="$(printf '%s\n' "$SUITE" "$MIRROR" "$PACKAGES"; sed -n '/^# --- base recipe/,/^# --- end/p' "$0"
          for f in "${extra_cas[@]}"; do sha256sum "$f"; done)"
BASE="superfs-base:${SUITE}-$(printf '%s' "$recipe" | sha256sum | cut -c1-12)"

# --- base recipe
if docker image inspect "$BASE" >/dev/null 2>&1; then
  say "base image $BASE is cached"
else
  say "making $BASE with debootstrap (minutes)"
  work="$(mktemp -d /var/tmp/superfs-rootfs.XXXXXX)"
  trap 'rm -rf "$work"' EXIT
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/root" "$MIRROR" >"$work/log" 2>&1 \
    || { tail -n 30 "$work/log" >&2; say "debootstrap failed"; exit 1; }
  for f in "${extra_cas[@]}"; do cp "$f" "$work/root/usr/local/share/ca-certificates/"; done
  chroot "$work/root" update-ca-certificates >/dev/null 2>&1
  chroot "$work/root" apt-get clean
  rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin
  # the apt sources debootstrap used, so the Dockerfile's apt-get finds the same archive
  echo "deb $MIRROR $SUITE main" > "$work/root/etc/apt/sources.list"
  tar -C "$work/root" --numeric-owner -c . \
    | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$work"
  trap - EXIT
  say "made $BASE"
fi
# --- end

# What the image is built from: the Dockerfile's COPY sources
source_hash="$(cd "$ROOT" && find pyproject.toml README.md deploy/Dockerfile deploy/docker superfs chukonu ckpt kvserve \
                 -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum \
               | sha256sum | cut -c1-16)"
say "building $IMAGE on $BASE (source $source_hash)"
# --network host: the build's apt-get and pip reach the archives the way this host does
docker build --network host --build-arg "BASE=$BASE" --label "org.superfs.source=$source_hash" \
  -f "$ROOT/deploy/Dockerfile" -t "$IMAGE" "$ROOT"

if [ "$WITH_SYSTEMD" -eq 1 ]; then
  say "building $SYSTEMD_IMAGE on $IMAGE"
  docker build --network host --build-arg "BASE=$IMAGE" -f "$ROOT/deploy/docker/systemd.Dockerfile" \
    -t "$SYSTEMD_IMAGE" "$ROOT/deploy/docker"
fi
say "done: $IMAGE$([ "$WITH_SYSTEMD" -eq 1 ] && echo " $SYSTEMD_IMAGE")"
