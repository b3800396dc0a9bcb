#!/usr/bin/env bash
# pjdfstest, the POSIX conformance suite, through a real mount of a fresh `superfs up` cluster
# (defaults: durable, 2 shards, 2 data servers). Fails on any failed subtest; always tears the
# cluster down. Skips (exit 0, with a message) when the suite is absent.
#
# usage: scripts/pjdfstest.sh [SUITE_DIR [GROUP ...]]
#   SUITE_DIR  holds pjdfstest.tar.gz and run.sh (default: ../shared/pjdfstest beside the checkout)
#   GROUP      e.g. rename chown (default: every group)
# needs: root, gcc, make, autoconf, automake, perl (prove). Full log: $STATE/pjdfstest.log
#
# One declaration is added to the suite's misc.sh: SuperFS moves a file's ctime on rename, as
# ext4, UFS and ZFS do, so rename/22.t ("rename changes file ctime", 30 subtests) runs here as it
# does on ext4 instead of being skipped for an unknown file system type (fuse.superfs).
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:-../shared/pjdfstest}
shift || true
if [ ! -f "$suite/run.sh" ] || [ ! -f "$suite/pjdfstest.tar.gz" ]; then
  echo "pjdfstest: no suite in $suite: skipped"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "pjdfstest: needs root (it switches users and makes device nodes): skipped"
  exit 0
fi
suite=$(cd "$suite" && pwd)

# build once (as run.sh would), then declare what SuperFS supports
build=${PJDFSTEST_BUILD:-/tmp/superfs-pjdfstest-build}
if [ ! -x "$build/pjdfstest/pjdfstest" ]; then
  rm -rf "$build" && mkdir -p "$build"
  tar -xzf "$suite/pjdfstest.tar.gz" -C "$build"
  (cd "$build/pjdfstest" && autoreconf -ifs && ./configure && make pjdfstest) >"$build/build.log" 2>&1 \
    || { echo "pjdfstest did not build: see $build/build.log"; exit 1; }
fi
misc="$build/pjdfstest/tests/misc.sh"
grep -q 'EXT4|FUSE.SUPERFS)' "$misc" || sed -i 's/^\t\tEXT4)$/\t\tEXT4|FUSE.SUPERFS)/' "$misc"
grep -q 'EXT4|FUSE.SUPERFS)' "$misc" || { echo "pjdfstest: could not declare rename_ctime in $misc"; exit 1; }

state=$(mktemp -d /tmp/superfs-pjdfstest.XXXXXX)
chmod 0755 "$state"  # the suite switches to other users, who must reach the mountpoint
down() {
  python3 -m superfs.cli.main down --state-dir "$state" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap down EXIT
python3 -m superfs.cli.main up --state-dir "$state" --mount "$state/mnt" >/dev/null
log="$state/pjdfstest.log"
report=$(PJDFSTEST_BUILD="$build" LOG="$log" bash "$suite/run.sh" "$state/mnt" "$@")
echo "$report"
failed=$(sed -n 's/^failed subtests: \([0-9]*\) in .*/\1/p' <<<"$report")
if ! grep -q '^Files=' <<<"$report" || [ -z "$failed" ]; then
  echo "pjdfstest: the suite did not run to its end; log tail:"
  tail -30 "$log"
  exit 1
fi
if [ "$failed" -ne 0 ]; then
  echo "pjdfstest: $failed failed subtests:"
  sed -n '/^Test Summary Report/,$p' "$log" | head -40
  # each failing file once more, verbosely, for the errno of each failure
  work=$(mktemp -d "$state/mnt/again.XXXXXX") && chmod 0755 "$work"
  for t in $(sed -n 's#^\(/[^ ]*\.t\) .*(Wstat.*#\1#p' "$log" | head -10); do
    echo "--- again: $t"
    (cd "$work" && prove -v "$t" 2>&1 | grep -E '^not ok' | grep -v '# TODO' | head -20) || true
  done
  exit 1
fi
echo "pjdfstest: every subtest passed"
