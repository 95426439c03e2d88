#!/bin/sh
# One line per misuse technique: caught (message) / EXPLOITED / otherwise.
#   tests/misuse/summary.sh [BUILD_DIR]
# Against another build of the library (e.g. main's), preload it:
#   LD_PRELOAD=/path/to/libtidemalloc.so tests/misuse/summary.sh
build=${1:-build}
status=0
for t in "$build"/tests/test_misuse_*; do
    [ -x "$t" ] || continue
    "$t" --summary || status=1
done
exit $status
