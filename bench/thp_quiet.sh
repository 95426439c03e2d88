#!/bin/bash
# Quiet memory where transparent huge pages are "always" (docs/design.md §7):
# bench/thp_quiet (built by `make`) under glibc, the peers at their default
# and best release settings, and tidemalloc with and without TIDEMALLOC_THP.
# Needs root: sets /sys/kernel/mm/transparent_hugepage/enabled to always
# and khugepaged to a 0.1 s scan of 65536 pages (FAST=0: its defaults are
# left), and puts back what it found on exit.
#   usage: sudo bench/thp_quiet.sh [BUILD_DIR] [MIB] [SECONDS]
set -u
B=${1:-build}; MIB=${2:-1024}; SECS=${3:-10}
K=/sys/kernel/mm/transparent_hugepage
L=/usr/lib/x86_64-linux-gnu
T=$(realpath "$B/libtidemalloc.so")
P="$B/bench/thp_quiet"
mode=$(sed 's/.*\[\(.*\)\].*/\1/' $K/enabled)
sleep0=$(cat $K/khugepaged/scan_sleep_millisecs); pages0=$(cat $K/khugepaged/pages_to_scan)
restore() {
    echo "$mode" > $K/enabled
    echo "$sleep0" > $K/khugepaged/scan_sleep_millisecs
    echo "$pages0" > $K/khugepaged/pages_to_scan
}
trap restore EXIT
echo always > $K/enabled || exit 1
if [ "${FAST:-1}" != 0 ]; then
    echo 100 > $K/khugepaged/scan_sleep_millisecs
    echo 65536 > $K/khugepaged/pages_to_scan
fi
run() {
    name=$1; shift
    echo "== $name"
    env "$@" "$P" "$MIB" "$SECS" | sed 's/MemFree-delta *-\?[0-9]* MiB  //' | awk '{print "   " $0}'
}
run glibc X=1
[ -e $L/libjemalloc.so.2 ] && run jemalloc LD_PRELOAD=$L/libjemalloc.so.2 &&
    run jemalloc-bg LD_PRELOAD=$L/libjemalloc.so.2 MALLOC_CONF=background_thread:true
[ -e $L/libtcmalloc_minimal.so.4 ] && run tcmalloc LD_PRELOAD=$L/libtcmalloc_minimal.so.4 &&
    run tcmalloc-release LD_PRELOAD=$L/libtcmalloc_minimal.so.4 TCMALLOC_AGGRESSIVE_DECOMMIT=true TCMALLOC_RELEASE_RATE=10
[ -e $L/libmimalloc.so.2 ] && run mimalloc LD_PRELOAD=$L/libmimalloc.so.2 &&
    run mimalloc-purge LD_PRELOAD=$L/libmimalloc.so.2 MIMALLOC_DECOMMIT_DELAY=0 MIMALLOC_SEGMENT_DECOMMIT_DELAY=0
run tidemalloc LD_PRELOAD="$T"
run "tidemalloc TIDEMALLOC_THP=0" LD_PRELOAD="$T" TIDEMALLOC_THP=0
