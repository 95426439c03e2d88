#!/bin/bash
# A program at the commit limit (vm.overcommit_memory=2) under glibc and
# under tidemalloc: both must return NULL and survive (docs/design.md §12).
# Needs root: sets vm.overcommit_memory to 2 for the two runs and puts the
# old value back.  A machine-wide setting, so not part of ctest.
#   usage: sudo scripts/commit_limit.sh [BUILD_DIR]
set -u
B=${1:-build}
T=$(realpath "$B/libtidemalloc.so")
exe=$(mktemp /tmp/commit_limit.XXXXXX)
cc -O2 -o "$exe" "$(dirname "$0")/commit_limit.c" || exit 1
old=$(cat /proc/sys/vm/overcommit_memory)
trap 'echo "$old" > /proc/sys/vm/overcommit_memory; rm -f "$exe"' EXIT
echo 2 > /proc/sys/vm/overcommit_memory || exit 1
rc=0
for lib in "" "$T"; do
    echo -n "${lib:-glibc}: "
    LD_PRELOAD=$lib "$exe"
    s=$?
    [ $s = 0 ] || { echo "exit status $s"; rc=1; }
done
exit $rc
